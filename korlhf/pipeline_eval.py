"""The pipeline's last two stages: every model answers the held-out prompts, then is scored.

``generate``: the base model, the SFT model and each aligned model (the policy stages of `korlhf.stages`) answer the same
``eval_limit`` prompts of ``data/build/eval.jsonl`` with one decoding (``generate:`` settings),
written to ``generate/<model>.jsonl`` (records of `korlhf generate`). The base model is prompted
through the SFT template too, so the comparison shows what training added, not a format change.

``eval``: `korlhf eval` metrics of each against the references, the reward model's mean score, and
answer accuracy where answers are checkable (``answer_rule``, or records' short ``answer``); with
an ``answer_rule`` also the accuracy on the first ``eval_limit`` RL prompts (``rl_prompt_accuracy``:
answered into ``generate/rl_prompts/``), so a gain on the prompts RL trained on and one that
carries over to held-out prompts are told apart. Then a decoding sweep of the final model
(`korlhf eval sweep`) into ``eval/sweep/``.
"""

from __future__ import annotations

import json
from pathlib import Path

from korlhf.errors import KorlhfError


def model_dirs(cfg, run: Path) -> dict[str, str]:
    """Name -> path of every model to compare: base, sft, then each finished policy (`korlhf.stages`)."""
    from korlhf import stages

    models = {"base": cfg.model_name_or_path, "sft": str(run / "sft")}
    for stage in stages.policies():
        if stage in cfg.stages and (run / stage / "metrics.json").is_file():
            models[stage] = str(run / stage)
    return models


def eval_items(cfg, run: Path) -> list[dict]:
    from korlhf.generate import read_prompts

    path = run / "data" / "build" / "eval.jsonl"
    if not path.is_file() or not path.stat().st_size:
        raise KorlhfError(f"{path} is missing or empty: the data stage holds out eval prompts with reference "
                          "answers (data_build: eval_size)")
    return read_prompts(path, cfg.eval_limit)


def check_generate(cfg, run: Path) -> None:
    from korlhf.generate import decoding_from

    decoding_from(cfg.generate)


def answer_eval_prompts(cfg, run: Path, fresh: bool = False) -> dict:

    from korlhf.config import save_config
    from korlhf.generate import decoding_from, generate, read_prompts, to_record
    from korlhf.models import default_device, load_causal_lm, load_tokenizer
    from korlhf.records import write_jsonl
    from korlhf.templates import template_name

    out = run / "generate"
    items = eval_items(cfg, run)
    rl_path = run / "data" / "build" / "ppo.jsonl"
    rl_items = read_prompts(rl_path, cfg.eval_limit) if cfg.answer_rule and rl_path.is_file() and \
        rl_path.stat().st_size else []
    decoding = decoding_from(cfg.generate)
    template = cfg.template or template_name(load_tokenizer(run / "sft").chat_template)
    device = default_device()
    times = {}
    for name, path in model_dirs(cfg, run).items():
        tokenizer = load_tokenizer(path, template=template if name == "base" else None)
        model = load_causal_lm(path, tokenizer, device=device)
        gens = generate(model, tokenizer, [item["prompt"] for item in items], decoding,
                        batch_size=cfg.batch_size, progress=True, desc=name)
        settings = {**decoding.to_dict(), "model": path}
        write_jsonl(out / f"{name}.jsonl", [to_record(item, [g], settings) for item, g in zip(items, gens, strict=True)])
        if rl_items:  # the prompts RL trained on: does a gain there carry over to the held-out ones?
            rl_gens = generate(model, tokenizer, [item["prompt"] for item in rl_items], decoding,
                               batch_size=cfg.batch_size)
            write_jsonl(out / "rl_prompts" / f"{name}.jsonl",
                        [to_record(item, [g], settings) for item, g in zip(rl_items, rl_gens, strict=True)])
        times[name] = round(sum(g.time_s for g in gens), 2)
        print(f"{name}: {len(gens)} answers in {times[name]:.1f}s -> {out / f'{name}.jsonl'}")
        del model
    save_config(cfg, out / "config.yaml")
    metrics = {"prompts": len(items), "decoding": decoding.to_dict(), "time_s": times}
    (out / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return metrics


def score_models(cfg, run: Path) -> dict:
    from rich.console import Console
    from rich.table import Table

    from korlhf.evaluation.accuracy import answer_accuracy
    from korlhf.evaluation.metrics import score
    from korlhf.evaluation.score import format_value, reward_scores, write_scores
    from korlhf.records import read_jsonl

    out = run / "eval"
    has_rm = (run / "rm" / "metrics.json").is_file()
    results = {}
    for name in model_dirs(cfg, run):
        records = [r for _, r in read_jsonl(run / "generate" / f"{name}.jsonl")]
        predictions = [r["response"] for r in records]
        rewards = reward_scores(str(run / "rm"), [r["prompt"] for r in records], predictions, cfg.batch_size) \
            if has_rm else None
        scores = score(predictions, [r.get("reference", "") for r in records], rewards=rewards)
        accuracy = answer_accuracy(records, cfg.answer_rule)
        if accuracy is not None:
            scores.corpus["answer_accuracy"] = accuracy
        rl_answers = run / "generate" / "rl_prompts" / f"{name}.jsonl"
        if cfg.answer_rule and rl_answers.is_file():
            scores.corpus["rl_prompt_accuracy"] = answer_accuracy([r for _, r in read_jsonl(rl_answers)],
                                                                  cfg.answer_rule)
        write_scores(scores, out / name)
        results[name] = scores.corpus
    table = Table("metric", *results, title=f"held-out prompts ({len(records)}), {run.name}")
    for metric in results["base"]:
        table.add_row(metric, *(format_value(r.get(metric)) for r in results.values()))
    Console().print(table)
    (out / "models.json").write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return results


def score_and_sweep(cfg, run: Path, fresh: bool = False) -> None:
    """The eval stage: every model scored, then the decoding sweep of the last one."""
    score_models(cfg, run)
    sweep_final(cfg, run)


def sweep_check(cfg, run: Path) -> None:
    sweep_config(cfg, run, "-")


def sweep_config(cfg, run: Path, model: str):
    """`korlhf eval sweep`'s Config: the pipeline's ``sweep:`` settings on ``model`` and the eval prompts."""
    from korlhf.config import config_from_block
    from korlhf.evaluation import sweep

    fixed = {"model": model, "prompts": str(run / "data" / "build" / "eval.jsonl"), "out": str(run / "eval" / "sweep"),
             "limit": cfg.eval_limit, "batch_size": cfg.batch_size}
    if (run / "rm" / "metrics.json").is_file():
        fixed["reward_model"] = str(run / "rm")
    if cfg.answer_rule and "answer_rule" not in cfg.sweep:  # the sweep's accuracy column checks as eval does
        fixed["answer_rule"] = cfg.answer_rule
    sweep_cfg = config_from_block(sweep.Config, "sweep", cfg.sweep, fixed, command="korlhf pipeline (eval)")
    sweep.decodings(sweep_cfg)  # strategies with unknown knobs fail here
    return sweep_cfg


def sweep_final(cfg, run: Path) -> list[dict]:
    """`korlhf eval sweep` on the last model trained, then ``eval/metrics.json`` (the stage is done)."""
    from korlhf.evaluation import sweep

    final = list(model_dirs(cfg, run).values())[-1]
    rows = sweep.main(sweep_config(cfg, run, final))
    models = json.loads((run / "eval" / "models.json").read_text(encoding="utf-8"))
    summary = {"models": models, "sweep_model": final,
               "sweep": [{k: v for k, v in r.items() if k not in ("settings", "signatures")} for r in rows]}
    (run / "eval" / "metrics.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n",
                                              encoding="utf-8")
    return rows
