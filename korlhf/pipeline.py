"""`korlhf pipeline`: the whole recipe in one run directory, resumable stage by stage.

    data -> sft -> (label) -> rm -> ppo | dpo | grpo -> generate -> eval -> report.html

Each stage is the same code as its own command (`korlhf data clean/build`, `korlhf train sft`, ...),
called with the paths of the stages before it; its settings come from the matching dict of this
config (``sft: {learning_rate: 2.0e-5}``: any field of `korlhf train sft`). Everything lands in
``runs/<name>/<stage>/`` with its exact config, log and ``metrics.json``, which a stage writes
last: a stage whose ``metrics.json`` is there is skipped on rerun, so an interrupted pipeline
resumes where it stopped (a training stage from its latest complete checkpoint). ``--force STAGE``
redoes a stage and every stage that depends on it.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from korlhf.errors import KorlhfError

ORDER = ("data", "sft", "label", "rm", "ppo", "dpo", "grpo", "generate", "eval")
ALIGN = ("ppo", "dpo", "grpo")
# What each stage reads; `--force X` also redoes everything downstream of X.
NEEDS = {"data": (), "sft": ("data",), "label": ("data", "sft"), "rm": ("data", "sft", "label"),
         "ppo": ("data", "sft", "rm"), "dpo": ("data", "sft", "label"), "grpo": ("data", "sft", "rm"),
         "generate": ("data", "sft", *ALIGN), "eval": ("generate", "rm")}


def _settings(help_text: str):
    return field(default_factory=dict, metadata={"help": help_text})


@dataclass
class Config:
    name: str = field(default="run", metadata={"help": "run name: everything goes to <runs_dir>/<name>/"})
    runs_dir: str = field(default="runs", metadata={"help": "parent folder of the run directory"})
    model_name_or_path: str = field(default="", metadata={
        "help": "base model: hub id (EleutherAI/polyglot-ko-1.3b, skt/kogpt2-base-v2) or local path"})
    template: str | None = field(default=None, metadata={
        "help": "chat template for SFT and after: kochatgpt, koalpaca, chatml (default: the model's, else kochatgpt)"})
    data_files: list[str] = field(default_factory=list, metadata={
        "help": "raw data, any format `korlhf data` reads (KoChatGPT, KoAlpaca, KoBEST, NIKL, jsonl/csv/...)"})
    stages: list[str] = field(default_factory=lambda: ["data", "sft", "rm", "ppo", "generate", "eval"], metadata={
        "help": f"stages to run, in this order: {', '.join(ORDER)} (label, dpo, grpo are optional)"})
    force: list[str] = field(default_factory=list, metadata={
        "help": "redo these stages (and every stage after them that reads their output)"})
    data_clean: dict = _settings("fields of `korlhf data clean` (e.g. near_dedup: false)")
    data_build: dict = _settings("fields of `korlhf data build` (e.g. eval_size: 200, max_sft: 20000)")
    sft: dict = _settings("fields of `korlhf train sft`")
    label: dict = _settings("fields of `korlhf label` (judge, base_url, ...); candidates come from the SFT model")
    rm: dict = _settings("fields of `korlhf train rm`")
    ppo: dict = _settings("fields of `korlhf train ppo`")
    dpo: dict = _settings("fields of `korlhf train dpo`")
    grpo: dict = _settings("fields of `korlhf train grpo`")
    generate: dict = field(default_factory=lambda: {"preset": "greedy", "max_new_tokens": 128}, metadata={
        "help": "decoding of the side-by-side answers (a preset plus `korlhf generate` knobs)"})
    sweep: dict = _settings("fields of `korlhf eval sweep` for the final model ({} = its default strategies)")
    eval_limit: int = field(default=100, metadata={"help": "held-out prompts answered by every model"})
    answer_rule: str | None = field(default=None, metadata={
        "help": "how answer_accuracy checks an answer, for records with a short `answer`: a reward rule "
                "(package.module:function of (prompt, response)) scoring 1 for right; default: the answer appears"})
    batch_size: int = field(default=16, metadata={"help": "generation batch size"})
    title: str = field(default="korlhf run", metadata={"help": "report title"})
    note: str = field(default="", metadata={"help": "a sentence shown at the top of the report"})

    def __post_init__(self):
        unknown = [s for s in [*self.stages, *self.force] if s not in ORDER]
        if unknown:
            raise ValueError(f"unknown stage {unknown[0]!r}; stages are {', '.join(ORDER)}")
        if not self.model_name_or_path:
            raise ValueError("model_name_or_path is required (a hub id such as skt/kogpt2-base-v2, or a local path)")


def main(cfg: Config) -> Path:
    """Run the stages of ``cfg``; returns the path of ``report.html``."""
    from rich.console import Console

    from korlhf.config import config_to_dict, save_config

    console = Console()
    run = Path(cfg.runs_dir) / cfg.name
    check(cfg, run)  # a typo in `ppo:` fails now, not after hours of SFT
    run.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run / "pipeline.yaml")
    stages = [s for s in ORDER if s in cfg.stages]
    redo = _downstream(set(cfg.force))
    for stage in stages:
        folder = run / stage
        settings = config_to_dict(STAGES[stage](cfg, run, dry=True)) if stage in TRAIN else {}
        if (folder / "metrics.json").is_file() and stage not in redo:
            console.print(f"[dim]{stage}: done earlier ({folder}/metrics.json); --force {stage} redoes it[/dim]")
            _warn_if_changed(console, stage, folder, settings)
            continue
        console.rule(f"[bold]{stage}")
        began = time.perf_counter()
        folder.mkdir(parents=True, exist_ok=True)
        with _Tee(folder / "stage.log"):
            STAGES[stage](cfg, run, dry=False, fresh=stage in redo)
        (folder / "pipeline_settings.json").write_text(json.dumps(settings, ensure_ascii=False, default=str),
                                                       encoding="utf-8")
        console.print(f"[green]{stage}[/green] done in {time.perf_counter() - began:.0f}s -> {folder}")
    from korlhf.report import pipeline_report

    path = pipeline_report(run, cfg)
    console.print(f"report: [bold]{path}[/bold]")
    return path


def check(cfg: Config, run: Path) -> None:
    """Build every stage's config without running anything: unknown or clashing fields are errors."""
    from korlhf.data import build, clean
    from korlhf.generate import decoding_from
    from korlhf.pipeline_eval import sweep_config

    if "data" in cfg.stages:
        _stage_config(clean, cfg, "data_clean", {"files": cfg.data_files, "out": ""})
        _stage_config(build, cfg, "data_build", {"sources": ["-"], "out": ""})
    for stage in ("label", *TRAIN):
        if stage in cfg.stages:
            STAGES[stage](cfg, run, dry=True)
    decoding_from(cfg.generate)
    if "eval" in cfg.stages:
        sweep_config(cfg, run, "-")


def _downstream(forced: set[str]) -> set[str]:
    redo = set(forced)
    for stage in ORDER:  # NEEDS only points backwards in ORDER, so one pass closes it
        if any(need in redo for need in NEEDS[stage]):
            redo.add(stage)
    return redo


def _warn_if_changed(console, stage: str, folder: Path, settings: dict) -> None:
    path = folder / "pipeline_settings.json"
    if settings and path.is_file():
        before = json.loads(path.read_text(encoding="utf-8"))
        now = json.loads(json.dumps(settings, default=str))
        changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        if changed:
            console.print(f"[yellow]{stage}: settings changed since it ran ({', '.join(changed)}); "
                          f"pass --force {stage} to redo it with them[/yellow]")


class _Tee:
    """Copy what a stage prints to ``stage.log`` too (progress bars go to stderr and are left out)."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.file = open(self.path, "a", encoding="utf-8")
        self.stdout, sys.stdout = sys.stdout, self
        return self

    def write(self, text: str) -> int:
        self.file.write(text)
        return self.stdout.write(text)

    def flush(self) -> None:
        self.file.flush()
        self.stdout.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name):  # encoding, fileno, ... of the real stdout
        return getattr(self.stdout, name)

    def __exit__(self, *exc):
        sys.stdout = self.stdout
        self.file.close()


# --- the stages: each builds its command's Config from the run so far, and runs it -------------------


def _stage_config(module, cfg: Config, stage: str, fixed: dict):
    """``module.Config`` from the pipeline's dict for ``stage``, with the paths the pipeline sets."""
    from korlhf.config import build_config

    settings = getattr(cfg, stage)
    clash = sorted(set(settings) & set(fixed))
    if clash:
        raise KorlhfError(f"pipeline {stage}: {', '.join(clash)} is set by the pipeline (it chains the stages); "
                          f"remove it from `{stage}:`")
    raw = {k: (v, f"pipeline config `{stage}:`") for k, v in settings.items()}
    raw.update({k: (v, "pipeline") for k, v in fixed.items()})
    return build_config(module.Config, raw)


def _train(stage: str, cfg: Config, run: Path, fixed: dict, dry: bool, fresh: bool):
    import importlib

    module = importlib.import_module(f"korlhf.train.{stage}")
    stage_cfg = _stage_config(module, cfg, stage, {"output_dir": str(run / stage), **fixed})
    if dry:
        return stage_cfg
    stage_cfg.overwrite, stage_cfg.resume = fresh, not fresh  # resume: continue a stage that was cut off
    return module.main(stage_cfg)


def _rm_data(run: Path) -> list[str]:
    label = run / "label" / "preferences.jsonl"
    return [str(label if label.is_file() else run / "data" / "build" / "rm.jsonl")]


def run_data(cfg: Config, run: Path, dry: bool = False, fresh: bool = False):
    from korlhf.data import build, clean

    if not cfg.data_files:
        raise KorlhfError("no data_files: list your data (any format `korlhf data` reads) under `data_files:`")
    clean_cfg = _stage_config(clean, cfg, "data_clean", {"files": cfg.data_files, "out": str(run / "data" / "clean")})
    kept = clean.main(clean_cfg)["kept"]
    build_cfg = _stage_config(build, cfg, "data_build", {"sources": [str(kept)], "out": str(run / "data" / "build")})
    paths = build.main(build_cfg)
    report = json.loads(Path(paths["report_json"]).read_text(encoding="utf-8"))
    sizes = {stage: report["stages"][stage]["records"] for stage in ("sft", "rm", "ppo", "eval")}
    (run / "data" / "metrics.json").write_text(json.dumps(sizes) + "\n", encoding="utf-8")


def run_sft(cfg: Config, run: Path, dry: bool = False, fresh: bool = False):
    return _train("sft", cfg, run, {"model_name_or_path": cfg.model_name_or_path,
                                    **({"template": cfg.template} if cfg.template else {}),
                                    "train_files": [str(run / "data" / "build" / "sft.jsonl")]}, dry, fresh)


def run_label(cfg: Config, run: Path, dry: bool = False, fresh: bool = False):
    from korlhf.label import stage

    label_cfg = _stage_config(stage, cfg, "label", {
        "inputs": [str(run / "data" / "build" / "rm.jsonl")], "models": [str(run / "sft")],
        "output_dir": str(run / "label"), "overwrite": fresh})
    if dry:
        return None
    metrics = stage.main(label_cfg)  # `korlhf label` reports on stderr; stage.log keeps stdout
    print(f"label {metrics['judge']}: {metrics['items']} items, {metrics['candidates']} candidates -> "
          f"{metrics['preferences']} ranked, {metrics['unranked']} unranked, {metrics['failed']} failed")
    return metrics


def run_rm(cfg: Config, run: Path, dry: bool = False, fresh: bool = False):
    return _train("rm", cfg, run, {"model_name_or_path": str(run / "sft"), "train_files": _rm_data(run)}, dry, fresh)


def _reward(cfg: Config, run: Path, stage: str) -> dict:
    """The run's reward model, unless the stage's block names its own (`reward_model: null` with
    `reward_rules: [...]` trains on rules alone, e.g. a checker: a verifiable reward)."""
    return {} if "reward_model" in getattr(cfg, stage) else {"reward_model": str(run / "rm")}


def run_ppo(cfg: Config, run: Path, dry: bool = False, fresh: bool = False):
    return _train("ppo", cfg, run, {"model_name_or_path": str(run / "sft"), **_reward(cfg, run, "ppo"),
                                    "train_files": [str(run / "data" / "build" / "ppo.jsonl")]}, dry, fresh)


def run_dpo(cfg: Config, run: Path, dry: bool = False, fresh: bool = False):
    return _train("dpo", cfg, run, {"model_name_or_path": str(run / "sft"), "train_files": _rm_data(run)}, dry, fresh)


def run_grpo(cfg: Config, run: Path, dry: bool = False, fresh: bool = False):
    return _train("grpo", cfg, run, {"model_name_or_path": str(run / "sft"), **_reward(cfg, run, "grpo"),
                                     "train_files": [str(run / "data" / "build" / "ppo.jsonl")]}, dry, fresh)


def run_generate(cfg: Config, run: Path, dry: bool = False, fresh: bool = False):
    from korlhf.pipeline_eval import answer_eval_prompts

    answer_eval_prompts(cfg, run)


def run_eval(cfg: Config, run: Path, dry: bool = False, fresh: bool = False):
    from korlhf.pipeline_eval import score_models, sweep_final

    score_models(cfg, run)
    sweep_final(cfg, run)


STAGES = {"data": run_data, "sft": run_sft, "label": run_label, "rm": run_rm, "ppo": run_ppo, "dpo": run_dpo,
          "grpo": run_grpo, "generate": run_generate, "eval": run_eval}
TRAIN = ("sft", "rm", "ppo", "dpo", "grpo")
