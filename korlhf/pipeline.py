"""`korlhf pipeline`: the whole recipe in one run directory, resumable stage by stage.

    data -> sft -> (label) -> rm -> ppo | dpo | grpo | rloo -> generate -> eval -> report.html

The stages, their order and what each reads are the list in `korlhf.stages`.
Each stage is the same code as its own command (`korlhf data clean/build`, `korlhf train sft`, ...),
called with the paths of the stages before it; its settings come from the matching dict of this
config (``sft: {learning_rate: 2.0e-5}``: any field of `korlhf train sft`; on the command line
``--sft.learning_rate 2e-5``). Everything lands in
``runs/<name>/<stage>/`` with its exact config, log and ``metrics.json``, which a stage writes
last: a stage whose ``metrics.json`` is there is skipped on rerun, so an interrupted pipeline
resumes where it stopped (a training stage from its latest complete checkpoint). ``--force STAGE``
redoes a stage and every stage that depends on it.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path

from korlhf import stages as registry


@dataclass
class _Settings:
    """What a pipeline config holds besides the stages' blocks of settings (added by `config_class`)."""

    name: str = field(default="run", metadata={"help": "run name: everything goes to <runs_dir>/<name>/"})
    runs_dir: str = field(default="runs", metadata={"help": "parent folder of the run directory"})
    model_name_or_path: str = field(default="", metadata={
        "help": "base model: hub id (EleutherAI/polyglot-ko-1.3b, skt/kogpt2-base-v2) or local path"})
    template: str | None = field(default=None, metadata={
        "help": "chat template for SFT and after: kochatgpt, koalpaca, chatml (default: the model's, else kochatgpt)"})
    data_files: list[str] = field(default_factory=list, metadata={
        "help": "raw data, any format `korlhf data` reads (KoChatGPT, KoAlpaca, KoBEST, NIKL, jsonl/csv/...)"})
    stages: list[str] = field(default_factory=lambda: [s.name for s in registry.STAGES if not s.optional], metadata={
        "help": "stages to run (they run in the order of `korlhf.stages`; label, dpo, grpo, rloo are optional)"})
    force: list[str] = field(default_factory=list, metadata={
        "help": "redo these stages (and every stage after them that reads their output)"})
    eval_limit: int = field(default=100, metadata={"help": "held-out prompts answered by every model"})
    answer_rule: str | None = field(default=None, metadata={
        "help": "how answer_accuracy checks an answer, for records with a short `answer`: a reward rule "
                "(package.module:function of (prompt, response)) scoring 1 for right; default: the answer appears"})
    batch_size: int = field(default=16, metadata={"help": "generation batch size"})
    title: str = field(default="korlhf run", metadata={"help": "report title"})
    note: str = field(default="", metadata={"help": "a sentence shown at the top of the report"})

    def __post_init__(self):
        unknown = [s for s in [*self.stages, *self.force] if s not in registry.names()]
        if unknown:
            raise ValueError(f"unknown stage {unknown[0]!r}; stages are {', '.join(registry.names())}")
        if not self.model_name_or_path:
            raise ValueError("model_name_or_path is required (a hub id such as skt/kogpt2-base-v2, or a local path)")


def config_class() -> type:
    """The pipeline's Config: `_Settings` plus one dict field per block of settings a stage has
    (``sft: {learning_rate: 2.0e-5}``), read from `korlhf.stages`."""
    blocks = [(name, dict, field(default_factory=lambda d=default: dict(d), metadata={"help": help_text}))
              for stage in registry.STAGES for name, help_text, default in stage.settings_blocks()]
    cls = make_dataclass("Config", blocks, bases=(_Settings,))
    cls.__module__ = __name__  # where its type hints resolve, and what pickling looks for
    return cls


Config = config_class()


def main(cfg) -> Path:
    """Run the stages of ``cfg``; returns the path of ``report.html``."""
    from rich.console import Console

    from korlhf.config import config_to_dict, save_config
    from korlhf.pipeline_stages import stage_config

    console = Console()
    run = Path(cfg.runs_dir) / cfg.name
    check(cfg, run)  # a typo in `ppo:` fails now, not after hours of SFT
    run.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run / "pipeline.yaml")
    redo = downstream(set(cfg.force))
    for stage in [s for s in registry.STAGES if s.name in cfg.stages]:
        folder = run / stage.name
        settings = config_to_dict(stage_config(stage, cfg, run)) if stage.train else {}
        if (folder / "metrics.json").is_file() and stage.name not in redo:
            console.print(f"[dim]{stage.name}: done earlier ({folder}/metrics.json); --force {stage.name} redoes it[/dim]")
            _warn_if_changed(console, stage.name, folder, settings)
            continue
        console.rule(f"[bold]{stage.name}")
        began = time.perf_counter()
        folder.mkdir(parents=True, exist_ok=True)
        with _Tee(folder / "stage.log"):
            run_stage(stage, cfg, run, fresh=stage.name in redo)
        (folder / "pipeline_settings.json").write_text(json.dumps(settings, ensure_ascii=False, default=str),
                                                       encoding="utf-8")
        console.print(f"[green]{stage.name}[/green] done in {time.perf_counter() - began:.0f}s -> {folder}")
    from korlhf.report import pipeline_report

    path = pipeline_report(run, cfg)
    console.print(f"report: [bold]{path}[/bold]")
    return path


def run_stage(stage, cfg, run: Path, fresh: bool) -> None:
    """A training stage: its Config from the run so far, resuming a run that was cut off (``fresh``:
    start over); any other stage: its runner."""
    import importlib

    from korlhf.pipeline_stages import stage_config

    if stage.train:
        stage_cfg = stage_config(stage, cfg, run)
        stage_cfg.overwrite, stage_cfg.resume = fresh, not fresh
        importlib.import_module(stage.module).main(stage_cfg)
    else:
        _function(stage.runner)(cfg, run, fresh)


def check(cfg, run: Path) -> None:
    """Build every stage's config without running anything: unknown or clashing fields are errors."""
    from korlhf.pipeline_stages import stage_config

    for stage in [s for s in registry.STAGES if s.name in cfg.stages]:
        if stage.train:
            stage_config(stage, cfg, run)
        else:
            _function(stage.check)(cfg, run)


def _function(path: str):
    import importlib

    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def downstream(forced: set[str]) -> set[str]:
    """``forced`` and every stage that reads, directly or not, one of them."""
    redo = set(forced)
    for stage in registry.STAGES:  # needs only point backwards in the list, so one pass closes it
        if any(need in redo for need in registry.needs(stage)):
            redo.add(stage.name)
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
