"""Inputs of `korlhf eval judge` in FastChat `llm_judge` formats, the judge's prompts and its verdicts.

- questions: FastChat ``question.jsonl`` (``question_id``, ``category``, ``turns``, optional
  ``reference``: one answer per turn); or the questions a `korlhf generate` output carries.
- answers: `korlhf generate` output (``choices[0].turns``; a single-turn prompt record's
  ``response``) or FastChat ``model_answer/<model>.jsonl``; the model is named by the file stem, as
  FastChat names it, or ``NAME=PATH``.
- judge prompts: FastChat ``judge_prompts.jsonl`` (``name``, ``type``, ``system_prompt``,
  ``prompt_template``, ``description``, ``category``, ``output_format``). The user prompt is the
  template filled in exactly as FastChat's ``run_judge_single`` / ``run_judge_pair`` fill it
  (``question``/``answer``, ``question_1``/``answer_a_2``, ``ref_answer_1``...), so a public Korean
  MT-Bench's prompt file gives the same requests, and scores comparable with its tables.
- verdicts: parsed as FastChat does: the first ``[[7]]`` (else ``[7]``) for a rating, ``[[A]]`` then
  ``[[B]]`` then ``[[C]]`` (tie) for a pairwise verdict. A rating outside 1-10 is no rating.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from korlhf.errors import KorlhfError

DEFAULT_PROMPTS = Path(__file__).with_name("judge_prompts.jsonl")
PROMPT_KEYS = ("name", "type", "system_prompt", "prompt_template", "output_format")
# Which prompt judges what, as FastChat's make_judge_single / make_judge_pairwise pick them.
PROMPT_NAMES = {("single", False, False): "single-v1", ("single", True, False): "single-math-v1",
                ("single", False, True): "single-v1-multi-turn", ("single", True, True): "single-math-v1-multi-turn",
                ("pairwise", False, False): "pair-v2", ("pairwise", True, False): "pair-math-v1",
                ("pairwise", False, True): "pair-v2-multi-turn", ("pairwise", True, True): "pair-math-v1-multi-turn"}
_ONE_SCORE = re.compile(r"\[\[(\d+\.?\d*)\]\]")
_ONE_SCORE_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")


@dataclass
class Question:
    question_id: object
    category: str
    turns: list[str]
    reference: list[str] | None = None
    where: str = ""


@dataclass
class Answers:
    model: str
    path: str
    turns: dict = field(default_factory=dict)  # question_id -> answer turns


def _records(path: str | Path) -> list[tuple[str, dict]]:
    from korlhf.evaluation.inputs import read_entries

    path = Path(path)
    if path.suffix not in (".jsonl", ".json"):
        raise KorlhfError(f"{path}: expected a .jsonl (or .json array) file of records")
    return read_entries(path)


def _qid(record: dict, n: int):
    return record.get("question_id", record.get("id", n))


def read_questions(path: str, limit: int | None = None) -> list[Question]:
    """Questions from a FastChat question file, or those carried by a `korlhf generate` output."""
    questions, seen = [], {}
    for n, (where, record) in enumerate(_records(path), 1):
        turns = record.get("turns")
        if turns is None and isinstance(record.get("prompt"), str):
            turns = [record["prompt"]]
        if not isinstance(turns, list) or not turns or not all(isinstance(t, str) for t in turns):
            raise KorlhfError(f"{where}: a question needs 'turns' (a list of user messages) or a 'prompt' string")
        if len(turns) > 2:
            raise KorlhfError(f"{where}: {len(turns)} turns; MT-Bench judge prompts cover one or two turns")
        reference = record.get("reference")
        if isinstance(reference, str):
            reference = [reference]
        q = Question(_qid(record, n), str(record.get("category") or "general"), turns, reference or None, where)
        if q.question_id in seen:
            raise KorlhfError(f"{where}: question_id {q.question_id!r} again (first at {seen[q.question_id]})")
        seen[q.question_id] = where
        questions.append(q)
    if not questions:
        raise KorlhfError(f"no questions in {path}")
    return questions[:limit] if limit is not None else questions


def read_answers(spec: str) -> Answers:
    """One model's answers: ``PATH`` (named by its stem) or ``NAME=PATH``."""
    from korlhf.evaluation.inputs import turns_of

    name, eq, path = spec.partition("=")
    if not eq:
        name, path = Path(spec).stem, spec
    answers = Answers(name, path)
    for n, (where, record) in enumerate(_records(path), 1):
        turns = turns_of(record)
        if turns is None and isinstance(record.get("response"), str):
            turns = [record["response"]]
        if turns is None:
            raise KorlhfError(f"{where}: no answer: expected 'choices' with 'turns' (korlhf generate on MT-Bench "
                              "questions, FastChat model_answer) or a 'response'")
        answers.turns[_qid(record, n)] = turns
    return answers


def attach_references(questions: list[Question], path: str) -> None:
    """References from a FastChat reference-answer file (model-answer format), by question_id."""
    refs = read_answers(path).turns
    for q in questions:
        if q.question_id in refs:
            q.reference = refs[q.question_id]


def check_answers(questions: list[Question], answers: list[Answers], ref_categories: list[str]) -> None:
    """Every model answers every turn of every question; reference categories have references."""
    for q in questions:
        if q.category in ref_categories and (not q.reference or len(q.reference) < len(q.turns)):
            raise KorlhfError(f"{q.where}: category {q.category!r} is judged against a reference answer, but the "
                              f"question has {len(q.reference or [])} reference turn(s) for {len(q.turns)} turn(s); "
                              "add 'reference' (one answer per turn), pass --references FILE, or change "
                              "reference_categories")
        for a in answers:
            got = a.turns.get(q.question_id)
            if got is None:
                raise KorlhfError(f"{a.path}: no answer to question_id {q.question_id!r} ({q.where}); every model "
                                  "must answer every question (or judge fewer with --limit)")
            if len(got) < len(q.turns):
                raise KorlhfError(f"{a.path}: question_id {q.question_id!r} has {len(q.turns)} turns but "
                                  f"{len(got)} answer turn(s)")


def load_prompts(path: str | Path | None) -> dict[str, dict]:
    """Judge prompts by name from a FastChat judge_prompts.jsonl (default: korlhf's Korean prompts)."""
    from korlhf.records import read_jsonl

    path = Path(path) if path else DEFAULT_PROMPTS
    prompts = {}
    for lineno, record in read_jsonl(path):
        missing = [k for k in PROMPT_KEYS if not isinstance(record.get(k), str)]
        if missing:
            raise KorlhfError(f"{path}:{lineno}: judge prompt without {', '.join(missing)} (FastChat judge_prompts "
                              "format: name, type, system_prompt, prompt_template, description, category, output_format)")
        prompts[record["name"]] = record
    return prompts


def pick_prompt(prompts: dict, path, mode: str, needs_ref: bool, multi_turn: bool) -> dict:
    name = PROMPT_NAMES[(mode, needs_ref, multi_turn)]
    prompt = prompts.get(name)
    expected = {"single": "[[rating]]", "pairwise": "[[A]]"}[mode]
    if prompt is None:
        raise KorlhfError(f"{path or DEFAULT_PROMPTS}: no judge prompt named {name!r} (FastChat's names: "
                          f"{', '.join(n for (m, _, _), n in PROMPT_NAMES.items() if m == mode)})")
    if prompt["output_format"] != expected:
        raise KorlhfError(f"{path}: judge prompt {name!r} has output_format {prompt['output_format']!r}; "
                          f"korlhf reads {expected!r}")
    return prompt


def user_prompt(prompt: dict, q: Question, answers: list[list[str]], turn: int) -> str:
    """The template filled in as FastChat does: one answer (single) or two (pairwise, A then B)."""
    kwargs = {f"ref_answer_{i}": r for i, r in enumerate(q.reference or [], 1)}
    if turn == 1:
        kwargs["question"] = q.turns[0]
    else:
        kwargs.update(question_1=q.turns[0], question_2=q.turns[1])
    if len(answers) == 1:
        if turn == 1:
            kwargs["answer"] = answers[0][0]
        else:
            kwargs.update(answer_1=answers[0][0], answer_2=answers[0][1])
    elif turn == 1:
        kwargs.update(answer_a=answers[0][0], answer_b=answers[1][0])
    else:
        kwargs.update(answer_a_1=answers[0][0], answer_b_1=answers[1][0], answer_a_2=answers[0][1],
                      answer_b_2=answers[1][1])
    try:
        return prompt["prompt_template"].format(**kwargs)
    except (KeyError, IndexError) as exc:
        raise KorlhfError(f"judge prompt {prompt['name']!r} asks for {{{exc.args[0]}}}, which FastChat does not "
                          f"fill for this question ({q.where}); fields given: {', '.join(sorted(kwargs))}") from None


def messages(prompt: dict, text: str) -> list[dict]:
    system = prompt["system_prompt"]
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]


def parse_rating(text: str | None) -> float | None:
    """FastChat's rating: the first ``[[x]]``, else the first ``[x]``; None when absent or outside 1-10."""
    match = _ONE_SCORE.search(text or "") or _ONE_SCORE_BACKUP.search(text or "")
    if not match:
        return None
    rating = float(match.group(1))
    return rating if 1 <= rating <= 10 else None


def parse_winner(text: str | None) -> str | None:
    """FastChat's pairwise verdict: ``A`` if ``[[A]]`` is there, else ``B``, else ``tie`` for ``[[C]]``."""
    text = text or ""
    for marker, winner in (("[[A]]", "A"), ("[[B]]", "B"), ("[[C]]", "tie")):
        if marker in text:
            return winner
    return None

