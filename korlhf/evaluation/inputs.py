"""What `korlhf eval` scores: predictions paired with references, so that no pair can shift.

Each file is read entry by entry with where the entry is (``file:line``, or ``file: item N`` in a
JSON array), and every pair keeps both places, so an error, and every row of ``samples.jsonl``,
names them:

- a text file (any suffix but .jsonl/.json) is one entry per line, blank lines included: an empty
  prediction is a prediction, and dropping it would pair every later line with the wrong reference;
- a ``.json`` file is an array of records (KoChatGPT ships its data so), never lines of raw JSON;
- a ``.jsonl`` file is one record per line.

Multi-turn answers (`korlhf generate` on MT-Bench questions, or FastChat's ``model_answer`` files:
``choices[0].turns``) are scored turn by turn against the matching reference turn (MT-Bench's
``reference`` is a list with one answer per turn). Two paired records that carry an id
(``question_id`` or ``id``) must carry the same one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from korlhf.errors import KorlhfError

ID_KEYS = ("question_id", "id")


@dataclass
class Pair:
    """One scored prediction: where it came from, its text, its reference (or None), its turn (1-based)."""

    where: str
    prediction: str
    reference: str | None = None
    turn: int | None = None
    reference_where: str | None = None
    prompt: object = None  # the prompt (a string or a conversation) for a reward model


def read_entries(path: str | Path, limit: int | None = None) -> list[tuple[str, dict | str]]:
    """(where, record) for a JSON Lines / JSON array file, (where, line) for a text file."""
    from korlhf.records import read_jsonl

    path = Path(path)
    if not path.is_file():
        raise KorlhfError(f"file not found: {path}")
    if path.suffix == ".jsonl":
        entries = [(f"{path}:{n}", record) for n, record in read_jsonl(path)]
    elif path.suffix == ".json":
        entries = _json_array(path)
    else:
        entries = [(f"{path}:{n}", line) for n, line in
                   enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1)]
    return entries[:limit] if limit is not None else entries


def _json_array(path: Path) -> list[tuple[str, dict]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise KorlhfError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno}); a .json file "
                          "must be one JSON array of records (use .jsonl for one record per line)") from None
    if not isinstance(data, list):
        raise KorlhfError(f"{path}: expected a JSON array of records, got a JSON {type(data).__name__}")
    for i, record in enumerate(data, 1):
        if not isinstance(record, dict):
            raise KorlhfError(f"{path}: item {i}: expected a JSON object, got {type(record).__name__}")
    return [(f"{path}: item {i}", record) for i, record in enumerate(data, 1)]


def turns_of(record: dict) -> list[str] | None:
    """The answer turns of a multi-turn record (``choices[0].turns``), or None."""
    choices = record.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        turns = choices[0].get("turns")
        if isinstance(turns, list) and turns and all(isinstance(t, str) for t in turns):
            return turns
    return None


def value_of(entry: dict | str, key: str, turns: bool) -> str | list[str] | None:
    """A prediction or reference: a text line, ``record[key]``, or the turns of a multi-turn record.

    With ``turns``, a record's ``choices[0].turns`` come first for ``response`` (`korlhf generate`
    writes ``response`` = the last turn only) and stand in for a missing ``key`` (FastChat's
    reference answers). A list of texts under ``key`` is kept as a list (samples, or one reference
    per turn).
    """
    if isinstance(entry, str):
        return entry
    if turns and (key == "response" or key not in entry):
        turns = turns_of(entry)
        if turns is not None:
            return turns
    value = entry.get(key)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    return value if isinstance(value, str) or value is None else str(value)


def prompt_of(entry: dict | str, key: str, turn: int | None, answers: list[str] | None):
    """The prompt of a turn for a reward model: earlier turns and their answers as a conversation."""
    if isinstance(entry, str):
        return None
    if turn is None:
        return entry.get(key)
    questions = entry.get("turns") or []
    if len(questions) < turn:
        raise KorlhfError("a reward model needs the questions of multi-turn records ('turns')")
    messages = []
    for i in range(turn - 1):
        messages += [{"role": "user", "content": questions[i]}, {"role": "assistant", "content": answers[i]}]
    return [*messages, {"role": "user", "content": questions[turn - 1]}]


def _check_ids(pred_where: str, pred: dict | str, ref_where: str, ref: dict | str) -> None:
    if isinstance(pred, str) or isinstance(ref, str):
        return
    for key in ID_KEYS:
        if key in pred and key in ref and pred[key] != ref[key]:
            raise KorlhfError(f"{pred_where} ({key} {pred[key]!r}) is paired with {ref_where} ({key} {ref[key]!r}); "
                              "the two files are in different orders or one has an extra record")


def _split_turns(where: str, pred, ref, ref_where: str) -> list[tuple[str, str | None, int | None]]:
    """(prediction, reference, turn) of one record: one per turn for multi-turn answers."""
    if not isinstance(pred, list):
        return [(pred, ref[0] if isinstance(ref, list) else ref, None)]
    if pred is not None and ref is None:
        return [(p, None, t) for t, p in enumerate(pred, 1)]
    refs = ref if isinstance(ref, list) else [ref]
    if len(refs) != len(pred):
        raise KorlhfError(f"{where}: {len(pred)} answer turns but {len(refs)} reference turn(s) at {ref_where}; "
                          "a multi-turn answer needs one reference per turn (MT-Bench's 'reference' list), "
                          "so that turn 2 is never scored against the reference of turn 1")
    return [(p, r, t) for t, (p, r) in enumerate(zip(pred, refs, strict=True), 1)]


def read_pairs(predictions: str, references: str | None = None, *, prediction_field: str = "response",
               reference_field: str = "reference", prompt_field: str = "prompt", limit: int | None = None,
               unpaired: str = "error", with_prompts: bool = False) -> tuple[list[Pair], bool]:
    """Every scored pair, and whether there are references (see the module doc). ``unpaired``:
    ``error`` (a record without a reference stops the run) or ``skip`` (scored without it: dropped)."""
    preds = read_entries(predictions, limit)
    if not preds:
        raise KorlhfError(f"no predictions in {predictions}")
    pred_values = [value_of(e, prediction_field, prediction_field == "response") for _, e in preds]
    missing = [w for (w, _), v in zip(preds, pred_values, strict=True) if v is None]
    if missing:
        raise KorlhfError(f"{missing[0]}: no '{prediction_field}' field ({len(missing)} of {len(preds)} records "
                          "lack it); name the field with --prediction_field")
    if references:
        refs = read_entries(references, limit)
        if len(refs) != len(preds):
            extra = (preds if len(preds) > len(refs) else refs)[min(len(preds), len(refs))][0]
            raise KorlhfError(f"{predictions} has {len(preds)} predictions but {references} has {len(refs)} "
                              f"references; {extra} is the first without a partner. They pair up entry by entry "
                              "(in a text file, a blank line is an empty entry)")
        ref_values = [value_of(e, reference_field, reference_field == "reference") for _, e in refs]
    elif Path(predictions).suffix in (".jsonl", ".json"):
        refs = preds
        ref_values = [value_of(e, reference_field, False) for _, e in preds]
        if all(v is None for v in ref_values):
            return _pairs(preds, pred_values, None, None, prompt_field, with_prompts), False
    else:
        return _pairs(preds, pred_values, None, None, prompt_field, with_prompts), False
    lacking = [i for i, v in enumerate(ref_values) if v is None]
    if lacking and unpaired == "error":
        have = len(refs) - len(lacking)
        raise KorlhfError(f"{refs[lacking[0]][0]}: no '{reference_field}' field ({len(lacking)} of {len(refs)} "
                          f"records lack it, {have} have one); every prediction needs its reference, or BLEU/ROUGE "
                          "would be over other records than the rest. Add the missing references, name the field "
                          f"with --reference_field, or pass --unpaired skip to score only the {have} paired records")
    keep = [i for i in range(len(preds)) if ref_values[i] is not None]
    if not keep:
        raise KorlhfError(f"no record of {references or predictions} has a '{reference_field}' field")
    return _pairs([preds[i] for i in keep], [pred_values[i] for i in keep], [refs[i] for i in keep],
                  [ref_values[i] for i in keep], prompt_field, with_prompts), True


def _pairs(preds, pred_values, refs, ref_values, prompt_field: str, with_prompts: bool) -> list[Pair]:
    out = []
    for n, ((where, entry), pred) in enumerate(zip(preds, pred_values, strict=True)):
        ref_where, ref = (refs[n][0], ref_values[n]) if refs is not None else (None, None)
        if refs is not None:
            _check_ids(where, entry, ref_where, refs[n][1])
        for text, reference, turn in _split_turns(where, pred, ref, ref_where):
            prompt = prompt_of(entry, prompt_field, turn, pred) if with_prompts else None
            out.append(Pair(where if turn is None else f"{where} turn {turn}", text, reference, turn,
                            ref_where, prompt))
    return out
