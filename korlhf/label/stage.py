"""`korlhf label`: AI feedback in place of human feedback.

Step 2 of the recipe. For every prompt, gather K candidate answers (from the input records and/or
sampled from ``models`` through `korlhf.generate`), let a judge score them, and write preference
records ranked best -> worst, ready for `korlhf train rm` and `korlhf train dpo`. KoChatGPT ranked
answers by which model wrote them (ChatGPT > davinci > ada); a judge ranks what they say.

Judges (`korlhf.label.judges`): ``api`` (an LLM behind an OpenAI-compatible endpoint, pairwise with
both orders or pointwise 1-10), ``reward-model`` (a trained reward model), ``rules`` (deterministic
Korean heuristics: a smoke-test judge, it proves plumbing, not quality), ``benchmark`` (KoBEST's
right answers: the truth, no judging).

Output directory: ``config.yaml``; ``candidates.jsonl`` (what was judged); ``preferences.jsonl``
(the ranked records, with ``scores``, every candidate's score, the judge's verdicts and rationale);
``unranked.jsonl`` (the judge found no difference); ``failed.jsonl`` (the judge never gave a usable
verdict: nothing is guessed, a rerun with ``--overwrite`` asks again); ``judge_cache.jsonl`` (api
answers: a killed or repeated run never pays twice); ``agreement.md/json`` when the inputs carry a
known ranking; ``metrics.json`` last.

Ties keep every comparison the judge established (`korlhf.label.ties`): one best answer over a
tied rest (a checker's right / wrong) is one ``tied_after_first`` record ("1 right vs 3 equally
wrong" stays a 4-answer record); otherwise the main record ranks the first answer of each score
group, lists the others under ``tied`` (``tied_with``: the index in ``candidates`` of the answer it
ties) and ``part_of`` records (``tied_after_first``) give the pairs it misses. ``metrics.json``
counts ``pairs_established`` (candidates with different scores) and ``pairs_kept`` (what the
written records give to training); the run fails if they differ. With fewer than two distinct
scores the record goes to ``unranked.jsonl``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from korlhf.errors import KorlhfError
from korlhf.label.api_fields import ApiFields

JUDGES = ("api", "reward-model", "rules", "benchmark")
OUTPUTS = ("preferences.jsonl", "unranked.jsonl", "failed.jsonl", "agreement.md", "agreement.json", "metrics.json")


@dataclass
class Config(ApiFields):
    inputs: list[str] = field(metadata={"help": "prompt / sft / preference JSON Lines, `korlhf generate` outputs, "
                                                "or KoBEST .tsv files"})
    output_dir: str = field(default="runs/label", metadata={
        "help": "run directory: preferences.jsonl, unranked.jsonl, failed.jsonl, judge_cache.jsonl, metrics.json"})
    judge: str = field(default="api", metadata={"help": "api, reward-model, rules (smoke test) or benchmark (KoBEST truth)"})
    limit: int | None = field(default=None, metadata={"help": "label only the first N items"})
    input_responses: str = field(default="candidates", metadata={
        "help": "what an input answer is: candidates (judged), reference (shown to the judge) or ignore"})
    # candidates from models (korlhf.generate)
    models: list[str] = field(default_factory=list, metadata={"help": "models that write candidates (paths or hub ids)"})
    samples_per_model: int = field(default=2, metadata={"help": "answers per prompt from each model"})
    preset: str = field(default="top-p", metadata={"help": "decoding preset for candidates (see `korlhf generate`)"})
    max_new_tokens: int = field(default=256, metadata={"help": "most new tokens per candidate"})
    temperature: float | None = field(default=None, metadata={"help": "sampling temperature (default: the preset's)"})
    seed: int = field(default=0, metadata={"help": "random seed for candidate sampling"})
    batch_size: int = field(default=8, metadata={"help": "prompts per generation batch / answers per reward-model batch"})
    dtype: str = field(default="auto", metadata={"help": "model dtype: auto, float32, bfloat16, float16"})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, ... (default: cuda if available)"})
    # api judge (and ApiFields: endpoint, model, retries, prices)
    mode: str = field(default="pairwise", metadata={"help": "api judge: pairwise (both orders; A/B/tie) or pointwise (1-10)"})
    max_failed_share: float = field(default=0.0, metadata={
        "help": "share of items (0-1) the judge may fail on while the run still succeeds; above it the run "
                "exits non-zero and is not marked finished"})
    # rules judge
    reward_rules: list[str] = field(default_factory=list, metadata={
        "help": "rules judge: score with these reward rules (a checker such as korlhf.demo_data:correct, "
                "or any package.module:function of (prompt, response)) instead of the smoke-test heuristics"})
    # reward-model judge
    reward_model: str | None = field(default=None, metadata={"help": "reward-model judge: a `korlhf train rm` output"})
    max_length: int = field(default=1024, metadata={"help": "reward-model judge: longest input in tokens"})
    overwrite: bool = field(default=False, metadata={"help": "label again a finished run (the judge cache is kept)"})

    def __post_init__(self):
        choices = {"judge": JUDGES, "mode": ("pairwise", "pointwise"),
                   "input_responses": ("candidates", "reference", "ignore")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"config field '{name}' must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        if not 0.0 <= self.max_failed_share <= 1.0:
            raise ValueError(f"config field 'max_failed_share' must be between 0 and 1; got {self.max_failed_share}")
        if self.judge == "reward-model" and not self.reward_model:
            raise ValueError("the reward-model judge needs reward_model (a `korlhf train rm` output directory)")


def smoke_test(cfg: Config) -> bool:
    """The rules judge without ``reward_rules`` scores by heuristics: plumbing, not labels to train on."""
    return cfg.judge == "rules" and not cfg.reward_rules


def judge_name(cfg: Config) -> str:
    from korlhf.label.prompts import TEMPLATE_VERSION

    return {"api": f"api:{cfg.judge_model} ({cfg.mode}, template {TEMPLATE_VERSION})",
            "reward-model": f"reward-model:{cfg.reward_model}",
            "rules": "rules (smoke test)" if smoke_test(cfg) else f"rules:{'+'.join(cfg.reward_rules)}",
            "benchmark": "benchmark"}[cfg.judge]


def main(cfg: Config) -> dict:
    from rich.console import Console

    from korlhf.config import save_config
    from korlhf.label.items import load_items

    console = Console(stderr=True)
    out = Path(cfg.output_dir)
    if (out / "metrics.json").is_file() and not cfg.overwrite:
        console.print(f"{out} already finished (metrics.json is there); --overwrite labels again "
                      "(cached judge answers are reused)")
        return json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    began = time.perf_counter()
    items = load_items(cfg.inputs, cfg.input_responses, cfg.limit)
    for name in OUTPUTS:
        (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    if smoke_test(cfg):
        console.print("[yellow]the rules judge is a smoke test: it proves the plumbing, not the quality of a "
                      "ranking (records are marked smoke_test)[/yellow]")
    items = candidates(cfg, items, out)
    results, counters = judge_items(cfg, items, out)
    kinds = write_outputs(cfg, items, results, out)
    metrics = {"judge": judge_name(cfg), "items": len(items), **{k: len(v) for k, v in kinds.items()},
               "candidates": sum(len(i["candidates"]) for i in items), **pair_counts(cfg, results, kinds),
               "time_s": round(time.perf_counter() - began, 2)}
    if counters is not None:
        metrics["api"] = counters
    if any(item["truth"] for item in items) and cfg.judge != "benchmark":
        metrics["agreement_with_input_ranking"] = agreement_with_truth(items, kinds, out, console)
    check_failed(cfg, kinds["failed"], len(items), out)
    (out / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    summary(metrics, out, console)
    return metrics


def check_failed(cfg: Config, failed: list[dict], items: int, out: Path) -> None:
    """Stop with an error when more items failed than ``max_failed_share`` allows.

    The run is then not marked finished (no metrics.json), so the same command asks again only
    what failed: every answer already given is in the judge cache.
    """
    if not failed or len(failed) <= cfg.max_failed_share * items:
        return
    raise KorlhfError(f"the judge failed on {len(failed)} of {items} item(s) (first: {failed[0]['error'].split('; ')[0][:300]}); "
                      f"they are in {out / 'failed.jsonl'}. Run the same command again to ask only what failed "
                      "(answers already given are cached), or accept a share with --max_failed_share 0.1")


def candidates(cfg: Config, items: list[dict], out: Path) -> list[dict]:
    """Add model candidates (reusing ``candidates.jsonl`` of an interrupted run with the same settings)."""
    from korlhf.label.items import add_generated
    from korlhf.records import read_jsonl, write_jsonl

    path, meta_path = out / "candidates.jsonl", out / "candidates.meta.json"
    meta = {k: getattr(cfg, k) for k in ("inputs", "limit", "input_responses", "models", "samples_per_model",
                                         "preset", "max_new_tokens", "temperature", "seed")}
    if cfg.models:
        if path.is_file() and meta_path.is_file() and json.loads(meta_path.read_text(encoding="utf-8")) == meta:
            return [record for _, record in read_jsonl(path)]
        add_generated(cfg, items)
    tmp = path.with_suffix(".tmp")
    write_jsonl(tmp, items)
    tmp.replace(path)
    meta_path.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    return items


def judge_items(cfg: Config, items: list[dict], out: Path) -> tuple[list[dict], dict | None]:
    """Per item ``{"scores", "judgments", "error"}`` from the chosen judge, and the api counters."""
    from korlhf.label import judges

    if cfg.judge == "benchmark":
        missing = [item["id"] for item in items if not item["truth"]]
        if missing:
            raise KorlhfError(f"the benchmark judge needs inputs with known answers (KoBEST .tsv files or ranked "
                              f"preference records); {len(missing)} item(s) have none, first: {missing[0]}")
        return [{"scores": None, "judgments": [], "error": None} for _ in items], None
    if cfg.judge == "rules":
        return judges.rules_judgments(items, cfg.reward_rules), None
    if cfg.judge == "reward-model":
        return judges.reward_model_judgments(cfg, items), None
    from korlhf.label.api import ApiJudge
    from korlhf.label.cache import JudgeCache

    cache = JudgeCache(cfg.cache or out / "judge_cache.jsonl")
    judge = ApiJudge(cfg, cache)
    askable = [item for item in items if len(item["candidates"]) >= 2]
    by_id = dict(zip(map(id, askable), judges.api_judgments(judge, askable, cfg.mode), strict=True))
    results = [by_id.get(id(item), {"scores": None, "judgments": [], "error": None}) for item in items]
    return results, judge.counters.to_dict()


def rank(item: dict, result: dict, judge: str, kind: str, smoke: bool = False) -> tuple[str, list[dict]]:
    """("preferences" | "unranked" | "failed", records) for one judged item (see the module doc on ties)."""
    base = {"id": item["id"], "prompt": item["prompt"], "source": item["source"] or "label", "judge": judge}
    if smoke:
        base["smoke_test"] = True
    if item["reference"]:
        base["reference"] = item["reference"]
    if kind == "benchmark":
        return "preferences", [{**base, **item["truth"], "source": item["source"] or "benchmark"}]
    if result["error"]:
        return "failed", [{**base, "candidates": item["candidates"], "error": result["error"],
                           "judgments": result["judgments"]}]
    if len(item["candidates"]) < 2:
        return "unranked", [{**base, "candidates": item["candidates"], "reason": "fewer than 2 candidates"}]
    from korlhf.label.ties import ranked_records

    scores = result["scores"]
    candidates = [{**c, "score": s} for c, s in zip(item["candidates"], scores, strict=True)]
    records = ranked_records({**base, "candidates": candidates, "judgments": result["judgments"]}, candidates, scores)
    if not records:
        return "unranked", [{**base, "candidates": candidates, "judgments": result["judgments"],
                             "reason": f"the judge found no difference between the {len(scores)} candidates"}]
    return "preferences", records


def pair_counts(cfg: Config, results: list[dict], kinds: dict) -> dict:
    """Pairs the judge established vs pairs the written records give to training: equal by design."""
    from korlhf.label.ties import established_pairs
    from korlhf.records import ranking_pairs

    if cfg.judge == "benchmark":
        return {}
    established = sum(established_pairs(r["scores"]) for r in results if not r["error"] and r.get("scores"))
    kept = sum(len(ranking_pairs(r)) for r in kinds["preferences"])
    if established != kept:
        raise RuntimeError(f"bug: the judge established {established} pairs but the preferences keep {kept}")
    return {"pairs_established": established, "pairs_kept": kept}


def write_outputs(cfg: Config, items: list[dict], results: list[dict], out: Path) -> dict[str, list[dict]]:
    from korlhf.records import write_jsonl

    kinds: dict[str, list[dict]] = {"preferences": [], "unranked": [], "failed": []}
    name = judge_name(cfg)
    for item, result in zip(items, results, strict=True):
        kind, records = rank(item, result, name, cfg.judge, smoke_test(cfg))
        kinds[kind].extend(records)
    for kind, records in kinds.items():
        write_jsonl(out / f"{kind}.jsonl", records)
    return kinds


def agreement_with_truth(items: list[dict], kinds: dict, out: Path, console) -> dict:
    """Judge vs the ranking the inputs came with (KoBEST answers, an earlier judge, people)."""
    from korlhf.label.agree import compare, print_report, rater_summary, write_report

    truth = [{"prompt": i["prompt"], **i["truth"]} for i in items if i["truth"]]
    report = compare(rater_summary(kinds["preferences"] + kinds["unranked"]), rater_summary(truth),
                     ["judge", "input ranking"])
    print_report(report, console)
    write_report(report, out / "agreement")
    return {k: report[k] for k in ("pairs_compared", "agreement", "agreement_without_ties", "cohen_kappa")}


def summary(metrics: dict, out: Path, console) -> None:
    line = (f"[bold]label[/bold] {metrics['judge']}: {metrics['items']} items, {metrics['candidates']} candidates -> "
            f"{metrics['preferences']} ranked, {metrics['unranked']} unranked, {metrics['failed']} failed")
    if "pairs_kept" in metrics:
        line += f"; {metrics['pairs_kept']} of {metrics['pairs_established']} established pairs kept"
    api = metrics.get("api")
    if api:
        line += (f"; {api['requests']} requests ({api['cache_hits']} cached answers reused), "
                 f"{api['prompt_tokens'] + api['completion_tokens']} tokens, ${api['cost_usd']:.4f}")
    console.print(line + f" in {metrics['time_s']}s -> {out}")
    if metrics["failed"]:
        console.print(f"[yellow]{metrics['failed']} item(s) failed (see {out / 'failed.jsonl'}); rerun with "
                      "--overwrite to ask again: cached answers are not paid twice[/yellow]")
