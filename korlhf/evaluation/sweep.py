"""`korlhf eval sweep`: several decoding strategies over one prompt set, scored side by side.

Each strategy is a preset plus overrides (``{name: hot, preset: top-p, temperature: 1.2}``). The
model loads once; every strategy answers the same prompts with the same seed, is scored with
`korlhf.evaluation.metrics.score` (against the prompt records' reference answers when they have
them), and lands in one table: printed, ``results.md``, ``results.csv``, ``results.json``, one PNG
per metric in ``plots/`` and ``plots/overview.png``. The generations stay in ``generations/``,
ready for ``korlhf eval sheet``. "The best decoding strategy" is then a measured answer: with an
``answer_rule`` (a checker) or records holding a short ``answer``, an ``accuracy`` column; every
metric that can have one gets a 95% bootstrap interval (`korlhf.evaluation.intervals`), and a
strategy is marked best on a metric only where its interval clears every other strategy's.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from korlhf.errors import KorlhfError

DEFAULT_STRATEGIES = [{"preset": name} for name in
                      ("greedy", "beam", "sample", "top-k", "top-p", "typical-p", "min-p", "contrastive")]
# Which way is better, for marking the best strategy per metric (others are just reported).
HIGHER = {"accuracy", "bleu", "bleu_char", "chrf", "chrf++", "rouge1", "rouge2", "rougeL", "rouge1_char", "rouge2_char",
          "rougeL_char", "distinct_1", "distinct_2", "hangul_ratio", "reward"}
LOWER = {"rep_2", "rep_4", "self_bleu", "refusal", "empty"}
NOT_PLOTTED = {"n", "len_chars_median", "len_chars_p90"}


@dataclass
class Config:
    model: str = field(metadata={"help": "model directory or hub id"})
    prompts: str = field(metadata={"help": "prompt records (with 'response' = reference answer) or text lines"})
    strategies: list[dict] = field(default_factory=lambda: [dict(s) for s in DEFAULT_STRATEGIES], metadata={
        "help": "decoding strategies: each a preset plus any `korlhf generate` knob, and an optional name"})
    references: str | None = field(default=None, metadata={
        "help": "reference answers (JSON Lines 'reference'/'response' or text lines); default: the prompts' 'response'"})
    max_new_tokens: int = field(default=128, metadata={"help": "default for every strategy"})
    seed: int = field(default=0, metadata={"help": "the same seed for every strategy"})
    batch_size: int = field(default=8, metadata={"help": "prompts per batch"})
    limit: int | None = field(default=None, metadata={"help": "only the first N prompts"})
    template: str | None = field(default=None, metadata={"help": "chat template name instead of the model's"})
    raw: bool = field(default=False, metadata={"help": "no chat template (base models)"})
    system: str | None = field(default=None, metadata={"help": "system message before every prompt"})
    reward_model: str | None = field(default=None, metadata={"help": "also report this reward model's mean score"})
    answer_rule: str | None = field(default=None, metadata={
        "help": "accuracy column: a checker package.module:function(prompt, response) -> 1.0 for right (the demo: "
                "korlhf.demo_data:correct); default: records' short `answer` appears in the response"})
    dtype: str = field(default="auto", metadata={"help": "auto, float32, bfloat16 or float16"})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, ... (default: cuda if available)"})
    out: str = field(default="runs/sweep", metadata={"help": "output directory"})


def strategy_name(strategy: dict) -> str:
    if strategy.get("name"):
        return str(strategy["name"])
    extra = [f"{k}={v}" for k, v in strategy.items() if k not in ("preset", "name")]
    return "+".join([str(strategy.get("preset", "greedy")), *extra])


def decodings(cfg: Config) -> dict:
    from korlhf.decoding import Decoding
    from korlhf.generate import decoding_from

    if not cfg.strategies:
        raise KorlhfError("the sweep has no strategies; list some under 'strategies:' in the config")
    known = {f for f in Decoding.__dataclass_fields__} | {"name"}
    decodings = {}
    for i, strategy in enumerate(cfg.strategies, 1):
        unknown = sorted(set(strategy) - known)
        if unknown:
            raise KorlhfError(f"strategy {i} ({strategy_name(strategy)}): unknown key(s) {', '.join(unknown)}; "
                              f"use a preset and `korlhf generate` knobs")
        values = {"max_new_tokens": cfg.max_new_tokens, "seed": cfg.seed, **strategy}
        name = strategy_name(strategy)
        if name in decodings:
            raise KorlhfError(f"strategy {i}: the name {name!r} is used twice; give one a 'name:'")
        decodings[name] = decoding_from(values)
    return decodings


def _references(cfg: Config, items: list[dict]) -> list[str] | None:
    from korlhf.evaluation.score import read_column

    if cfg.references:
        path = Path(cfg.references)
        refs = read_column(path, "reference", cfg.limit, required=False) if path.suffix == ".jsonl" else None
        refs = refs or read_column(path, "response", cfg.limit)
        if len(refs) != len(items):
            raise KorlhfError(f"{cfg.references} has {len(refs)} references for {len(items)} prompts")
        return refs
    refs = [item.get("reference", item.get("response")) for item in items]
    return refs if all(isinstance(r, str) for r in refs) else None


def main(cfg: Config) -> list[dict]:
    from korlhf.config import save_config
    from korlhf.evaluation.accuracy import right_answers
    from korlhf.evaluation.intervals import intervals
    from korlhf.evaluation.metrics import score
    from korlhf.evaluation.score import reward_scores
    from korlhf.generate import generate, read_prompts, to_record
    from korlhf.models import default_device, load_causal_lm, load_tokenizer
    from korlhf.records import write_jsonl

    strategies = decodings(cfg)
    items = read_prompts(cfg.prompts, cfg.limit)
    if any("turns" in item for item in items):
        raise KorlhfError(f"{cfg.prompts}: the sweep takes single-turn prompts; use `korlhf generate` for MT-Bench turns")
    references = _references(cfg, items)
    out = Path(cfg.out)
    (out / "generations").mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    tokenizer = load_tokenizer(cfg.model, template=cfg.template)
    model = load_causal_lm(cfg.model, tokenizer, dtype=cfg.dtype, device=default_device(cfg.device))
    rows = []
    for name, decoding in strategies.items():
        began = time.perf_counter()
        gens = generate(model, tokenizer, [item["prompt"] for item in items], decoding, batch_size=cfg.batch_size,
                        system=cfg.system, chat_template=not cfg.raw, progress=True, desc=name)
        elapsed = time.perf_counter() - began
        settings = {**decoding.to_dict(), "model": cfg.model}
        write_jsonl(out / "generations" / f"{_file_name(name)}.jsonl",
                    [to_record(item, [g], settings) for item, g in zip(items, gens, strict=True)])
        predictions = [g.response for g in gens]
        rewards = (reward_scores(cfg.reward_model, [i["prompt"] for i in items], predictions, cfg.batch_size)
                   if cfg.reward_model else None)
        result = score(predictions, references, rewards=rewards)
        right = right_answers([{**item, "response": p} for item, p in zip(items, predictions, strict=True)],
                              cfg.answer_rule)
        extra = {"accuracy": [float(r) for r in right]} if right else {}
        if right:
            result.corpus["accuracy"] = sum(right) / len(right)
        new_tokens = sum(sum(g.response_tokens) for g in gens)
        rows.append({"strategy": name, **result.corpus, "tokens_per_s": new_tokens / max(elapsed, 1e-9),
                     "time_s": elapsed, "settings": decoding.to_dict(), "signatures": result.signatures,
                     "intervals": intervals(result.samples, predictions, references, extra)})
    write_results(rows, out)
    return rows


def _file_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_.=" else "_" for ch in name)


def metric_columns(rows: list[dict]) -> list[str]:
    columns = [k for k in rows[0] if k not in ("strategy", "settings", "signatures", "intervals")]
    return (["accuracy"] if "accuracy" in columns else []) + [c for c in columns if c != "accuracy"]


def best_strategy(rows: list[dict], metric: str) -> str | None:
    """The strategy whose 95% interval on ``metric`` clears every other's; None if none does (a tie,
    within the noise), or the metric has no direction or no interval."""
    bounds = [(r["intervals"][metric], r[metric], r["strategy"]) for r in rows
              if metric in r.get("intervals", {}) and not math.isnan(r[metric])]
    if metric not in HIGHER | LOWER or len(bounds) < 2 or len(bounds) < len(rows):
        return None
    higher = metric in HIGHER
    (low, high), _, name = max(bounds, key=lambda b: b[1]) if higher else min(bounds, key=lambda b: b[1])
    others = [b for b in bounds if b[2] != name]
    separated = all(low > o[0][1] for o in others) if higher else all(high < o[0][0] for o in others)
    return name if separated else None


def cell(row: dict, metric: str) -> str:
    """A value with its interval, e.g. ``0.48 [0.40, 0.56]``."""
    from korlhf.evaluation.score import format_value

    value = format_value(row.get(metric))
    bounds = row.get("intervals", {}).get(metric)
    return f"{value} [{format_value(bounds[0])}, {format_value(bounds[1])}]" if bounds else value


def write_results(rows: list[dict], out: Path) -> None:
    """Terminal table, results.md, results.csv, results.json and the plots."""

    columns = metric_columns(rows)
    (out / "results.json").write_text(json.dumps(rows, ensure_ascii=False, indent=2), encoding="utf-8")
    with open(out / "results.csv", "w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        bounded = [c for c in columns if c in rows[0].get("intervals", {})]
        writer.writerow(["strategy", *columns, *(f"{c}_{end}" for c in bounded for end in ("low", "high"))])
        writer.writerows([[r["strategy"], *(r.get(c) for c in columns),
                           *(r["intervals"][c][i] for c in bounded for i in (0, 1))] for r in rows])
    best = {c: best_strategy(rows, c) for c in columns}
    lines = ["| strategy | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for r in rows:
        cells = [f"**{cell(r, c)}**" if best[c] == r["strategy"] else cell(r, c) for c in columns]
        lines.append(f"| {r['strategy']} | " + " | ".join(cells) + " |")
    signatures = rows[0]["signatures"]
    notes = ["", "In brackets: 95% bootstrap interval (1,000 resamples of the prompts). Bold: the best strategy "
             "on a metric with a direction (higher for accuracy/BLEU/ROUGE/chrF/distinct/reward, lower for "
             "rep/self-BLEU/refusal/empty), only where its interval clears every other strategy's; no bold: "
             "the best is within the noise.", ""]
    notes += [f"- {name} signature: `{sig}`" for name, sig in signatures.items()]
    (out / "results.md").write_text("\n".join(lines + notes) + "\n", encoding="utf-8")
    _print_table(rows, columns, best)
    plot_metrics(rows, [c for c in columns if c not in NOT_PLOTTED], out / "plots")


def _print_table(rows, columns, best) -> None:
    from rich.console import Console
    from rich.table import Table


    table = Table("metric", *[r["strategy"] for r in rows],
                  title="decoding sweep: value [95% interval], bold where the best clears the others")
    for c in columns:
        table.add_row(c, *[f"[bold]{cell(r, c)}[/bold]" if best[c] == r["strategy"] else cell(r, c) for r in rows])
    console = Console()
    if not console.is_terminal:  # a log file: no wrapping into unreadable columns
        console = Console(width=max(console.width, 16 + 10 * len(rows)))
    console.print(table)


def plot_metrics(rows: list[dict], metrics: list[str], out_dir: Path) -> list[Path]:
    """One bar chart per metric (``<metric>.png``) and all of them in ``overview.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    names = [r["strategy"] for r in rows]
    paths = []
    cols = 4
    grid, axes = plt.subplots(math.ceil(len(metrics) / cols), cols, figsize=(4 * cols, 3 * math.ceil(len(metrics) / cols)),
                              squeeze=False)
    for ax in axes.flat[len(metrics):]:
        ax.set_visible(False)
    for metric, grid_ax in zip(metrics, axes.flat, strict=False):
        values = [float(r.get(metric, math.nan)) for r in rows]
        fig, ax = plt.subplots(figsize=(max(4, 0.8 * len(rows) + 2), 3.2))
        for target in (ax, grid_ax):
            target.bar(names, values, color="#4c72b0")
            target.set_title(metric + (" (higher is better)" if metric in HIGHER else
                                       " (lower is better)" if metric in LOWER else ""), fontsize=9)
            target.tick_params(axis="x", labelsize=7)
            plt.setp(target.get_xticklabels(), rotation=40, ha="right")
            finite = [v for v in values if not math.isnan(v)]
            if finite and min(finite) >= 0:
                target.set_ylim(bottom=0, top=max(finite) * 1.1 or 1.0)
        fig.tight_layout()
        path = out_dir / f"{_file_name(metric)}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    grid.tight_layout()
    grid.savefig(out_dir / "overview.png", dpi=80)
    plt.close(grid)
    return paths
