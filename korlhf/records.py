"""The three canonical record kinds and their JSON Lines files.

- ``sft``: ``prompt`` + ``response`` (optional ``input``), or ``messages`` for multi-turn; ``source``, ``id``.
- ``preference``: ``prompt`` + ``responses`` ranked best -> worst (K >= 2), optional ``scores``; ``source``, ``id``.
- ``prompt``: ``prompt``; ``source``, ``id``.

Records are plain dicts (they go straight into `datasets.Dataset.from_list`). Readers of foreign
formats live in `korlhf.data`; this module only reads and writes our own files, with errors that
name the file, line and key.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from itertools import combinations
from pathlib import Path

from korlhf.errors import KorlhfError

REQUIRED = {
    "sft": ("prompt", "response"),
    "preference": ("prompt", "responses"),
    "prompt": ("prompt",),
}


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, record) from a JSON Lines file, with file:line errors."""
    path = Path(path)
    if not path.is_file():
        raise KorlhfError(f"file not found: {path}")
    try:
        with open(path, encoding="utf-8-sig") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise KorlhfError(f"{path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None
                if not isinstance(record, dict):
                    raise KorlhfError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
                yield lineno, record
    except UnicodeDecodeError:
        # Every stage reads its files here: give them the data stage's diagnosis (the line, CP949
        # or UTF-16, the iconv command) rather than a traceback.
        from korlhf.data.io import read_text

        read_text(path)
        raise KorlhfError(f"{path}: not UTF-8; save the file as UTF-8") from None


def write_jsonl(path: str | Path, records: Iterable[dict]) -> int:
    """Write records as UTF-8 JSON Lines (Hangul kept readable); returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    return n


def check_record(kind: str, record: dict, where: str) -> dict:
    """Raise a KorlhfError naming ``where`` (file:line) if ``record`` is not a valid ``kind`` record."""
    if kind not in REQUIRED:
        raise KorlhfError(f"unknown record kind {kind!r}; choose one of: {', '.join(REQUIRED)}")
    keys = REQUIRED[kind]
    if kind == "sft" and "messages" in record:
        keys = ("messages",)
    missing = [k for k in keys if k not in record]
    if missing:
        raise KorlhfError(
            f"{where}: {kind} record is missing {', '.join(repr(k) for k in missing)} "
            f"(keys present: {', '.join(sorted(record)) or 'none'})"
        )
    if kind == "preference":
        responses = record["responses"]
        if not isinstance(responses, list) or len(responses) < 2:
            raise KorlhfError(f"{where}: 'responses' must be a list of at least 2 answers ranked best to worst")
    return record


def load_records(paths: str | Path | Iterable[str | Path], kind: str) -> list[dict]:
    """Read and check every record of ``kind`` from one or more JSON Lines files."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    records = []
    for path in paths:
        for lineno, record in read_jsonl(path):
            records.append(check_record(kind, record, f"{path}:{lineno}"))
    if not records:
        raise KorlhfError(f"no {kind} records in {', '.join(map(str, paths))}")
    return records


def ranking_pairs(record: dict) -> list[tuple[str, str]]:
    """All (chosen, rejected) pairs of a ranked preference record: K*(K-1)/2 of them, best first.

    A ``tied_after_first`` record (KoBEST multiple choice) only knows "the first beats each other
    one", so it gives the K-1 pairs (first, other) and never a pair between two wrong answers.
    """
    responses = record["responses"]
    if record.get("tied_after_first"):
        return [(responses[0], other) for other in responses[1:]]
    return list(combinations(responses, 2))
