"""`korlhf eval judge`: MT-Bench-style LLM-as-a-judge grading of Korean chat models.

What FastChat's ``llm_judge`` (Zheng et al. 2023) does, on any OpenAI-compatible endpoint:

- ``single``: each answer rated 1-10; a two-turn question is rated per turn (turn 2 with the
  whole conversation shown, the judge told to grade the second answer); questions in
  ``reference_categories`` (math, reasoning, coding) show the judge the reference answer.
- ``pairwise``: two models' answers compared in both orders (A/B swapped); the same winner both
  times wins, anything else is a tie, which cancels the judge's position bias. Each model is
  compared with ``baseline`` (win rate against it), or every pair of models without one.

Inputs and prompts are FastChat's formats (`korlhf.evaluation.judge_data`); Korean judge prompts
ship with korlhf (``judge_prompts.jsonl`` next to this file, FastChat's names and layout).
Requests go through `korlhf label`'s API judge (`korlhf.label.api`): the same retries, key handling,
cost counter and answer cache, so a killed or repeated run never pays twice for an answer.

Verdicts: a judge answer without a usable verdict (no ``[[7]]``/``[[A]]``, or a rating outside
1-10) is recorded as FastChat records it (score -1, winner ``error``) and left out of the tables.
With ``judge_temperature: 0`` it is cached and not asked again: the identical request would get the
identical answer; above 0 it is re-asked up to ``parse_retries`` times.

Output directory: ``<judge>_single.jsonl`` or ``<judge>_pair.jsonl`` (FastChat's judgment files:
question_id, model or model_1/model_2, judge, user_prompt, judgment, score or g1/g2 winners, turn),
``results.md`` / ``results.csv`` / ``results.json`` (a model x category and turn table; win rates
in pairwise mode), ``results.png``, ``judge_cache.jsonl`` and ``config.yaml``. Answers inside a
pipeline run folder (``<run>/generate/``, or MT-Bench answers written under ``<run>/``) are judged
into ``<run>/judge`` by default, where the run's ``report.html`` shows them ("LLM judge" section).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from korlhf.errors import KorlhfError
from korlhf.label.api_fields import ApiFields


@dataclass
class Config(ApiFields):
    answers: list[str] = field(metadata={
        "help": "answer files, one per model: korlhf generate output or FastChat model_answer/*.jsonl; "
                "the file name names the model, or NAME=PATH"})
    questions: str | None = field(default=None, metadata={
        "help": "FastChat question.jsonl (question_id, category, turns, reference); default: the questions in "
                "the first answer file (korlhf generate keeps them)"})
    references: str | None = field(default=None, metadata={
        "help": "reference answers in FastChat model-answer format (e.g. reference_answer/gpt-4.jsonl); "
                "default: the questions' 'reference'"})
    mode: str = field(default="single", metadata={"help": "single (1-10 per answer and turn) or pairwise (A/B, both orders)"})
    baseline: str | None = field(default=None, metadata={
        "help": "pairwise: compare every model with this one (a model name); default: every pair of models"})
    judge_prompts: str | None = field(default=None, metadata={
        "help": "FastChat judge_prompts.jsonl (e.g. a Korean MT-Bench's); default: korlhf's Korean prompts"})
    reference_categories: list[str] = field(default_factory=lambda: ["math", "reasoning", "coding"], metadata={
        "help": "categories judged against the reference answer (FastChat's NEED_REF_CATS)"})
    output_dir: str | None = field(default=None, metadata={
        "help": "judgments, results table and plot, answer cache (default: <run>/judge for answers inside a "
                "pipeline run folder, where its report shows them; else runs/judge)"})
    limit: int | None = field(default=None, metadata={"help": "judge only the first N questions"})
    # ApiFields (endpoint, retries, prices) as in `korlhf label`; FastChat's judge defaults:
    judge_model: str = field(default="gpt-4o", kw_only=True, metadata={"help": "the judge's model name at that endpoint"})
    judge_temperature: float = field(default=0.0, kw_only=True, metadata={"help": "judge sampling temperature (FastChat: 0)"})
    judge_max_tokens: int = field(default=2048, kw_only=True, metadata={"help": "longest judge answer (tokens; FastChat: 2048)"})

    def __post_init__(self):
        if self.mode not in ("single", "pairwise"):
            raise ValueError(f"config field 'mode' must be one of single, pairwise; got {self.mode!r}")
        if self.mode == "pairwise" and len(self.answers) < 2:
            raise ValueError("pairwise judging needs answers from at least two models (answers: [a.jsonl, b.jsonl])")


@dataclass
class Match:
    """One judged item: a question's turn, for one model (single) or two (pairwise: g1 = 1 as A, g2 = swapped)."""

    question: object
    turn: int
    models: tuple[str, ...]
    prompt: dict
    user_prompts: list[str]
    requests: list = field(default_factory=list)


def judge_tag(cfg: Config) -> str:
    return cfg.judge_model.replace("/", "_").replace(":", "_")


def _parser(kind: str, temperature: float):
    """Strict (None = ask again) above temperature 0; at 0, FastChat's -1 / "error", so it is cached."""
    from korlhf.evaluation.judge_data import parse_rating, parse_winner

    parse, failed = (parse_rating, -1.0) if kind == "single" else (parse_winner, "error")
    if temperature > 0:
        return parse
    # Empty content stays None: that is a server hiccup, asked again, not the judge's verdict.
    return lambda text: None if not text else (v if (v := parse(text)) is not None else failed)


def plan(cfg: Config, judge, questions, answers, prompts) -> list[Match]:
    from korlhf.evaluation.judge_data import messages, pick_prompt, user_prompt
    from korlhf.label.api import Request

    by_name = {a.model: a for a in answers}
    if cfg.mode == "single":
        groups = [(a.model,) for a in answers]
    elif cfg.baseline:
        groups = [(a.model, cfg.baseline) for a in answers if a.model != cfg.baseline]
    else:
        groups = list(combinations([a.model for a in answers], 2))
    parse = _parser(cfg.mode, cfg.judge_temperature)
    matches = []
    for q in questions:
        needs_ref = q.category in cfg.reference_categories
        for turn in range(1, len(q.turns) + 1):
            prompt = pick_prompt(prompts, cfg.judge_prompts, cfg.mode, needs_ref, turn == 2)
            for models in groups:
                turns = [by_name[m].turns[q.question_id] for m in models]
                orders = [turns] if len(turns) == 1 else [turns, turns[::-1]]
                texts = [user_prompt(prompt, q, order, turn) for order in orders]
                match = Match(q, turn, models, prompt, texts)
                match.requests = [Request(judge.body(messages(prompt, t)), parse) for t in texts]
                matches.append(match)
    return matches


def to_record(match: Match, replies: dict, judge_model: str) -> dict:
    """One FastChat judgment line (plus ``category`` and, when the judge gave no answer, ``error``)."""
    q = match.question
    got = [replies[r.key] for r in match.requests]
    base = {"question_id": q.question_id, "category": q.category}
    judge = [judge_model, match.prompt["name"]]
    errors = [a.error for a in got if a.error]
    if len(match.models) == 1:
        answer = got[0]
        verdict = answer.verdict if answer.verdict is not None else -1
        record = {**base, "model": match.models[0], "judge": judge, "user_prompt": match.user_prompts[0],
                  "judgment": answer.content if answer.content is not None else "$ERROR$", "score": verdict,
                  "turn": match.turn, "tstamp": time.time()}
    else:
        g1 = {"A": "model_1", "B": "model_2"}.get(got[0].verdict, got[0].verdict or "error")
        g2 = {"A": "model_2", "B": "model_1"}.get(got[1].verdict, got[1].verdict or "error")
        record = {**base, "model_1": match.models[0], "model_2": match.models[1], "g1_winner": g1, "g2_winner": g2,
                  "judge": judge, "g1_user_prompt": match.user_prompts[0], "g1_judgment": got[0].content,
                  "g2_user_prompt": match.user_prompts[1], "g2_judgment": got[1].content, "turn": match.turn,
                  "tstamp": time.time()}
    if errors:
        record["error"] = "; ".join(errors)
    return record


def default_output_dir(answers: list[str]) -> Path:
    """``<run>/judge`` when every answer file lies inside one pipeline run folder (the nearest folder
    above it holding ``pipeline.yaml``: ``<run>/generate/sft.jsonl``, ``<run>/mt_bench/ppo.jsonl``),
    so the run's report picks the results up; ``runs/judge`` otherwise."""
    runs = set()
    for spec in answers:
        path = Path(spec.partition("=")[2] if "=" in spec else spec)
        runs.add(next((d for d in path.parents if (d / "pipeline.yaml").is_file()), None))
    run = runs.pop() if len(runs) == 1 else None
    return run / "judge" if run is not None else Path("runs/judge")


def load_inputs(cfg: Config):
    from korlhf.evaluation import judge_data as jd

    answers = [jd.read_answers(spec) for spec in cfg.answers]
    names = [a.model for a in answers]
    if len(set(names)) < len(names):
        raise KorlhfError(f"two answer files name the same model ({', '.join(names)}); name them with NAME=PATH")
    if cfg.baseline and cfg.baseline not in names:
        raise KorlhfError(f"baseline {cfg.baseline!r} is not one of the models: {', '.join(names)}")
    questions = jd.read_questions(cfg.questions or answers[0].path, cfg.limit)
    if cfg.references:
        jd.attach_references(questions, cfg.references)
    jd.check_answers(questions, answers, cfg.reference_categories)
    return questions, answers, jd.load_prompts(cfg.judge_prompts)


def main(cfg: Config) -> dict:
    from rich.console import Console

    from korlhf.config import save_config
    from korlhf.evaluation.judge_table import summarize, write_results
    from korlhf.label.api import ApiJudge
    from korlhf.label.cache import JudgeCache
    from korlhf.records import write_jsonl

    console = Console(stderr=True)
    began = time.perf_counter()
    questions, answers, prompts = load_inputs(cfg)
    out = Path(cfg.output_dir) if cfg.output_dir else default_output_dir(cfg.answers)
    cfg.output_dir = str(out)  # config.yaml says where the results went
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    # At temperature 0 the parser turns a verdict-less answer into -1 / "error" (cached, never
    # re-asked); parse_retries then only re-asks empty answers (see _parser).
    judge = ApiJudge(cfg, JudgeCache(cfg.cache or out / "judge_cache.jsonl"))
    matches = plan(cfg, judge, questions, answers, prompts)
    replies = judge.ask_all([r for m in matches for r in m.requests])
    records = [to_record(m, replies, cfg.judge_model) for m in matches]
    path = out / f"{judge_tag(cfg)}_{'single' if cfg.mode == 'single' else 'pair'}.jsonl"
    write_jsonl(path, records)
    table = summarize(records, cfg.mode, cfg.baseline)
    results = {"mode": cfg.mode, "judge": cfg.judge_model, "judge_prompts": cfg.judge_prompts or "korlhf (Korean)",
               "questions": len(questions), "models": [a.model for a in answers], "baseline": cfg.baseline,
               "judgments": len(records), "failed": sum(1 for r in records if _failed(r)), "table": table,
               "api": judge.counters.to_dict(), "judgment_file": str(path),
               "time_s": round(time.perf_counter() - began, 2)}
    write_results(results, out, console)
    (out / "results.json").write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    return results


def _failed(record: dict) -> bool:
    return record.get("score") == -1 or "error" in (record.get("g1_winner"), record.get("g2_winner"))
