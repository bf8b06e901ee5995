"""KoBEST (BoolQ, COPA, HellaSwag, SentiNeg, WiC) as multiple-choice items.

One item per TSV row: ``{"id", "task", "context", "choices", "label"}``, where ``context`` is a
Korean prompt ending where the answer begins and ``choices[label]`` is the right answer. The same
items serve two uses: `korlhf eval kobest` scores each choice by log-likelihood after the context,
and the data readers turn them into preference records (right answer best), the benchmark route
to replacing human feedback.

``context`` and ``choices`` are exactly lm-evaluation-harness's ``kobest_*`` tasks (task version 1.0;
``lm_eval/tasks/kobest/*.yaml`` and ``utils.py`` as in harness 0.4.9.1, utils.py commit 0fa0ad8): each row is
read as the harness's document (the ``skt/kobest_v1`` field names: paragraph, premise, ending_1,
...), then its ``doc_to_text``, ``doc_to_choice`` and ``doc_to_target``. The harness scores
``TARGET_DELIMITER + choice`` after the context, so a choice here carries no leading space.
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
# skt/kobest_v1 on the Hugging Face Hub (what `korlhf data get kobest` fetches, and what the harness
# reads) holds the same rows as JSON Lines under other field names; each hub row is turned back into
# the release's row, so one set of converters below serves both layouts.
HUB_FIELDS = {
    "BoolQ": {"paragraph": "Text", "question": "Question", "label": "Answer"},
    "COPA": {"premise": "sentence", "question": "question", "alternative_1": "1", "alternative_2": "2",
             "label": "Answer"},
    "HellaSwag": {"context": "context", **{f"ending_{k}": f"choice{k}" for k in range(1, 5)}, "label": "label"},
    "SentiNeg": {"sentence": "Text", "label": "Label"},
    "WiC": {"word": "Target", "context_1": "SENTENCE1", "context_2": "SENTENCE2", "label": "ANSWER"},
}
YES_NO = ["아니오", "예"]
TARGET_DELIMITER = " "  # the harness's default target_delimiter, put before every choice


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


def hub_task(keys) -> str | None:
    """The task whose skt/kobest_v1 fields ``keys`` holds (SentiNeg's two fields are in no other's)."""
    keys = set(keys)
    for task in ("COPA", "HellaSwag", "WiC", "BoolQ", "SentiNeg"):
        if set(HUB_FIELDS[task]) <= keys and not (task == "SentiNeg" and "question" in keys):
            return task
    return None


def is_hub_file(path: str | Path) -> bool:
    """A ``.jsonl`` whose first line is a skt/kobest_v1 row (what `korlhf data get kobest` writes)."""
    import json

    path = Path(path)
    if path.suffix.lower() != ".jsonl" or not path.is_file():
        return False
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        first = f.readline()
    try:
        row = json.loads(first)
    except ValueError:
        return False
    return isinstance(row, dict) and hub_task(row) is not None


def read_kobest(path: str | Path, task: str | None = None, limit: int | None = None) -> list[dict]:
    """Multiple-choice items of one KoBEST file: the release's TSV (header row, tab-separated) or
    skt/kobest_v1's JSON Lines."""
    path = Path(path)
    if not path.is_file():
        raise KorlhfError(f"file not found: {path}")
    task, rows, first_line = _hub_rows(path, task) if path.suffix.lower() == ".jsonl" else _tsv_rows(path, task)
    items = []
    for i, row in enumerate(rows[:limit]):
        try:
            item = _ITEM[task](row)
        except (ValueError, KeyError, TypeError, AttributeError):  # a short row reads None
            raise KorlhfError(f"{path}:{i + first_line}: bad KoBEST {task} row (answer label or COPA question "
                              "not understood)") from None
        item.update(id=f"kobest-{task}-{path.stem}-{row.get('ID') or i + 1}", task=task)
        items.append(item)
    return items


def _tsv_rows(path: Path, task: str | None) -> tuple[str, list[dict], int]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = reader.fieldnames or []
        task = task or sniff_task(path, header)
        missing = [c for c in COLUMNS[task] if c not in header]
        if missing:
            raise KorlhfError(f"{path}: KoBEST {task} needs column(s) {', '.join(missing)} "
                              f"(columns present: {', '.join(header) or 'none'})")
        return task, list(reader), 2


def _hub_rows(path: Path, task: str | None) -> tuple[str, list[dict], int]:
    """skt/kobest_v1 rows as release rows: labels are 0-based ints there (COPA's Answer is 1/2 here)."""
    from korlhf.data import io

    rows = io.read_raw(path, "jsonl").rows
    keys = set(rows[0]) if rows else set()
    task = task or hub_task(keys)
    if task is None or not set(HUB_FIELDS[task]) <= keys:
        wanted = "; ".join(f"{t}: {', '.join(f)}" for t, f in HUB_FIELDS.items() if task in (None, t))
        raise KorlhfError(f"{path}: not a KoBEST file of skt/kobest_v1 (fields: {', '.join(sorted(keys)) or 'none'}); "
                          f"expected {wanted}")
    out = []
    for row in rows:
        release = {HUB_FIELDS[task][k]: v for k, v in row.items() if k in HUB_FIELDS[task]}
        column = HUB_FIELDS[task]["label"]
        label = release[column]
        release[column] = str(label + 1 if task == "COPA" and isinstance(label, int) else label)
        out.append(release)
    return task, out, 1


def _boolq(row: dict) -> dict:
    # kobest_boolq.yaml: "{{paragraph}} 질문: {{question}} 답변: " (the trailing space included).
    return {"context": f"{row['Text']} 질문: {row['Question']} 답변: ", "choices": YES_NO, "label": _yes(row["Answer"])}


def _copa(row: dict) -> dict:
    # utils.copa_doc_to_text: the connector has its own leading space, so two spaces follow the
    # premise, whose final period stays. The target is the right sentence, found by its text.
    connector = {"원인": " 왜냐하면", "결과": " 그래서"}[row["question"].strip()]
    choices = [row["1"], row["2"]]
    answer = int(row["Answer"])
    if answer not in (1, 2):
        raise ValueError(answer)
    return {"context": f"{row['sentence']} {connector}", "choices": choices, "label": choices.index(choices[answer - 1])}


def _hellaswag(row: dict) -> dict:
    # utils.hellaswag_process_doc: query "문장: {context}", the four endings, gold int(label).
    choices = [row[f"choice{k}"] for k in range(1, 5)]
    label = int(row["label"])
    if not 0 <= label < len(choices):
        raise ValueError(label)
    return {"context": f"문장: {row['context']}", "choices": choices, "label": label}


def _sentineg(row: dict) -> dict:
    # utils.sentineg_doc_to_text and kobest_sentineg.yaml's choices.
    return {"context": f"문장: {row['Text']} 긍부정:", "choices": ["부정", "긍정"], "label": _yes(row["Label"])}


def _wic(row: dict) -> dict:
    # utils.wic_doc_to_text; the sentences keep the release's [brackets] around the word.
    context = f"문장1: {row['SENTENCE1']} 문장2: {row['SENTENCE2']} 두 문장에서 {row['Target']}가 같은 뜻으로 쓰였나?"
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
    pairs that are known (right > each wrong). The prompt is the context with its spaces
    collapsed: the harness's exact spacing (two spaces before a COPA connector, BoolQ's trailing
    space) matters to a log-likelihood, not to a training prompt.
    """
    right = item["choices"][item["label"]]
    wrong = [c for i, c in enumerate(item["choices"]) if i != item["label"]]
    return {"prompt": " ".join(item["context"].split()), "responses": [right, *wrong], "source": f"kobest-{item['task']}",
            "id": item["id"], "tied_after_first": True}
