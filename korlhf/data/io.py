"""Raw files in: encodings, byte-order marks, JSON vs JSON Lines, CSV/TSV, parquet, plain lines.

This is the layer that meets the mess of real Korean data files (CP949 exports from Windows,
`.jsonl` files that are one JSON array with a BOM, macOS NFD headers). Every problem names the
file and the line, says what is wrong and how to fix it; fixable surprises (a UTF-8 BOM, a JSON
array named `.jsonl`) are read anyway and reported as notes. The stdlib `json`/`csv` and pyarrow
do the parsing; what is written here is only the diagnosis.
"""

from __future__ import annotations

import csv
import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from korlhf.errors import KorlhfError

CONTAINERS = ("json", "jsonl", "csv", "tsv", "parquet", "text")
CONVERSATION_START = "<<start conversation>>"  # KoChatGPT's dialogue text (korlhf.data.readers)
_WS = re.compile(r"\s*")
_HANGUL = re.compile(r"[\uac00-\ud7a3]")


@dataclass
class Raw:
    """A file's rows before any format is applied. ``root`` is the parsed JSON for object roots."""

    path: Path
    container: str
    rows: list = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    text: str | None = None
    root: object = None


def read_text(path: Path) -> tuple[str, list[str]]:
    """Decode ``path`` as UTF-8, explaining CP949/EUC-KR, UTF-16 and empty files."""
    if not path.is_file():
        raise KorlhfError(f"file not found: {path}")
    data = path.read_bytes()
    notes = []
    if data.startswith(b"\xef\xbb\xbf"):
        notes.append(f"{path}: starts with a UTF-8 byte-order mark (BOM); ignored it")
        data = data[3:]
    elif data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise KorlhfError(f"{path}: UTF-16 text (byte-order mark {data[:2].hex()}); korlhf reads UTF-8. "
                          f"Convert it: iconv -f utf-16 -t utf-8 {path} > {_utf8_name(path)}")
    if not data.strip():
        raise KorlhfError(f"{path}: empty file: there are no records to read")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise KorlhfError(_not_utf8(path, data, exc)) from None
    if "\ufeff" in text:
        notes.append(f"{path}: {text.count(chr(0xFEFF))} byte-order mark(s) inside the file "
                     "(files concatenated?); removed them")
        text = text.replace("\ufeff", "")
    return text, notes


def _not_utf8(path: Path, data: bytes, exc: UnicodeDecodeError) -> str:
    line = data[:exc.start].count(b"\n") + 1
    try:
        korean = _HANGUL.search(data.decode("cp949")) is not None
    except UnicodeDecodeError:
        korean = False
    if korean:
        return (f"{path}:{line}: not UTF-8; the bytes look like CP949/EUC-KR (the Korean Windows encoding). "
                f"Convert the file to UTF-8: iconv -f cp949 -t utf-8 {path} > {_utf8_name(path)}")
    return f"{path}:{line}: not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); save the file as UTF-8"


def _utf8_name(path: Path) -> str:
    return str(path.with_name(f"{path.stem}.utf8{path.suffix}"))


def read_raw(path: str | Path, container: str | None = None) -> Raw:
    """Parse ``path`` into rows. ``container`` forces json/jsonl/csv/tsv/parquet/text."""
    path = Path(path)
    if container == "parquet" or (container is None and path.suffix.lower() == ".parquet"):
        return _parquet(path)
    text, notes = read_text(path)
    sniffed = sniff_container(path, text)
    if container is None:
        container = sniffed
        named = {".jsonl": "jsonl", ".json": "json"}.get(path.suffix.lower())
        # KoChatGPT ships its dialogue text as kochatgpt_1_SFT_conversation.jsonl: that one is text.
        if named and sniffed == "text" and CONVERSATION_START not in text:
            raise KorlhfError(_not_json(path, text))
        if named and named != sniffed and sniffed in ("json", "jsonl"):
            shape = "one JSON array" if sniffed == "json" else "JSON Lines (one object per line)"
            notes.append(f"{path}: is {shape} despite its {path.suffix} name; read it as {sniffed}")
    elif container == "jsonl" and text.lstrip().startswith("["):
        raise KorlhfError(f"{path}: is one JSON array ([...]), not JSON Lines; use --format json, "
                          "or leave --format out (korlhf tells the two apart)")
    elif container == "json" and sniffed == "jsonl":
        raise KorlhfError(f"{path}: is JSON Lines (one object per line), not one JSON document; use --format jsonl, "
                          "or leave --format out (korlhf tells the two apart)")
    raw = Raw(path, container, notes=notes, text=text)
    {"json": _json, "jsonl": _jsonl, "csv": _delimited, "tsv": _delimited, "text": _lines}[container](raw)
    _nfc_keys(raw)
    return raw


_JSON_KINDS = {int: "number", float: "number", str: "string", bool: "true/false", type(None): "null"}


def _not_json(path: Path, text: str) -> str:
    """Why a .json/.jsonl file that does not start with an object or array holds no records.

    Such a file used to be read as plain text, one prompt per line, so a broken JSON export
    became "prompts" without a word; reading lines as text is now asked for with --format text.
    """
    per_line = path.suffix.lower() == ".jsonl"
    hint = (f"a {path.suffix} file holds {'one JSON object per line' if per_line else 'a JSON object or array'}: "
            "fix the file, or read each line as a prompt with --format text")
    lineno, chunk = 1, text
    if per_line:
        lineno, chunk = next((i, line) for i, line in enumerate(text.splitlines(), 1) if line.strip())
    try:
        value = json.loads(chunk)
    except json.JSONDecodeError as exc:
        where = f"{lineno}" if per_line else f"{exc.lineno}:{exc.colno}"
        column = f" at column {exc.colno}" if per_line else ""
        return f"{path}:{where}: not valid JSON ({exc.msg}{column}); {hint}"
    shown = json.dumps(value, ensure_ascii=False)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return f"{path}:{lineno}: a JSON {_JSON_KINDS.get(type(value), 'value')} ({shown}), not a record; {hint}"


def sniff_container(path: Path, text: str) -> str:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return suffix[1:]
    head = text.lstrip()
    if head.startswith("["):
        return "json"
    if head.startswith("{"):
        try:
            json.loads(text)
            return "json"
        except json.JSONDecodeError as exc:
            return "jsonl" if exc.msg == "Extra data" else ("json" if suffix == ".json" else "jsonl")
    return "text"


def _json(raw: Raw) -> None:
    text = raw.text
    start = _WS.match(text).end()
    if text[start] != "[":
        try:
            raw.root = json.loads(text)
        except json.JSONDecodeError as exc:
            raise KorlhfError(f"{raw.path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})") from None
        raw.rows, raw.lines = [raw.root], [1]
        return
    # Element by element (not json.loads) so every record keeps its line number for messages.
    decoder, i, line, last = json.JSONDecoder(), start + 1, 1, 0
    while True:
        i = _WS.match(text, i).end()
        if i >= len(text):
            raise KorlhfError(f"{raw.path}: the JSON array is not closed (no final ']'); the file looks cut short")
        if text[i] == "]":
            break
        try:
            row, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            raise KorlhfError(f"{raw.path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})") from None
        line += text.count("\n", last, i)
        last = i
        raw.rows.append(row)
        raw.lines.append(line)
        i = _WS.match(text, end).end()
        if i < len(text) and text[i] == ",":
            i += 1
        elif i < len(text) and text[i] != "]":
            lineno = text.count("\n", 0, i) + 1
            raise KorlhfError(f"{raw.path}:{lineno}: not valid JSON (expected ',' or ']' between records)")


def _jsonl(raw: Raw) -> None:
    for lineno, line in enumerate(raw.text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise KorlhfError(f"{raw.path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno}); "
                              "fix or delete that line") from None
        raw.rows.append(row)
        raw.lines.append(lineno)


def _delimited(raw: Raw) -> None:
    delimiter = "\t" if raw.container == "tsv" else ","
    quoting = csv.QUOTE_NONE if raw.container == "tsv" else csv.QUOTE_MINIMAL
    reader = csv.DictReader(raw.text.splitlines(), delimiter=delimiter, quoting=quoting)
    header = reader.fieldnames or []
    for row in reader:
        if None in row:
            raise KorlhfError(f"{raw.path}:{reader.line_num}: {len(header) + len(row[None])} fields but the header "
                              f"has {len(header)}; a {'tab' if delimiter == chr(9) else 'comma'} inside a value?")
        raw.rows.append(row)
        raw.lines.append(reader.line_num)


def _lines(raw: Raw) -> None:
    """One record per line; a blank line inside the file is an (empty) record, so it is counted
    and reported rather than silently skipped. Blank lines at the end are not records."""
    lines = raw.text.rstrip().splitlines()
    for lineno, line in enumerate(lines, 1):
        raw.rows.append({"text": line.strip()})
        raw.lines.append(lineno)


def _parquet(path: Path) -> Raw:
    if not path.is_file():
        raise KorlhfError(f"file not found: {path}")
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise KorlhfError(f"{path}: not a readable parquet file ({exc})") from None
    if not rows:
        raise KorlhfError(f"{path}: empty file: there are no records to read")
    return Raw(path, "parquet", rows=rows, lines=[])


def _nfc_keys(raw: Raw) -> None:
    """Column names in NFD (decomposed Hangul, typical of files made on macOS) never match a
    ``--map`` written on another machine; normalise them and say so."""
    fixed = 0
    for i, row in enumerate(raw.rows):
        if isinstance(row, dict) and not all(unicodedata.is_normalized("NFC", k) for k in row):
            raw.rows[i] = {unicodedata.normalize("NFC", k): v for k, v in row.items()}
            fixed += 1
    if fixed:
        raw.notes.append(f"{raw.path}: {fixed} record(s) had column names in NFD (decomposed Hangul, as macOS "
                         "writes them); normalised the names to NFC")
