"""Data parallelism for real: `accelerate launch` starts 2 CPU processes (gloo) running `korlhf train sft`.

Each rank records the batches its model was trained on and a hash of its weights at the end; the
test checks that the ranks saw different examples at every step and finished with identical
weights, equal to the saved model. Run as a script, this file is the worker.
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
    """`korlhf train sft FLAGS` through the CLI, with a recorder added to the trainer it builds."""
    import torch
    from transformers import TrainerCallback

    from korlhf.train import sft

    class Recorder(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self.batches, self.start = [], weights_hash(model)

            def record(module, inputs, kw):
                if module.training:
                    ids, mask = kw["input_ids"], kw["attention_mask"]
                    rows = zip(ids, mask, strict=True)
                    self.batches.append(sorted(",".join(map(str, row[m.bool()].tolist())) for row, m in rows))
            model.register_forward_pre_hook(record, with_kwargs=True)

        def on_train_end(self, args, state, control, model=None, **kwargs):
            rank = int(os.environ.get("RANK", 0))
            result = {"batches": self.batches, "start": self.start, "end": weights_hash(model),
                      "world": torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1,
                      "backend": torch.distributed.get_backend() if torch.distributed.is_initialized() else None}
            Path(record_dir, f"rank{rank}.json").write_text(json.dumps(result), encoding="utf-8")

    build = sft.build_trainer

    def build_with_recorder(*args, **kwargs):
        trainer = build(*args, **kwargs)
        trainer.add_callback(Recorder())
        return trainer

    sft.build_trainer = build_with_recorder
    sys.argv = ["korlhf", "train", "sft", *flags]
    from korlhf.cli import main

    main()


def test_shipped_accelerate_configs_parse():
    """DeepSpeed cannot run on this CPU box; its configs are at least read by accelerate's own loader."""
    from accelerate.commands.config.config_args import load_config_from_file

    configs = {p.stem: load_config_from_file(str(p)) for p in (REPO / "configs" / "accelerate").glob("*.yaml")}
    assert set(configs) == {"ddp", "ddp_cpu", "zero2", "zero3"}
    assert configs["ddp"].distributed_type == "MULTI_GPU" and configs["ddp"].mixed_precision == "bf16"
    assert configs["ddp_cpu"].use_cpu and configs["ddp_cpu"].num_processes == 2
    for stage in (2, 3):
        cfg = configs[f"zero{stage}"]
        assert cfg.distributed_type == "DEEPSPEED" and cfg.deepspeed_config["zero_stage"] == stage
    assert configs["zero3"].deepspeed_config["zero3_save_16bit_model"] is True  # output_dir loads as usual


@pytest.mark.slow
def test_two_cpu_processes_train_on_different_batches_and_agree(tiny_gpt2, tmp_path):
    from korlhf.demo_data import demo_tasks
    from korlhf.models import load_causal_lm, load_tokenizer
    from korlhf.records import write_jsonl

    data = tmp_path / "sft.jsonl"
    unique = {t["prompt"]: t["response"] for t in demo_tasks(seed=5, n=80)}  # rows must be distinguishable
    write_jsonl(data, [{"prompt": p, "response": r} for p, r in list(unique.items())[:48]])
    out, records = tmp_path / "out", tmp_path / "records"
    records.mkdir()
    flags = ["--model_name_or_path", str(tiny_gpt2), "--train_files", str(data), "--output_dir", str(out),
             "--max_steps", "4", "--batch_size", "4", "--learning_rate", "1e-3", "--eval_fraction", "0"]
    launcher = [sys.executable, "-m", "accelerate.commands.launch",
                "--config_file", str(REPO / "configs" / "accelerate" / "ddp_cpu.yaml")]
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*launcher, __file__, str(records), *flags], capture_output=True, text=True,
                          timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0, rank1 = (json.loads((records / f"rank{r}.json").read_text(encoding="utf-8")) for r in (0, 1))
    assert rank0["world"] == rank1["world"] == 2 and rank0["backend"] == "gloo"
    assert len(rank0["batches"]) == len(rank1["batches"]) == 4
    for step, (a, b) in enumerate(zip(rank0["batches"], rank1["batches"], strict=True)):
        assert len(a) == len(b) == 4
        assert not set(a) & set(b), f"step {step + 1}: both ranks trained on the same examples"
    assert rank0["start"] == rank1["start"]
    assert rank0["end"] == rank1["end"] != rank0["start"]
    tokenizer = load_tokenizer(out)
    assert weights_hash(load_causal_lm(out, tokenizer)) == rank0["end"]
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8"))["steps"] == 4


if __name__ == "__main__":
    run_worker(sys.argv[1], sys.argv[2:])
