"""How the pipeline starts each stage of `korlhf.stages`: the generic training stage, and the two
stages that are more than one command (data: clean then build; label: the SFT model's answers ranked).

A training stage's Config is its block of the pipeline config plus the paths its registry entry
names (``inputs``); the others have a runner and a check here or in `korlhf.pipeline_eval`.
"""

from __future__ import annotations

import json
from pathlib import Path

from korlhf.errors import KorlhfError


def stage_config(stage, cfg, run: Path):
    """The Config a training stage runs with: its block, the paths of the stages before it, its output folder."""
    import importlib

    from korlhf.config import config_from_block

    module = importlib.import_module(stage.module)
    block = getattr(cfg, stage.name)
    fixed = {"output_dir": str(run / stage.name)}
    for name, template in stage.inputs.items():
        if name in stage.own and name in block:  # e.g. `reward_model: null` with rule rewards
            continue
        if template == "{template}" and not cfg.template:
            continue
        fixed[name] = _fill(template, cfg, run)
    return config_from_block(module.Config, stage.name, block, fixed, command=f"korlhf pipeline ({stage.name})")


def _fill(template, cfg, run: Path):
    from korlhf.stages import fill

    label = run / "label" / "preferences.jsonl"
    preferences = label if label.is_file() else run / "data" / "build" / "rm.jsonl"
    return fill(template, run=run, base=cfg.model_name_or_path, template=cfg.template, preferences=preferences)


def check_data(cfg, run: Path) -> None:
    from korlhf.config import config_from_block
    from korlhf.data import build, clean

    config_from_block(clean.Config, "data_clean", cfg.data_clean, {"files": cfg.data_files, "out": ""})
    config_from_block(build.Config, "data_build", cfg.data_build, {"sources": ["-"], "out": ""})


def run_data(cfg, run: Path, fresh: bool = False) -> None:
    from korlhf.config import config_from_block
    from korlhf.data import build, clean

    if not cfg.data_files:
        raise KorlhfError("no data_files: list your data (any format `korlhf data` reads) under `data_files:`")
    clean_cfg = config_from_block(clean.Config, "data_clean", cfg.data_clean,
                                  {"files": cfg.data_files, "out": str(run / "data" / "clean")})
    kept = clean.main(clean_cfg)["kept"]
    build_cfg = config_from_block(build.Config, "data_build", cfg.data_build,
                                  {"sources": [str(kept)], "out": str(run / "data" / "build")})
    paths = build.main(build_cfg)
    report = json.loads(Path(paths["report_json"]).read_text(encoding="utf-8"))
    sizes = {stage: report["stages"][stage]["records"] for stage in ("sft", "rm", "ppo", "eval")}
    (run / "data" / "metrics.json").write_text(json.dumps(sizes) + "\n", encoding="utf-8")


def label_config(cfg, run: Path, fresh: bool = False):
    from korlhf.config import config_from_block
    from korlhf.label import stage

    return config_from_block(stage.Config, "label", cfg.label, {
        "inputs": [str(run / "data" / "build" / "rm.jsonl")], "models": [str(run / "sft")],
        "output_dir": str(run / "label"), "overwrite": fresh}, command="korlhf pipeline (label)")


def run_label(cfg, run: Path, fresh: bool = False) -> dict:
    from korlhf.label import stage

    metrics = stage.main(label_config(cfg, run, fresh))  # `korlhf label` reports on stderr; stage.log keeps stdout
    print(f"label {metrics['judge']}: {metrics['items']} items, {metrics['candidates']} candidates -> "
          f"{metrics['preferences']} ranked, {metrics['unranked']} unranked, {metrics['failed']} failed")
    return metrics
