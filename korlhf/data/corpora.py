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
    elif isinstance(value, dict) and index == "0":  # one object where a list was expected ("answers": {...})
        yield from walk(value, rest, chain)


def lookup(chain: list, spec: str):
    """The value ``spec`` names on the innermost object of ``chain`` (``^key``: on its ancestors)."""
    if spec.startswith("^"):
        for obj in reversed(chain[:-1]):
            if isinstance(obj, dict) and spec[1:] in obj:
                return obj[spec[1:]]
        return None
    found = [c[-1] for c in walk(chain[-1], spec)]
    return found[0] if found else None


def turns_to_messages(turns: list[tuple[str, str]], joiner: str = " ", speakers_are_roles: bool = False,
                      assistant: str | None = None) -> list[dict]:
    """(speaker, text) utterances -> chat messages, roles by speaker: ``assistant`` (a speaker id;
    default: the second speaker, who answers the first) is the assistant, every other speaker the
    user (with ``speakers_are_roles`` the speaker is the role). Consecutive utterances of one role
    are merged, so in a multi-party chat the other speakers' lines form one user turn; empty
    utterances are skipped."""
    turns = [(speaker, (text or "").strip()) for speaker, text in turns]
    turns = [(speaker, text) for speaker, text in turns if text]
    if not speakers_are_roles:
        speakers = list(dict.fromkeys(speaker for speaker, _ in turns))
        chosen = assistant if assistant is not None else (speakers[1] if len(speakers) > 1 else None)
        turns = [("assistant" if speaker == chosen else "user", text) for speaker, text in turns]
    merged: list[tuple[str, list[str]]] = []
    for role, text in turns:
        if merged and merged[-1][0] == role:
            merged[-1][1].append(text)
        else:
            merged.append((role, [text]))
    return [{"role": role, "content": joiner.join(parts)} for role, parts in merged]


def speaker_count(turns: list[tuple[str, str]]) -> int:
    return len({speaker for speaker, text in turns if (text or "").strip()})


# Reader options, given like a layout key: --map assistant=SPEAKER --map multi_party=reject.
OPTIONS = ("assistant", "multi_party")
MULTI_PARTY = ("merge", "reject")


def dialogue(turns: list[tuple[str, str]], options: dict) -> tuple[list[dict] | None, str | None]:
    """(messages, None), or (None, reason) for a conversation ``options`` says to reject.

    More than two speakers cannot be one user and one assistant: ``multi_party=merge`` (default)
    makes the ``assistant`` speaker the assistant and everyone else the user; ``reject`` skips it.
    """
    policy = options.get("multi_party", "merge")
    if policy not in MULTI_PARTY:
        raise KorlhfError(f"--map multi_party={policy}: choose one of {', '.join(MULTI_PARTY)}")
    n = speaker_count(turns)
    if n > 2 and policy == "reject":
        return None, f"multi_party: {n} speakers (multi_party=reject)"
    assistant = options.get("assistant")
    if assistant is not None and assistant not in {speaker for speaker, _ in turns}:
        return None, f"no_assistant: speaker {assistant!r} (--map assistant) does not speak here"
    return turns_to_messages(turns, assistant=assistant), None


def read_nikl(root, path, name: str, options: dict | None = None) -> tuple[list[dict], list[dict]]:
    """모두의 말뭉치 dialogue / messenger JSON -> (multi-turn sft records, rejected), one per document."""
    documents = root.get("document") if isinstance(root, dict) else None
    if not isinstance(documents, list):
        raise KorlhfError(f"{path}: not a 모두의 말뭉치 (NIKL) JSON file: expected a top-level 'document' list")
    records, rejected = [], []
    for i, doc in enumerate(documents, 1):
        where = f"{path}: document {i} ({doc.get('id', 'no id')})"
        _require(doc, ("utterance",), where)
        turns = []
        for j, utt in enumerate(doc["utterance"], 1):
            _require(utt, ("form", "speaker_id"), f"{where}, utterance {j}")
            turns.append((str(utt["speaker_id"]), utt["form"]))
        rid = str(doc.get("id") or f"{name}-{i}")
        messages, why = dialogue(turns, options or {})
        if why:
            rejected.append({"id": rid, "source": name, "reasons": [why.split(":")[0]], "detail": why, "record": doc})
        else:
            records.append({"messages": messages, "source": name, "id": rid})
    return records, rejected


def read_aihub(root, path, layout: dict, name: str, options: dict | None = None) -> tuple[list[dict], list[dict]]:
    """AI Hub JSON through a declared layout (see AIHUB_LAYOUTS) -> (sft records, rejected).

    A record without an answer (MRC ``is_impossible``, ``answers: []``) or with a malformed one is
    rejected with its reason and the rest are read; only a layout that fits no record is an error.
    """
    if "records" not in layout or not ({"prompt", "response"} <= set(layout) or {"turns", "text"} <= set(layout)):
        raise KorlhfError(f"{path}: an AI Hub layout needs records= and either prompt= and response= or turns= "
                          f"and text= (got {', '.join(sorted(layout)) or 'nothing'}); built-in layouts: "
                          f"{', '.join(AIHUB_LAYOUTS)}")
    records, rejected = [], []
    for i, chain in enumerate(walk(root, layout["records"].lstrip(".")), 1):
        item = chain[-1]
        rid = next((item.get(k) for k in ("id", "question_id") if isinstance(item, dict) and item.get(k)), None)
        record, why = _aihub_record(chain, layout, options or {}, name, str(rid or f"{name}-{i}"))
        if why is None:
            records.append(record)
            continue
        detail = f"{path}: record {i}: {why}"
        rejected.append({"id": record["id"], "source": name, "reasons": [why.split(":")[0]], "detail": detail,
                         "record": item})
    if not records and rejected:
        raise KorlhfError(f"{rejected[0]['detail']}; no record of the file could be read, so the layout does not "
                          f"fit it ({len(rejected)} records)")
    if not records:
        raise KorlhfError(f"{path}: the layout's records path '{layout['records']}' matched nothing in this file")
    return records, rejected


def _aihub_record(chain: list, layout: dict, options: dict, name: str, rid: str) -> tuple[dict, str | None]:
    record, item = {"source": name, "id": rid}, chain[-1]
    if "turns" in layout:
        turns = [(str(lookup(t, layout.get("speaker", "speaker")) or ""), str(lookup(t, layout["text"]) or ""))
                 for t in walk(item, layout["turns"])]
        record["messages"], why = dialogue(turns, options)
        return record, why
    keys = ", ".join(sorted(item)) if isinstance(item, dict) else "none"
    for key in ("prompt", "input", "response"):
        if key not in layout:
            continue
        value = lookup(chain, layout[key])
        if value is None and key == "response" and isinstance(item, dict) and (
                item.get("is_impossible") or item.get("answers") in ([], {})):
            return record, "unanswerable: the question has no answer (is_impossible / empty answers)"
        if value is None and key != "input":
            return record, f"malformed: '{layout[key]}' not found for {key} (keys present: {keys})"
        if isinstance(value, (dict, list)):
            return record, f"malformed: '{layout[key]}' holds a {type(value).__name__}, expected text"
        if value:
            record[key] = str(value)
    return record, None


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
