"""`korlhf compare`: alignment methods side by side, from one SFT model, on the same prompts, several seeds.

Reads a finished pipeline run (``runs/<name>/`` with ``data/``, ``sft/`` and, for methods that use
it, ``rm/``) and trains each method of ``methods`` once per seed into ``<out>/<method>/seed<k>/``
with the stage's own code (`korlhf train ppo|grpo|rloo|dpo`). A method is a stage name plus that
stage's fields; ``{run}`` in a value is the run folder::

    methods:
    - {name: ppo-rm, stage: ppo, reward_model: "{run}/rm"}
    - {name: ppo-rule, stage: ppo, reward_rules: [korlhf.demo_data:correct]}
    - {name: dpo, stage: dpo}

Every trained policy (and the SFT model, the baseline) is then measured the same way:
greedy answers to the held-out prompts (``data/build/eval.jsonl``) and to the prompts it trained
on, scored by ``answer_rule`` where answers are checkable; the reward model's mean score of the
held-out answers; KL to the SFT model (sum over tokens of log pi - log pi_sft on one seeded
sample per held-out prompt); training wall time. ``results.json``, ``results.md`` (mean ± std
over seeds) and ``compare.png`` land in ``<out>``; `korlhf pipeline`'s report shows them. A
finished (method, seed) is skipped on rerun; ``--force NAME`` redoes one.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from korlhf.errors import KorlhfError

RESULT = "compare.json"


@dataclass
class Config:
    run_dir: str = field(metadata={"help": "a finished `korlhf pipeline` / `korlhf demo` run (data/, sft/, rm/)"})
    methods: list[dict] = field(default_factory=list, metadata={
        "help": "each {name, stage: ppo|grpo|rloo|dpo, ...fields of that stage}; {run} is the run folder"})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "one training run per seed"})
    out: str | None = field(default=None, metadata={"help": "results folder (default: <run_dir>/compare)"})
    answer_rule: str | None = field(default=None, metadata={
        "help": "package.module:function(prompt, response) -> 1.0 for a right answer (the demo: "
                "korlhf.demo_data:correct); default: records' `answer` appears in the response"})
    eval_limit: int = field(default=150, metadata={"help": "held-out prompts answered by every model"})
    train_limit: int = field(default=150, metadata={"help": "training prompts answered by every model"})
    max_new_tokens: int = field(default=24, metadata={"help": "answer length for the measurements"})
    batch_size: int = field(default=50, metadata={"help": "generation batch size"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0: torch's default); set it for "
                                                       "numbers that repeat exactly on one machine"})
    force: list[str] = field(default_factory=list, metadata={"help": "methods to train and measure again"})

    def __post_init__(self):
        from korlhf import stages

        if not self.methods:
            raise ValueError("no methods: list them under `methods:` ({name, stage, ...stage fields})")
        names = [m.get("name") for m in self.methods]
        for method in self.methods:
            if not isinstance(method, dict) or not method.get("name") or method.get("stage") not in stages.policies():
                raise ValueError(f"method {method!r}: needs a name and a stage ({', '.join(stages.policies())})")
        if len(set(names)) != len(names):
            raise ValueError(f"method names repeat: {names}")
        if not self.seeds:
            raise ValueError("seeds is empty: give at least one")


def main(cfg: Config) -> dict:
    import torch
    from rich.console import Console

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    console = Console()
    run = Path(cfg.run_dir)
    out = Path(cfg.out) if cfg.out else run / "compare"
    configs = {(m["name"], seed): stage_config(m, run, out, seed) for m in cfg.methods for seed in cfg.seeds}
    if not (run / "sft" / "metrics.json").is_file():
        raise KorlhfError(f"{run}/sft has no finished SFT model: run `korlhf pipeline` (or `korlhf demo`) first")
    bench = Bench(cfg, run)
    rl_prompts = [str(run / "data" / "build" / "ppo.jsonl")]  # the SFT model's accuracy where RL trains
    rows = [measured(out / "sft", lambda: bench.measure("sft", str(run / "sft"), rl_prompts, None), "sft" in cfg.force)]
    for (name, seed), (module, stage_cfg) in configs.items():
        folder = Path(stage_cfg.output_dir)
        console.rule(f"[bold]{name}[/bold] seed {seed}")
        rows.append(measured(folder, lambda: bench.train_and_measure(name, seed, module, stage_cfg),  # noqa: B023
                             name in cfg.force))
    summary = summarize(rows)
    write_results(out, rows, summary, console)
    return summary


def stage_config(method: dict, run: Path, out: Path, seed: int):
    """(stage module, its Config) for one method and seed: the run's SFT model, data and paths filled in."""
    import importlib

    from korlhf import stages
    from korlhf.config import build_config

    stage = stages.get(method["stage"])
    module = importlib.import_module(stage.module)
    # As the pipeline chains it (`korlhf.stages` inputs), on the run's own data: rankings, not labels.
    preferences = run / "data" / "build" / "rm.jsonl"
    settings = {k: stages.fill(v, run=run, preferences=preferences) for k, v in stage.inputs.items()
                if k in ("model_name_or_path", "train_files")}
    settings.update({k: stages.fill(v, run=run) for k, v in method.items() if k not in ("name", "stage")})
    settings.update(output_dir=str(out / method["name"] / f"seed{seed}"), seed=seed, resume=True)
    raw = {k: (v, f"compare method {method['name']!r}") for k, v in settings.items()}
    return module, build_config(module.Config, raw, command=f"korlhf compare ({method['name']})")


def measured(folder: Path, compute, force: bool) -> dict:
    """The row saved in ``folder/compare.json``, or ``compute()`` saved there."""
    path = folder / RESULT
    if path.is_file() and not force:
        return json.loads(path.read_text(encoding="utf-8"))
    row = compute()
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(row, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return row


class Bench:
    """What every model is measured on, loaded once: prompts, the SFT reference, the reward model."""

    def __init__(self, cfg: Config, run: Path):
        from korlhf.generate import read_prompts

        self.cfg, self.run = cfg, run
        self.eval_items = read_prompts(run / "data" / "build" / "eval.jsonl", cfg.eval_limit)
        self.has_rm = (run / "rm" / "metrics.json").is_file()
        self.reference = None  # the SFT model, loaded by the first KL measurement

    def train_and_measure(self, name: str, seed: int, module, stage_cfg) -> dict:
        from korlhf.train.output import run_finished

        began = time.perf_counter()
        fresh = name in self.cfg.force
        stage_cfg.overwrite, stage_cfg.resume = fresh, not fresh
        if fresh or not run_finished(Path(stage_cfg.output_dir)):
            module.main(stage_cfg)
        wall = time.perf_counter() - began
        return {**self.measure(name, stage_cfg.output_dir, stage_cfg.train_files, seed), "train_s": round(wall, 1)}

    def measure(self, name: str, path: str, train_files: list[str], seed: int | None) -> dict:
        from korlhf.compare_measure import measure_model

        return {"method": name, "seed": seed, "model": path,
                **measure_model(self, path, train_files)}


def summarize(rows: list[dict]) -> list[dict]:
    """One row per method: mean and std over seeds of every number, and every seed's held-out accuracy."""
    import statistics

    by_method: dict[str, list[dict]] = {}
    for row in rows:
        by_method.setdefault(row["method"], []).append(row)
    summary = []
    for method, runs in by_method.items():
        entry = {"method": method, "seeds": len(runs)}
        for key in ("eval_accuracy", "train_accuracy", "reward", "kl", "train_s"):
            values = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
            if values:
                entry[key] = statistics.fmean(values)
                entry[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        entry["eval_accuracy_seeds"] = [r.get("eval_accuracy") for r in runs]
        summary.append(entry)
    return summary


COLUMNS = (("held-out right answers (%)", "eval_accuracy", 100, 1), ("RL-trained prompts (%)", "train_accuracy", 100, 1),
           ("reward-model score", "reward", 1, 2), ("KL to SFT", "kl", 1, 2), ("train time (s)", "train_s", 1, 0))


def display_rows(summary: list[dict]) -> list[dict]:
    """One row of strings per method: mean ± std over seeds (accuracy in percent); results.md and the report."""
    def cell(row, key, scale, digits):
        if key not in row:
            return "–"
        std = f" ± {row[key + '_std'] * scale:.{digits}f}" if row["seeds"] > 1 else ""
        return f"{row[key] * scale:.{digits}f}{std}"

    return [{"method": row["method"], "seeds": str(row["seeds"]),
             **{title: cell(row, key, scale, digits) for title, key, scale, digits in COLUMNS}} for row in summary]


def markdown(summary: list[dict]) -> str:
    """The results as a Markdown table."""
    rows = display_rows(summary)
    head = ["method", "seeds", *(title for title, *_ in COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row[h] for h in head) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_results(out: Path, rows: list[dict], summary: list[dict], console) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"summary": summary, "runs": rows}, ensure_ascii=False, indent=2)
                                      + "\n", encoding="utf-8")
    (out / "results.md").write_text(markdown(summary), encoding="utf-8")
    png = comparison_plot(summary)
    if png:
        (out / "compare.png").write_bytes(png)
    console.print(markdown(summary))
    console.print(f"results: {out / 'results.md'}, {out / 'results.json'}" + (f", {out / 'compare.png'}" if png else ""))


def comparison_plot(summary: list[dict]) -> bytes | None:
    """Held-out accuracy per method (bars: mean, dots: seeds, dashed line: SFT). PNG bytes."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in summary if "eval_accuracy" in r]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(1.2 * len(rows) + 2.5, 3.4))
    for i, row in enumerate(rows):
        ax.bar(i, row["eval_accuracy"] * 100, color="#9db8d9" if row["method"] != "sft" else "#cccccc")
        seeds = [v * 100 for v in row["eval_accuracy_seeds"] if v is not None]
        ax.scatter([i] * len(seeds), seeds, color="#1f3b63", zorder=3, s=14)
    sft = next((r["eval_accuracy"] * 100 for r in rows if r["method"] == "sft"), None)
    if sft is not None:
        ax.axhline(sft, color="#888888", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(rows)), [r["method"] for r in rows], rotation=20)
    ax.set_ylabel("held-out right answers (%)")
    ax.set_title("alignment methods from one SFT model")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()
