"""Read any supported Korean data file into canonical records (the Python API of `korlhf data`).

    from korlhf.data.readers import read_source, read_records
    src = read_source("kochatgpt_2_RM.jsonl")        # format sniffed; src.records, src.notes
    records = read_records(["a.jsonl", "b.csv"], column_map={"prompt": "질문", "response": "답변"})

Records are the three kinds of `korlhf.records` (sft / preference / prompt), each with ``source``
and ``id``. Formats (``format=`` forces one, otherwise sniffed from the file's shape and keys):

- ``kochatgpt-sft`` (prompt, completion, tokens), ``kochatgpt-rm`` (prompt, completion_0..K-1,
  ranking), ``kochatgpt-ppo`` (prompt), ``kochatgpt-conversation`` (``<사람>:`` / ``<챗봇>:`` text);
- ``koalpaca`` v1.0 (instruction, input, output) and v1.1 (instruction, output, url);
- ``nikl`` (모두의 말뭉치 ``document[].utterance[]``), ``aihub-mrc`` / ``aihub-dialogue`` /
  ``aihub-emotion`` (declared layouts, `korlhf.data.corpora`), ``aihub`` (a layout given by ``--map``);
- ``kobest`` (BoolQ, COPA, HellaSwag, SentiNeg, WiC TSVs -> preference records, right answer best);
- ``records`` (our own JSON Lines), and generic ``jsonl`` / ``json`` / ``csv`` / ``tsv`` /
  ``parquet`` / ``text`` (one prompt per line) with a column map: ``{"prompt": "질문"}`` means the
  canonical key ``prompt`` is read from column ``질문``; ``responses`` takes ``a+b+c`` (best first).

Readers are faithful: they convert, they do not clean (that is `korlhf data clean`). A structural
problem (missing key, bad ranking) is an error naming the file, the record and the keys that are
there; except in the NIKL / AI Hub corpora, whose files mix good records with ones that have no
answer (MRC ``is_impossible``, ``answers: []``) or a malformed one: those are put in
``Source.rejected`` with their reason (`korlhf data clean` writes them to rejected.jsonl) and the
rest are read. Their dialogue roles go by speaker: ``--map assistant=SPEAKER`` names the assistant
(default: the second speaker), ``--map multi_party=merge|reject`` says what a chat of three or more
speakers becomes (merge: the assistant against everyone else as the user).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from korlhf.data import corpora, io
from korlhf.errors import KorlhfError

FORMATS = ("kochatgpt-sft", "kochatgpt-rm", "kochatgpt-ppo", "kochatgpt-conversation", "koalpaca", "nikl",
           "aihub", *(f"aihub-{k}" for k in corpora.AIHUB_LAYOUTS), "kobest", "records", *io.CONTAINERS)
TEXT_KEYS = ("prompt", "input", "response", "completion", "instruction", "output")
_CONVERSATION_START = io.CONVERSATION_START
_SPEAKER = re.compile(r"^<(사람|챗봇)>\s*:\s?(.*)$")


@dataclass
class Source:
    """One file read: its canonical records, the line each came from (when known) and notes."""

    path: Path
    format: str
    name: str
    records: list[dict]
    lines: list[int | None] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)  # {id, source, reasons, detail, record}

    @property
    def kinds(self) -> list[str]:
        from korlhf.data.normalize import record_kind

        return sorted({record_kind(r) for r in self.records})


def read_source(path: str | Path, format: str | None = None, column_map: dict | None = None) -> Source:
    """Read one file of any supported format into canonical records (see the module docstring)."""
    path = Path(path)
    if format is not None and format not in FORMATS:
        raise KorlhfError(f"unknown --format {format!r}; choose one of: {', '.join(FORMATS)}")
    column_map = dict(column_map or {})
    if format == "kobest" or (format is None and path.suffix.lower() == ".tsv" and not column_map and _is_kobest(path)):
        return _kobest(path)
    options = {k: str(column_map.pop(k)) for k in corpora.OPTIONS if k in column_map}
    if format and format.startswith("aihub-"):
        column_map = {}  # a built-in layout; --map declares only custom ones (--format aihub)
    raw = io.read_raw(path, format if format in io.CONTAINERS else None)
    if format == "text" or (format is None and raw.container == "text"):
        return _text(raw) if _CONVERSATION_START not in raw.text else _conversation(raw)
    if format == "kochatgpt-conversation":
        return _conversation(raw)
    if format is None and not column_map and path.suffix.lower() == ".jsonl" and _is_kobest_hub(raw.rows):
        return _kobest(path)  # skt/kobest_v1's JSON Lines (korlhf data get kobest)
    if format in (None, "nikl", "aihub") or (format or "").startswith("aihub-"):
        source = _corpus(raw, format, column_map, options)
        if source is not None:
            return source
    rows = [_mapped(r, column_map, raw, i) for i, r in enumerate(raw.rows)]
    if not rows:
        raise KorlhfError(f"{path}: no records in the file (an empty list?)")
    format = format if format not in (None, *io.CONTAINERS) else sniff_format(rows[0], path)
    converter, name = _CONVERTERS[format], _source_name(format, rows[0], path)
    records = [converter(row, _Where(raw, i), name) for i, row in enumerate(rows)]
    return Source(path, format, name, records, raw.lines or [None] * len(records), raw.notes)


def read_sources(paths, format: str | None = None, column_map: dict | None = None) -> list[Source]:
    if isinstance(paths, (str, Path)):
        paths = [paths]
    return [read_source(p, format, column_map) for p in paths]


def read_records(paths, format: str | None = None, column_map: dict | None = None) -> list[dict]:
    """Every canonical record of one or more files, in file order."""
    return [r for s in read_sources(paths, format, column_map) for r in s.records]


def sniff_format(row: dict, path: Path) -> str:
    keys = set(row)
    if "ranking" in keys and {"completion_0", "completion_1"} <= keys:
        return "kochatgpt-rm"
    if {"prompt", "completion"} <= keys:
        return "kochatgpt-sft"
    if {"instruction", "output"} <= keys:
        return "koalpaca"
    if keys & {"prompt", "messages", "text"}:
        return "kochatgpt-ppo" if keys == {"prompt"} and "kochatgpt" in path.name.lower() else "records"
    raise KorlhfError(f"{path}: cannot tell the format from the keys ({', '.join(sorted(keys)) or 'none'}); "
                      "pass --format, or map your columns with --map prompt=COLUMN --map response=COLUMN")


class _Where:
    """Names a record in messages: ``file: record 5 (line 23)``."""

    def __init__(self, raw: io.Raw, index: int):
        self.raw, self.index = raw, index

    def __str__(self) -> str:
        line = f" (line {self.raw.lines[self.index]})" if self.raw.lines else ""
        return f"{self.raw.path}: record {self.index + 1}{line}"


def _missing(row: dict, keys, where) -> None:
    for key in keys:
        if key not in row:
            raise KorlhfError(f"{where}: missing key '{key}' (keys present: {', '.join(sorted(row)) or 'none'}); "
                              f"if another column holds it, add --map {key}=COLUMN")


def _text_value(row: dict, key: str, where) -> str:
    value = row[key]
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise KorlhfError(f"{where}: key '{key}' holds a {type(value).__name__}, expected text")
    return str(value)


def _mapped(row, column_map: dict, raw: io.Raw, index: int) -> dict:
    where = _Where(raw, index)
    if not isinstance(row, dict):
        raise KorlhfError(f"{where}: expected a JSON object, got {type(row).__name__}")
    if not column_map:
        return row
    new = dict(row)
    for target, column in column_map.items():
        columns = column.split("+") if target == "responses" else [column]
        for col in columns:
            if col not in row:
                raise KorlhfError(f"{where}: --map {target}={column}: no column '{col}' "
                                  f"(keys present: {', '.join(sorted(row)) or 'none'})")
        new[target] = [row[c] for c in columns] if target == "responses" else row[column]
    return new


def _source_name(format: str, row: dict, path: Path) -> str:
    if format == "koalpaca":
        return "koalpaca-v1.1" if "url" in row else "koalpaca-v1.0"
    if format == "records":
        return str(row.get("source") or path.stem)
    return format


def _kochatgpt_sft(row, where, name):
    _missing(row, ("prompt", "completion"), where)
    # `tokens` counts the whole API call, not the answer: it is dropped, not trusted as a length.
    return {"prompt": _text_value(row, "prompt", where), "response": _text_value(row, "completion", where),
            "source": name, "id": _id(row, where, name)}


def _kochatgpt_rm(row, where, name):
    """``ranking[k]`` is the slot of the k-th best answer: best = completion_{ranking[0]}.

    The original KoChatGPT notebook read it as "the rank of completion_k", which flips two of the
    three pairs of every row whose ranking is a 3-cycle ([1,2,0] or [2,0,1]), about 22% of pairs.
    """
    _missing(row, ("prompt", "completion_0", "completion_1", "ranking"), where)
    k = sum(1 for key in row if re.fullmatch(r"completion_\d+", key))
    ranking = row["ranking"]
    if (not isinstance(ranking, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in ranking)
            or sorted(ranking) != list(range(k))):
        raise KorlhfError(f"{where}: ranking {ranking!r} is not a permutation of 0..{k - 1} (one entry per "
                          f"completion_0..completion_{k - 1}); ranking[k] must be the slot of the k-th best "
                          "answer, best = completion_{ranking[0]}")
    _missing(row, [f"completion_{s}" for s in ranking], where)
    return {"prompt": _text_value(row, "prompt", where),
            "responses": [_text_value(row, f"completion_{s}", where) for s in ranking],
            "source": name, "id": _id(row, where, name)}


def _kochatgpt_ppo(row, where, name):
    _missing(row, ("prompt",), where)
    return {"prompt": _text_value(row, "prompt", where), "source": name, "id": _id(row, where, name)}


def _koalpaca(row, where, name):
    _missing(row, ("instruction", "output"), where)
    record = {"prompt": _text_value(row, "instruction", where)}
    if row.get("input"):
        record["input"] = _text_value(row, "input", where)
    record.update(response=_text_value(row, "output", where), source=name, id=_id(row, where, name))
    if row.get("url"):
        record["url"] = str(row["url"])
    return record


def _records(row, where, name):
    """Our own records (or any file mapped onto their keys)."""
    record = {k: v for k, v in row.items() if k not in ("chosen", "rejected", "text")}
    if "prompt" not in row and "text" in row and "messages" not in row:
        record["prompt"] = row["text"]
    if "chosen" in row or "rejected" in row:
        _missing(row, ("chosen", "rejected"), where)
        record["responses"] = [row["chosen"], row["rejected"]]
    if "messages" in record:
        _check_messages(record["messages"], where)
    else:
        _missing(record, ("prompt",), where)
        for key in ("prompt", "input", "response"):
            if key in record:
                record[key] = _text_value(record, key, where)
    if "responses" in record:
        responses = record["responses"]
        if not isinstance(responses, list) or len(responses) < 2:
            raise KorlhfError(f"{where}: 'responses' must be a list of at least 2 answers ranked best to worst")
        record["responses"] = ["" if r is None else str(r) for r in responses]
    record["source"] = str(row.get("source") or name)
    record["id"] = _id(row, where, record["source"])
    return record


def _check_messages(messages, where) -> None:
    if not isinstance(messages, list) or not all(
            isinstance(m, dict) and m.get("role") in ("system", "user", "assistant") and isinstance(m.get("content"), str)
            for m in messages):
        raise KorlhfError(f"{where}: 'messages' must be a list of {{\"role\": user|assistant|system, "
                          "\"content\": text}} objects")


def _id(row: dict, where: _Where, name: str) -> str:
    return str(row["id"]) if row.get("id") not in (None, "") else f"{name}-{where.index + 1}"


_CONVERTERS = {"kochatgpt-sft": _kochatgpt_sft, "kochatgpt-rm": _kochatgpt_rm, "kochatgpt-ppo": _kochatgpt_ppo,
               "koalpaca": _koalpaca, "records": _records}


def _corpus(raw: io.Raw, format: str | None, column_map: dict, options: dict) -> Source | None:
    """NIKL and AI Hub files (JSON roots with nested records); None if ``raw`` is neither."""
    root = raw.root if raw.root is not None else raw.rows
    if format == "nikl" or (format is None and isinstance(root, dict) and "document" in root):
        records, rejected = corpora.read_nikl(root, raw.path, "nikl", options)
        return Source(raw.path, "nikl", "nikl", records, [None] * len(records), _noted(raw, rejected), rejected)
    if format == "aihub":
        layout, name = column_map, "aihub"
    else:
        layout_name = format[len("aihub-"):] if format else corpora.sniff_aihub(root)
        if layout_name is None:
            return None
        layout, name = corpora.AIHUB_LAYOUTS[layout_name], f"aihub-{layout_name}"
    records, rejected = corpora.read_aihub(root, raw.path, layout, name, options)
    return Source(raw.path, name, name, records, [None] * len(records), _noted(raw, rejected), rejected)


def _noted(raw: io.Raw, rejected: list[dict]) -> list[str]:
    """The file's notes, plus one line per reason records were skipped."""
    from collections import Counter

    reasons = Counter(r["reasons"][0] for r in rejected)
    return [*raw.notes, *(f"{raw.path}: skipped {n} record(s), {reason} (kept in rejected.jsonl by data clean)"
                          for reason, n in sorted(reasons.items()))]


def _text(raw: io.Raw) -> Source:
    """One prompt per line (kochatgpt_seed_data.txt)."""
    name = raw.path.stem
    records = [{"prompt": row["text"], "source": name, "id": f"{name}-{i + 1}"} for i, row in enumerate(raw.rows)]
    return Source(raw.path, "text", name, records, list(raw.lines), raw.notes)


def _conversation(raw: io.Raw) -> Source:
    """KoChatGPT's dialogue text: blocks opened by ``<<start conversation>>``, turns ``<사람>:`` /
    ``<챗봇>:``; a line without a marker continues the turn above it."""
    name, records, lines, turns = "kochatgpt-conversation", [], [], None
    for lineno, line in enumerate(raw.text.splitlines(), 1):
        if line.strip() == _CONVERSATION_START:
            if turns is not None:
                records.append(corpora.turns_to_messages(turns, "\n", speakers_are_roles=True))
            turns = []
            lines.append(lineno)
            continue
        match = _SPEAKER.match(line.strip())
        if match and turns is not None:
            turns.append(("user" if match.group(1) == "사람" else "assistant", match.group(2)))
        elif line.strip():
            if not turns:
                raise KorlhfError(f"{raw.path}:{lineno}: text outside a turn; a KoChatGPT conversation file has "
                                  f"blocks that start with '{_CONVERSATION_START}' and turns '<사람>: ...' / '<챗봇>: ...'")
            speaker, text = turns[-1]
            turns[-1] = (speaker, f"{text}\n{line.strip()}")
    if turns is not None:
        records.append(corpora.turns_to_messages(turns, "\n", speakers_are_roles=True))
    out = [{"messages": m, "source": name, "id": f"{name}-{i + 1}"} for i, m in enumerate(records)]
    return Source(raw.path, "kochatgpt-conversation", name, out, lines, raw.notes)


def _is_kobest(path: Path) -> bool:
    from korlhf.data.kobest import sniff_task

    text, _ = io.read_text(path)
    header = text.split("\n", 1)[0].rstrip("\r").split("\t")
    try:
        sniff_task(path, header)
    except KorlhfError:
        return False
    return True


def _is_kobest_hub(rows: list[dict]) -> bool:
    from korlhf.data.kobest import hub_task

    return bool(rows) and isinstance(rows[0], dict) and hub_task(rows[0]) is not None


def _kobest(path: Path) -> Source:
    from korlhf.data.kobest import read_kobest, to_preference

    io.read_text(path)  # the same encoding / empty-file messages as every other reader
    records = [to_preference(item) for item in read_kobest(path)]
    if not records:
        raise KorlhfError(f"{path}: a KoBEST header but no rows")
    name = records[0]["source"]
    first = 1 if path.suffix.lower() == ".jsonl" else 2  # a TSV's line 1 is its header
    return Source(path, "kobest", name, records, [i + first for i in range(len(records))])
