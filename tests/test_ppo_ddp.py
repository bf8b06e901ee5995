"""`accelerate launch` runs `korlhf train ppo` unchanged: 2 CPU processes (gloo), data parallel.

Each rank records the prompts it sampled and a hash of its policy + value weights at the end; the
ranks must sample different prompts at every step and finish with identical weights, equal to the
saved policy. Run as a script, this file is the worker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import weights_hash

REPO = Path(__file__).resolve().parents[1]


def run_worker(record_dir: str, flags: list[str]) -> None:
    from korlhf.train.ppo import output as ppo_output
    from korlhf.train.rl import prompts as ppo_data

    rank = int(os.environ.get("RANK", 0))
    sampled, indices = [], ppo_data.prompt_indices

    def recording_indices(*args):
        sampled.append(indices(*args))
        return sampled[-1]

    write = ppo_output.write_outputs

    def recording_write(cfg, accelerator, actor_critic, *args):
        import torch

        result = {"prompts": sampled, "end": weights_hash(actor_critic.policy),
                  "world": torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1}
        Path(record_dir, f"rank{rank}.json").write_text(json.dumps(result), encoding="utf-8")
        return write(cfg, accelerator, actor_critic, *args)

    ppo_data.prompt_indices, ppo_output.write_outputs = recording_indices, recording_write
    sys.argv = ["korlhf", "train", "ppo", *flags]
    from korlhf.cli import main

    main()


@pytest.mark.slow
def test_accelerate_launch_two_processes(tiny_gpt2, tiny_models, tmp_path):
    from korlhf.demo_data import demo_tasks
    from korlhf.models import load_causal_lm, load_tokenizer
    from korlhf.records import write_jsonl

    data = tmp_path / "prompts.jsonl"
    write_jsonl(data, [{"prompt": t["prompt"]} for t in demo_tasks(seed=5, n=64)])
    out, records = tmp_path / "out", tmp_path / "records"
    records.mkdir()
    flags = ["--model_name_or_path", str(tiny_gpt2), "--reward_model", str(tiny_models["reward"]),
             "--train_files", str(data), "--output_dir", str(out), "--max_steps", "2", "--rollout_batch_size", "4",
             "--batch_size", "2", "--ppo_epochs", "1", "--max_new_tokens", "6", "--learning_rate", "1e-3",
             "--eval_fraction", "0", "--sample_steps", "0"]
    launcher = [sys.executable, "-m", "accelerate.commands.launch",
                "--config_file", str(REPO / "configs" / "accelerate" / "ddp_cpu.yaml")]
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*launcher, __file__, str(records), *flags], capture_output=True, text=True,
                          timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0, rank1 = (json.loads((records / f"rank{r}.json").read_text(encoding="utf-8")) for r in (0, 1))
    assert rank0["world"] == rank1["world"] == 2
    for step, (a, b) in enumerate(zip(rank0["prompts"], rank1["prompts"], strict=True)):
        assert len(a) == len(b) == 4 and not set(a) & set(b), f"step {step + 1}: both ranks sampled the same prompts"
    assert rank0["end"] == rank1["end"]
    tokenizer = load_tokenizer(out)
    assert weights_hash(load_causal_lm(out, tokenizer)) == rank0["end"]
    log = [json.loads(line) for line in (out / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [row["step"] for row in log] == [1, 2]


if __name__ == "__main__":
    run_worker(sys.argv[1], sys.argv[2:])
