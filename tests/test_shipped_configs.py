"""Every shipped pipeline and stage config runs end to end on a tiny random model of the architecture it
names (KoGPT-2: GPT-2, polyglot-ko: GPT-NeoX), with its own settings (LoRA, target modules, gradient
checkpointing, value model, losses); only sizes, steps and paths are shrunk. A config that names an
architecture korlhf has never run is caught here, not on a user's GPU an hour in."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from korlhf import pipeline, stages
from korlhf.config import build_config, load_config

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
ARCH = {"skt/kogpt2-base-v2": "gpt2", "EleutherAI/polyglot-ko-1.3b": "gpt_neox"}
PIPELINES = {"gpt2": CONFIGS / "pipeline.yaml", "gpt_neox": CONFIGS / "pipeline_lora.yaml"}
# Sizes, steps and logging that keep a stage to seconds; a field is set only where the stage has it.
SMALL = dict(max_steps=2, epochs=1.0, batch_size=2, grad_accum=1, rollout_batch_size=4, max_length=64,
             max_prompt_length=64, max_new_tokens=8, num_generations=2, save_steps=1, logging_steps=1,
             report_to=[], eval_steps=0, sample_steps=0)
STAGE_CONFIGS = sorted(p for p in CONFIGS.glob("*.yaml") if p.stem.split("_")[0] in ("sft", "rm", "ppo", "dpo", "grpo", "rloo"))


def shrink(cls, settings: dict) -> dict:
    names = {f.name for f in dataclasses.fields(cls)}
    return {**settings, **{k: v for k, v in SMALL.items() if k in names}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Each shipped pipeline config, run on the demo world and a tiny model of its architecture."""
    from korlhf import demo
    from korlhf.tiny import TinySize, save_tiny

    root = tmp_path_factory.mktemp("shipped")
    (root / "world").mkdir()
    files, texts = demo.write_world(root / "world", demo.Config(n_sft=40, n_rm=16, eval_size=8))
    done = {}
    for arch, path in PIPELINES.items():
        cfg = load_config(pipeline.Config, path)
        assert ARCH[cfg.model_name_or_path] == arch
        base = save_tiny(root / f"base-{arch}", texts, arch=arch, vocab_size=400,
                         size=TinySize(hidden=32, layers=2, heads=4, max_positions=128))
        blocks = {s.name: shrink(__import__(s.module, fromlist=["Config"]).Config, getattr(cfg, s.name))
                  for s in stages.STAGES if s.train}
        cfg = dataclasses.replace(cfg, model_name_or_path=str(base), data_files=[str(f) for f in files],
                                  runs_dir=str(root), name=arch, eval_limit=4, batch_size=4,
                                  data_build={**cfg.data_build, "eval_size": 8}, generate={"max_new_tokens": 8},
                                  sweep={"max_new_tokens": 8, "strategies": [{"preset": "greedy"}]}, **blocks)
        pipeline.main(cfg)
        for stage in cfg.stages:
            assert (root / arch / stage / "metrics.json").is_file(), (arch, stage)
        done[arch] = root / arch
    done["base-gpt2"], done["base-gpt_neox"] = root / "base-gpt2", root / "base-gpt_neox"
    return done


@pytest.mark.parametrize("arch", sorted(PIPELINES))
def test_shipped_pipeline_runs_on_its_architecture(runs, arch):
    run = runs[arch]
    assert (run / "report.html").is_file()
    if arch == "gpt_neox":  # LoRA on query_key_value/dense with gradient checkpointing, every stage
        assert all((run / stage / "adapter_config.json").is_file() for stage in ("sft", "rm", "dpo"))
        assert (run / "ppo" / "config.json").is_file()  # on an SFT adapter PPO saves the merged policy


@pytest.mark.parametrize("path", STAGE_CONFIGS, ids=lambda p: p.name)
def test_shipped_stage_config_runs_on_its_architecture(runs, path, tmp_path):
    import importlib

    from korlhf.config import _read_yaml

    stage = stages.get(path.stem.split("_")[0])
    module = importlib.import_module(stage.module)
    settings = _read_yaml(path)
    arch = ARCH.get(settings["model_name_or_path"]) or ("gpt_neox" if "lora" in path.stem else "gpt2")
    run = runs[arch]

    def local(value):  # the config's runs/... paths and hub ids, as the tiny run has them
        if isinstance(value, list):
            return [local(v) for v in value]
        if value in ARCH:
            return str(runs[f"base-{arch}"])
        for prefix, there in (("runs/data/build/", run / "data" / "build"), ("runs/sft", run / "sft"),
                              ("runs/rm", run / "rm")):
            if isinstance(value, str) and value.startswith(prefix):
                return str(there / value[len(prefix):]) if prefix.endswith("/") else str(there)
        return value

    settings = {k: local(v) for k, v in settings.items()}
    settings = shrink(module.Config, {**settings, "output_dir": str(tmp_path / "out")})
    cfg = build_config(module.Config, {k: (v, str(path)) for k, v in settings.items()})
    module.main(cfg)
    assert (tmp_path / "out" / "metrics.json").is_file()
