"""KoBEST (BoolQ, COPA, HellaSwag, SentiNeg, WiC) as multiple-choice items.

One item per TSV row: ``{"id", "task", "context", "choices", "label"}``, where ``context`` is a
Korean prompt ending where the answer begins and ``choices[label]`` is the right answer. The same
items serve two uses: `korlhf eval kobest` scores each choice by log-likelihood after the context,
and the data readers turn them into preference records (right answer best), the benchmark route
to replacing human feedback. Prompts follow lm-evaluation-harness's KoBEST tasks.
"""

from __future__ import annotations

import csv
from pathlib import Path

from korlhf.errors import KorlhfError

TASKS = ("BoolQ", "COPA", "HellaSwag", "SentiNeg", "WiC")
COLUMNS = {
    "BoolQ": ("Text", "Question", "Answer"),
    "COPA": ("sentence", "question", "1", "2", "Answer"),
    "HellaSwag": ("context", "choice1", "choice2", "choice3", "choice4", "label"),
    "SentiNeg": ("Label", "Text"),
    "WiC": ("Target", "SENTENCE1", "SENTENCE2", "ANSWER"),
}
YES_NO = ["아니오", "예"]


def sniff_task(path: str | Path, header: list[str]) -> str:
    """The task of a KoBEST TSV, from its folder name or, failing that, its columns."""
    path = Path(path)
    for task in TASKS:
        if task.lower() in (p.lower() for p in path.parts):
            return task
    for task, cols in COLUMNS.items():
        if set(cols) <= set(header) and not (task == "SentiNeg" and "Question" in header):
            return task
    raise KorlhfError(f"{path}: not a KoBEST file (columns: {', '.join(header)}); "
                      f"expected the columns of one of {', '.join(TASKS)}")


def read_kobest(path: str | Path, task: str | None = None, limit: int | None = None) -> list[dict]:
    """Multiple-choice items of one KoBEST TSV (header row, tab-separated)."""
    path = Path(path)
    if not path.is_file():
        raise KorlhfError(f"file not found: {path}")
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = reader.fieldnames or []
        task = task or sniff_task(path, header)
        missing = [c for c in COLUMNS[task] if c not in header]
        if missing:
            raise KorlhfError(f"{path}: KoBEST {task} needs column(s) {', '.join(missing)} "
                              f"(columns present: {', '.join(header) or 'none'})")
        items = []
        for i, row in enumerate(reader):
            if limit is not None and i >= limit:
                break
            try:
                item = _ITEM[task](row)
            except (ValueError, IndexError):
                raise KorlhfError(f"{path}:{i + 2}: bad KoBEST {task} row (answer label not understood)") from None
            item.update(id=f"kobest-{task}-{path.stem}-{row.get('ID') or i + 1}", task=task)
            items.append(item)
    return items


def _boolq(row: dict) -> dict:
    context = f"{row['Text']}\n질문: {row['Question']}\n답변:"
    return {"context": context, "choices": YES_NO, "label": _yes(row["Answer"])}


def _copa(row: dict) -> dict:
    # "X했다. 그래서 / 왜냐하면" + the chosen sentence, as lm-evaluation-harness's kobest_copa.
    connector = {"원인": "왜냐하면", "결과": "그래서"}[row["question"].strip()]
    context = f"{row['sentence'].strip().rstrip('.')} {connector}"
    return {"context": context, "choices": [row["1"], row["2"]], "label": int(row["Answer"]) - 1}


def _hellaswag(row: dict) -> dict:
    choices = [row[f"choice{k}"] for k in range(1, 5)]
    label = int(row["label"])
    choices[label]  # noqa: B018  (an out-of-range label raises IndexError here)
    return {"context": row["context"], "choices": choices, "label": label}


def _sentineg(row: dict) -> dict:
    return {"context": f"문장: {row['Text']}\n긍부정:", "choices": ["부정", "긍정"], "label": _yes(row["Label"])}


def _wic(row: dict) -> dict:
    context = (f"문장1: {row['SENTENCE1']}\n문장2: {row['SENTENCE2']}\n"
               f"질문: 두 문장에서 '{row['Target']}'의 뜻이 같나요?\n답변:")
    return {"context": context, "choices": YES_NO, "label": _yes(row["ANSWER"])}


def _yes(value: str) -> int:
    """1/0 from the label spellings KoBEST files use: 1/0 and True/False in any case."""
    value = value.strip().lower()
    if value in ("1", "true"):
        return 1
    if value in ("0", "false"):
        return 0
    raise ValueError(value)


_ITEM = {"BoolQ": _boolq, "COPA": _copa, "HellaSwag": _hellaswag, "SentiNeg": _sentineg, "WiC": _wic}


def to_preference(item: dict) -> dict:
    """A preference record: the right answer first, the wrong ones after (K = number of choices).

    The wrong choices of a multiple-choice item are not ranked among themselves; we keep their
    file order and mark the record ``tied_after_first`` so K-wise losses can use only the
    pairs that are known (right > each wrong).
    """
    right = item["choices"][item["label"]]
    wrong = [c for i, c in enumerate(item["choices"]) if i != item["label"]]
    return {"prompt": item["context"], "responses": [right, *wrong], "source": f"kobest-{item['task']}",
            "id": item["id"], "tied_after_first": True}
