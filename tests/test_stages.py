"""The stage registry (`korlhf.stages`) is the one place a stage is declared: a toy stage added to it
alone gets a `korlhf train` command, a place in the pipeline's order and settings, and a report section."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from korlhf import cli, pipeline, stages
from korlhf.config import describe_fields, load_config

TOY = '''
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Config:
    model_name_or_path: str
    output_dir: str
    value: float = 1.0
    resume: bool = False
    overwrite: bool = False


def main(cfg):
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [{"step": step, "loss": cfg.value / step} for step in (1, 2, 3)]
    (out / "log.jsonl").write_text("".join(json.dumps(row) + "\\n" for row in rows))
    (out / "metrics.json").write_text(json.dumps({"value": cfg.value, "model": cfg.model_name_or_path}))
    return {}
'''


def add_toy(tmp_path, monkeypatch) -> stages.Stage:
    (tmp_path / "toy_stage.py").write_text(TOY, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    toy = stages.Stage("toy", "toy_stage", help="A toy stage after SFT.", train=True, needs=("sft",),
                       inputs={"model_name_or_path": "{run}/sft"}, report="Toy", curves=("loss",))
    monkeypatch.setattr(stages, "STAGES", [*stages.STAGES, toy])
    return toy


def test_a_registered_stage_is_a_train_command(tmp_path, monkeypatch):
    add_toy(tmp_path, monkeypatch)
    runner = CliRunner()
    listing = runner.invoke(cli.app, ["train", "--help"])
    assert listing.exit_code == 0 and "toy" in listing.output and "A toy stage after SFT." in listing.output
    result = runner.invoke(cli.app, ["train", "toy", "--model_name_or_path", "m", "--output_dir", str(tmp_path / "t"),
                                     "--value", "2"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "t" / "metrics.json").read_text()) == {"value": 2.0, "model": "m"}


def test_a_registered_stage_runs_in_the_pipeline_and_gets_a_report_section(tmp_path, monkeypatch):
    add_toy(tmp_path, monkeypatch)
    config = pipeline.config_class()
    assert config(model_name_or_path="m").stages[-1] == "toy"  # its place in the order
    assert "toy" in [row[0] for row in describe_fields(config)]  # its block of settings
    assert pipeline.downstream({"sft"}) >= {"toy"}  # --force sft redoes it
    cfg = load_config(config, None, ["--model_name_or_path", "m", "--runs_dir", str(tmp_path), "--name", "r",
                                     "--stages", "toy", "--toy.value", "4"])
    report = pipeline.main(cfg)
    run = tmp_path / "r"
    assert json.loads((run / "toy" / "metrics.json").read_text()) == {"value": 4.0, "model": str(run / "sft")}
    text = report.read_text(encoding="utf-8")
    assert "<h2>Toy</h2>" in text and "<img src='data:image/png;base64," in text


def test_every_training_stage_module_has_a_config_and_main():
    import importlib

    for stage in stages.STAGES:
        module = importlib.import_module(stage.module)
        assert callable(module.main) and hasattr(module, "Config"), stage.name
        assert set(stage.needs) <= {*stages.names(), stages.POLICIES}, stage.name
        earlier = stages.names()[:stages.names().index(stage.name)]
        assert set(stages.needs(stage)) <= set(earlier), f"{stage.name} reads a stage that runs after it"
