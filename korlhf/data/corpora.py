"""Dialogue and QA corpora: 모두의 말뭉치 (NIKL) JSON and AI Hub JSON through declared layouts.

NIKL dialogue/messenger corpora hold ``document[].utterance[]`` with ``form`` and ``speaker_id``;
a dialogue becomes one multi-turn sft record, consecutive utterances of one speaker merged into one
turn, roles alternating user / assistant from the first speaker. AI Hub corpora differ in shape, so
each is a small declared layout (where the records are, which keys hold prompt / answer or turns)
instead of code; a user can declare a new one with ``--map records=... --map prompt=...``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from korlhf.errors import KorlhfError

# Path syntax: "a.b" keys, "a[]" every item of list a, "[]" every item of a root list, "a[0]" one
# item, "a.*" every value of mapping a (its key becomes the speaker, trailing digits dropped:
# HS01/HS02 are one speaker). "^key" looks the key up on the enclosing objects (a QA's context).
AIHUB_LAYOUTS = {
    # 기계독해 / 일반상식 / 도서자료 기계독해 (SQuAD-style): question -> answer, context as input.
    "mrc": {"records": "data[].paragraphs[].qas[]", "prompt": "question", "input": "^context",
            "response": "answers[0].text"},
    # 한국어 SNS / 주제별 텍스트 일상 대화: data[].body[] utterances with participantID.
    "dialogue": {"records": "data[]", "turns": "body[]", "text": "utterance", "speaker": "participantID"},
    # 감성 대화 말뭉치: talk.content holds HS01 (사람), SS01 (시스템), HS02, ...
    "emotion": {"records": "[]", "turns": "talk.content.*", "text": "value", "speaker": "key"},
}
_SEGMENT = re.compile(r"^([^\[\]]*)(?:\[(\d*)\])?$")


def walk(obj, path: str, chain: list | None = None) -> Iterator[list]:
    """Yield the chain of objects (outermost first) for every item ``path`` reaches in ``obj``."""
    chain = (chain or []) + [obj]
    if not path:
        yield chain
        return
    head, _, rest = path.partition(".")
    if head == "*":
        for key, value in (obj.items() if isinstance(obj, dict) else []):
            yield from walk({"key": re.sub(r"\d+$", "", key), "value": value}, rest, chain)
        return
    name, index = _SEGMENT.match(head).groups()
    value = obj.get(name) if name and isinstance(obj, dict) else (obj if not name else None)
    if index is None:
        if value is not None:
            yield from walk(value, rest, chain)
    elif index == "":
        for item in value if isinstance(value, list) else []:
            yield from walk(item, rest, chain)
    elif isinstance(value, list) and int(index) < len(value):
        yield from walk(value[int(index)], rest, chain)


def lookup(chain: list, spec: str):
    """The value ``spec`` names on the innermost object of ``chain`` (``^key``: on its ancestors)."""
    if spec.startswith("^"):
        for obj in reversed(chain[:-1]):
            if isinstance(obj, dict) and spec[1:] in obj:
                return obj[spec[1:]]
        return None
    found = [c[-1] for c in walk(chain[-1], spec)]
    return found[0] if found else None


def turns_to_messages(turns: list[tuple[str, str]], joiner: str = " ", speakers_are_roles: bool = False) -> list[dict]:
    """(speaker, text) utterances -> chat messages: one speaker's consecutive utterances merged,
    roles alternating user / assistant starting from the first speaker (or, with
    ``speakers_are_roles``, the speaker is the role); empty utterances skipped."""
    merged: list[tuple[str, list[str]]] = []
    for speaker, text in turns:
        text = (text or "").strip()
        if not text:
            continue
        if merged and merged[-1][0] == speaker:
            merged[-1][1].append(text)
        else:
            merged.append((speaker, [text]))
    return [{"role": speaker if speakers_are_roles else ("assistant" if i % 2 else "user"),
             "content": joiner.join(parts)} for i, (speaker, parts) in enumerate(merged)]


def read_nikl(root, path, name: str) -> list[dict]:
    """모두의 말뭉치 dialogue / messenger JSON -> multi-turn sft records, one per document."""
    documents = root.get("document") if isinstance(root, dict) else None
    if not isinstance(documents, list):
        raise KorlhfError(f"{path}: not a 모두의 말뭉치 (NIKL) JSON file: expected a top-level 'document' list")
    records = []
    for i, doc in enumerate(documents, 1):
        where = f"{path}: document {i} ({doc.get('id', 'no id')})"
        _require(doc, ("utterance",), where)
        turns = []
        for j, utt in enumerate(doc["utterance"], 1):
            _require(utt, ("form", "speaker_id"), f"{where}, utterance {j}")
            turns.append((str(utt["speaker_id"]), utt["form"]))
        records.append({"messages": turns_to_messages(turns), "source": name,
                        "id": str(doc.get("id") or f"{name}-{i}")})
    return records


def read_aihub(root, path, layout: dict, name: str) -> list[dict]:
    """AI Hub JSON through a declared layout (see AIHUB_LAYOUTS) -> sft records."""
    if "records" not in layout or not ({"prompt", "response"} <= set(layout) or {"turns", "text"} <= set(layout)):
        raise KorlhfError(f"{path}: an AI Hub layout needs records= and either prompt= and response= or turns= "
                          f"and text= (got {', '.join(sorted(layout)) or 'nothing'}); built-in layouts: "
                          f"{', '.join(AIHUB_LAYOUTS)}")
    records = []
    for i, chain in enumerate(walk(root, layout["records"].lstrip(".")), 1):
        rid = chain[-1].get("id") if isinstance(chain[-1], dict) else None
        record = {"source": name, "id": str(rid or f"{name}-{i}")}
        if "turns" in layout:
            turns = [(str(lookup(t, layout.get("speaker", "speaker")) or ""), str(lookup(t, layout["text"]) or ""))
                     for t in walk(chain[-1], layout["turns"])]
            record["messages"] = turns_to_messages(turns)
        else:
            for key in ("prompt", "input", "response"):
                if key in layout:
                    value = lookup(chain, layout[key])
                    if value is None and key != "input":
                        raise KorlhfError(f"{path}: record {i}: '{layout[key]}' not found for {key} "
                                          f"(keys present: {', '.join(sorted(chain[-1])) if isinstance(chain[-1], dict) else 'none'})")
                    if value:
                        record[key] = str(value)
        records.append(record)
    if not records:
        raise KorlhfError(f"{path}: the layout's records path '{layout['records']}' matched nothing in this file")
    return records


def sniff_aihub(root) -> str | None:
    """The built-in AI Hub layout whose records path finds records in ``root``, if any."""
    for name, layout in AIHUB_LAYOUTS.items():
        first = next(walk(root, layout["records"]), None)
        if first is None or not isinstance(first[-1], dict):
            continue
        if "turns" in layout:
            turn = next(walk(first[-1], layout["turns"]), None)
            if turn is not None and lookup(turn, layout["text"]) is not None:
                return name
        elif lookup(first, layout["prompt"]) is not None:
            return name
    return None


def _require(obj, keys: tuple[str, ...], where: str) -> None:
    if not isinstance(obj, dict):
        raise KorlhfError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    for key in keys:
        if key not in obj:
            raise KorlhfError(f"{where}: missing key '{key}' (keys present: {', '.join(sorted(obj)) or 'none'})")
