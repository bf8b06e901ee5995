"""Precision and recall of the Korean quality checks on a hand-labelled sample of the real data.

    python -m korlhf.data.calibrate [LABELS] [SHARED_DATA_DIR]

The labels (tests/fixtures/quality_labels.jsonl) name records of the reference data in
../shared/data by file, id and turn, with a label read by hand; the texts are not copied into the
project. Each check is scored as `korlhf data clean` applies it (`korlhf.endings`, `korlhf.text`)
and as the rule before issue 18 did, so docs/data_quality.md can show what changed and why the
defaults are what they are.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

from korlhf.records import read_jsonl
from korlhf.text import is_refusal, looks_truncated, sounds_like_assistant

LABELS = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "quality_labels.jsonl"
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"

# The rules before issue 18, kept here only to measure what the new ones changed.
_OLD_REFUSAL = re.compile(
    r"저는\s*(?:인공지능|AI|에이아이|챗봇|언어\s*모델)"
    r"|(?:AI|인공지능)\s*(?:언어\s*)?(?:모델|챗봇|어시스턴트)(?:로서|으로서|이기\s*때문에)"
    r"|죄송(?:하지만|합니다만|하게도)[^.!?\n]{0,60}?(?:수\s*없|어렵|드릴\s*수가?\s*없)"
    r"|(?:답변|도움|조언)(?:을|를)?\s*드릴\s*수\s*없|As an AI(?: language model)?|I'm sorry, but I (?:can't|cannot)",
    re.IGNORECASE)


def _old_truncated(text: str) -> bool:
    stripped = text.rstrip()
    return not stripped or not (stripped[-1] in ".!?。．…~)]}\"'」』>*`" or stripped[-1] in "다요죠까네지음함됨임니군걸게래"
                                or 0x2600 <= ord(stripped[-1]) <= 0x27BF or ord(stripped[-1]) >= 0x1F000)


RULES = {
    "truncated": (lambda text, kind: looks_truncated(text, kind), lambda text, kind: _old_truncated(text)),
    "refusal": (lambda text, kind: is_refusal(text), lambda text, kind: _OLD_REFUSAL.search(text) is not None),
    "role_confusion": (lambda text, kind: sounds_like_assistant(text), lambda text, kind: False),
}


def _texts(shared: Path, labels: list[dict]) -> list[str]:
    from korlhf.data.readers import read_source

    sources = {f: {r["id"]: r for r in read_source(shared / f).records} for f in {x["file"] for x in labels}}
    texts = []
    for x in labels:
        record = sources[x["file"]][x["id"]]
        if "turn" in x:
            text = record["messages"][x["turn"]]["content"]
        elif "rank" in x:
            text = record["responses"][x["rank"]]  # best first
        else:
            text = record.get("response", record.get("prompt", ""))
        texts.append(text[:x["cut"]] if "cut" in x else text)
    return texts


def measure(labels_path: Path = LABELS, shared: Path = SHARED) -> list[dict]:
    """One row per (check, kind): n, positives, and flagged / precision / recall, new and old rule."""
    labels = [x for _, x in read_jsonl(labels_path)]
    texts = _texts(shared, labels)
    groups: dict[tuple, list] = defaultdict(list)
    for x, text in zip(labels, texts, strict=True):
        groups[(x["check"], x["kind"])].append((text, x["label"]))
    rows = []
    for (check, kind), items in sorted(groups.items()):
        row = {"check": check, "kind": kind, "n": len(items), "positives": sum(y for _, y in items)}
        for name, rule in zip(("new", "old"), RULES[check], strict=True):
            flags = [rule(text, kind) for text, _ in items]
            tp = sum(f and y for f, (_, y) in zip(flags, items, strict=True))
            row[name] = {"flagged": sum(flags), "true_positives": tp,
                         "precision": round(tp / sum(flags), 3) if sum(flags) else None,
                         "recall": round(tp / row["positives"], 3) if row["positives"] else None}
        rows.append(row)
    return rows


def main(argv: list[str]) -> None:
    rows = measure(Path(argv[0]) if argv else LABELS, Path(argv[1]) if len(argv) > 1 else SHARED)
    print("| check | kind | n | labelled positive | new: flagged | precision | recall | old: flagged | precision | recall |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        new, old = r["new"], r["old"]
        print(f"| {r['check']} | {r['kind']} | {r['n']} | {r['positives']} | {new['flagged']} | {new['precision']} | "
              f"{new['recall']} | {old['flagged']} | {old['precision']} | {old['recall']} |")


if __name__ == "__main__":
    main(sys.argv[1:])
