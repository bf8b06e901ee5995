"""Exact resume across epochs for the TRL-based stages (RM, DPO, GRPO, RLOO), as SFT and PPO test it
in their own files: a run killed inside epoch 2 (after a checkpoint, before the next) and resumed
logs every later loss, past the next epoch boundary, and ends with the weights of the run never
stopped. The kill is a SIGKILL in a subprocess: nothing gets to clean up."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from safetensors.torch import load_file

from korlhf.demo_data import demo_tasks
from korlhf.records import write_jsonl

pytestmark = pytest.mark.usefixtures("one_thread")

KILLED_RUN = textwrap.dedent("""
    import importlib, os, signal, sys
    from korlhf.config import load_config
    from korlhf.train import output

    def on_step_end(self, args, state, control, **kwargs):  # every stage logs through LogJsonl
        if state.global_step == int(os.environ["KILL_AT"]):
            os.kill(os.getpid(), signal.SIGKILL)

    output.LogJsonl.on_step_end = on_step_end
    module = importlib.import_module(sys.argv[1])
    module.main(load_config(module.Config, None, sys.argv[2:]))
""")
WRONG = ["모르겠습니다.", "The answer is unknown.", "123 456 789", "네."]
# 12 records or prompts: 4 steps an epoch in every stage below; checkpoint-5 is inside epoch 2.
STAGES = {
    "rm": ["--batch_size", "3", "--max_length", "64", "--learning_rate", "1e-3"],
    "dpo": ["--batch_size", "3", "--max_length", "64", "--learning_rate", "1e-3"],
    "grpo": ["--batch_size", "9", "--num_generations", "3", "--max_new_tokens", "6", "--learning_rate", "1e-3",
             "--reward_rules", "hangul", "--temperature", "1.0"],
    "rloo": ["--batch_size", "9", "--num_generations", "3", "--max_new_tokens", "6", "--learning_rate", "1e-3",
             "--reward_rules", "hangul"],
}


def records(stage: str) -> list[dict]:
    tasks = demo_tasks(seed=9, n=12)
    if stage in ("rm", "dpo"):
        return [{"prompt": t["prompt"], "responses": [t["response"], WRONG[i % 4]]} for i, t in enumerate(tasks)]
    return [{"prompt": t["prompt"]} for t in tasks]


def losses(out) -> list[tuple]:
    from korlhf.train.output import read_log

    return [(r["step"], r["loss"]) for r in read_log(out) if "loss" in r]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_killed_inside_epoch_two_resumes_exactly(stage, tiny_gpt2, tmp_path):
    import importlib

    from korlhf.config import load_config

    module = importlib.import_module(f"korlhf.train.{stage}")
    data = tmp_path / "data.jsonl"
    write_jsonl(data, records(stage))
    flags = ["--model_name_or_path", str(tiny_gpt2), "--train_files", str(data), "--eval_fraction", "0",
             "--max_steps", "10", "--save_steps", "5", "--logging_steps", "1", "--lr_scheduler", "linear",
             *STAGES[stage]]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    module.main(load_config(module.Config, None, [*flags, "--output_dir", str(whole)]))
    proc = subprocess.run([sys.executable, "-c", KILLED_RUN, module.__name__, *flags, "--output_dir", str(killed)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TQDM_DISABLE": "1", "KILL_AT": "7", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert [p.name for p in killed.glob("checkpoint-*")] == ["checkpoint-5"]
    module.main(load_config(module.Config, None, [*flags, "--output_dir", str(killed), "--resume"]))
    assert [s for s, _ in losses(whole)] == list(range(1, 11))
    assert losses(killed) == losses(whole)
    weights = "adapter_model.safetensors" if (whole / "adapter_model.safetensors").is_file() else "model.safetensors"
    before, after = load_file(whole / weights), load_file(killed / weights)
    assert all(before[name].equal(after[name]) for name in before)
