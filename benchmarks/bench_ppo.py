"""PPO benchmarks: memory of the shared-base LoRA layout, and PPO's speed against TRL's RLOOTrainer.

1. Peak memory of one PPO step (load, rollout, scoring, update with optimizer state) on a
   GPT-2-small-sized random model (768 hidden, 12 layers, 50,257-token vocabulary, 124M weights):
   - ``separate``: four full models (policy, reference copy, value model from the reward model,
     reward model), full fine-tuning;
   - ``shared``: LoRA, policy + reference + value head in one base (reference = adapters off),
     plus the frozen reward model.
   Each layout runs in a fresh process; on a CPU the figure is the process's peak resident memory
   minus that of a process that only imported the same libraries; on a GPU, max_memory_allocated.
2. Samples per second of a PPO iteration vs TRL's RLOOTrainer on the tiny test model, same prompts,
   batch (32 answers), answer length (32 tokens, EOS suppressed by the model's size: the random
   tiny model almost never samples it) and reward model; PPO with 1 and with 4 epochs per batch
   (RLOO makes one pass). Steps alternate between the two trainers' runs to share the machine's
   noise; the first step of each run is warm-up and not counted.

    .venv/bin/python benchmarks/bench_ppo.py            # both parts
    .venv/bin/python benchmarks/bench_ppo.py --part memory
    .venv/bin/python benchmarks/bench_ppo.py --part speed
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
COMMAND = "OMP_NUM_THREADS=1 TQDM_DISABLE=1 .venv/bin/python benchmarks/bench_ppo.py"


def build_world(root: Path, small: bool) -> dict:
    """Tokenizer, policy and reward model (GPT-2 small size, or the tests' tiny size) and prompts."""
    from conftest import korean_texts
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, GPT2Config

    from korlhf.demo_data import demo_tasks
    from korlhf.records import write_jsonl
    from korlhf.tiny import train_tokenizer

    tokenizer = train_tokenizer(korean_texts(), vocab_size=3000)
    dims = dict(n_embd=768, n_layer=12, n_head=12, n_positions=1024, vocab_size=50257) if small else \
        dict(n_embd=64, n_layer=2, n_head=4, n_positions=512, vocab_size=len(tokenizer))
    config = GPT2Config(**dims, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    paths = {"policy": root / "policy", "reward": root / "reward", "prompts": root / "prompts.jsonl"}
    AutoModelForCausalLM.from_config(config).save_pretrained(paths["policy"])
    config.num_labels = 1
    AutoModelForSequenceClassification.from_config(config).save_pretrained(paths["reward"])
    for key in ("policy", "reward"):
        tokenizer.save_pretrained(paths[key])
    write_jsonl(paths["prompts"], [{"prompt": t["prompt"]} for t in demo_tasks(seed=0, n=256)])
    return {k: str(v) for k, v in paths.items()}


# --- 1. memory -------------------------------------------------------------------------------

LAYOUTS = {
    "separate": dict(value_model="reward"),
    "shared": dict(use_lora=True, lora_r=16, lora_alpha=32, value_model="shared"),
}


def memory_worker(layout: str, world: dict, out: str) -> None:
    """One PPO step in this process; prints its peak memory as JSON."""
    # The baseline imports what a PPO run imports, so "above baseline" is the models, optimizer and activations.
    import accelerate  # noqa: F401
    import peft  # noqa: F401
    import torch

    import korlhf.train.ppo.checkpoint  # noqa: F401
    import korlhf.train.ppo.models  # noqa: F401
    import korlhf.train.ppo.output  # noqa: F401
    from korlhf.train import ppo

    if layout != "baseline":
        cfg = ppo.Config(model_name_or_path=world["policy"], reward_model=world["reward"], train_files=[world["prompts"]],
                         output_dir=out, eval_fraction=0.0, max_steps=1, rollout_batch_size=8, batch_size=4,
                         ppo_epochs=1, max_new_tokens=32, sample_steps=0, logging_steps=0, **LAYOUTS[layout])
        ppo.main(cfg)
    peak = (torch.cuda.max_memory_allocated() if torch.cuda.is_available()
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    print(json.dumps({"layout": layout, "peak_bytes": peak, "cuda": torch.cuda.is_available()}))


def bench_memory(root: Path) -> dict:
    world = build_world(root / "small", small=True)
    results = {}
    for layout in ("baseline", "separate", "shared"):
        proc = subprocess.run([sys.executable, __file__, "--worker", layout, "--world", json.dumps(world),
                               "--out", str(root / f"out-{layout}")], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-3000:])
        results[layout] = json.loads(proc.stdout.strip().splitlines()[-1])["peak_bytes"]
    base = 0 if _cuda() else results["baseline"]
    sep, shared = results["separate"] - base, results["shared"] - base
    print(f"\n## Peak memory of one PPO step, GPT-2-small-sized random model ({'GPU' if _cuda() else 'CPU RSS'})")
    print("| layout | peak (GB) | above baseline (GB) |\n|---|---:|---:|")
    for layout in ("baseline", "separate", "shared"):
        print(f"| {layout} | {results[layout] / 1e9:.2f} | {(results[layout] - base) / 1e9:.2f} |")
    print(f"shared / separate = {shared / sep:.2f}x (goal <= 0.5x)")
    return {"separate_gb": sep / 1e9, "shared_gb": shared / 1e9, "ratio": shared / sep}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


# --- 2. speed --------------------------------------------------------------------------------

BATCH, LENGTH, STEPS, ROUNDS = 32, 32, 6, 3


def ppo_step_times(world: dict, out: Path, epochs: int) -> tuple[list[float], dict]:
    from korlhf.train import ppo

    cfg = ppo.Config(model_name_or_path=world["policy"], reward_model=world["reward"], train_files=[world["prompts"]],
                     output_dir=str(out), overwrite=True, eval_fraction=0.0, max_steps=STEPS, rollout_batch_size=BATCH,
                     batch_size=BATCH // 2, ppo_epochs=epochs, max_new_tokens=LENGTH, learning_rate=1e-4,
                     sample_steps=0, logging_steps=0)
    ppo.main(cfg)
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text(encoding="utf-8").splitlines()][1:]
    split = {k: statistics.median(r[f"time/{k}_s"] for r in rows) for k in ("generation", "scoring", "update")}
    lengths = [r["response/length"] for r in rows]
    return [r["time/generation_s"] + r["time/scoring_s"] + r["time/update_s"] for r in rows], split | {
        "length": statistics.mean(lengths)}


def rloo_step_times(world: dict, out: Path) -> tuple[list[float], float]:
    from transformers import TrainerCallback

    from korlhf.train import rloo

    times, lengths = [], []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            times.append(time.perf_counter() - self.start)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "completions/mean_length" in logs:
                lengths.append(float(logs["completions/mean_length"]))

    cfg = rloo.Config(model_name_or_path=world["policy"], reward_model=world["reward"], train_files=[world["prompts"]],
                      output_dir=str(out), overwrite=True, eval_fraction=0.0, max_steps=STEPS, batch_size=BATCH,
                      num_generations=2, max_new_tokens=LENGTH, learning_rate=1e-4, logging_steps=1,
                      lr_scheduler="constant", warmup_ratio=0.0, save_steps=10_000)
    import trl

    class TimedRLOO(trl.RLOOTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.add_callback(Clock())

    real, trl.RLOOTrainer = trl.RLOOTrainer, TimedRLOO
    try:
        rloo.main(cfg)
    finally:
        trl.RLOOTrainer = real
    return times[1:], statistics.mean(lengths)


def bench_speed(root: Path) -> dict:
    world = build_world(root / "tiny", small=False)
    ppo1, ppo4, rl = [], [], []
    for round_ in range(ROUNDS):  # alternate, so both see the same machine load
        times, split1 = ppo_step_times(world, root / f"ppo1-{round_}", epochs=1)
        ppo1 += times
        times, split4 = ppo_step_times(world, root / f"ppo4-{round_}", epochs=4)
        ppo4 += times
        times, rloo_length = rloo_step_times(world, root / f"rloo-{round_}")
        rl += times
    rate = {name: BATCH / statistics.median(t) for name, t in (("ppo_1_epoch", ppo1), ("ppo_4_epochs", ppo4),
                                                               ("rloo", rl))}
    print(f"\n## Samples/s, tiny GPT-2, {BATCH} answers x {LENGTH} tokens per step (median of {len(rl)} steps)")
    print("| trainer | samples/s | vs RLOO | generation s | scoring s | update s |\n|---|---:|---:|---:|---:|---:|")
    for name, split in (("ppo_1_epoch", split1), ("ppo_4_epochs", split4)):
        print(f"| PPO ({name.split('_', 1)[1].replace('_', ' ')}) | {rate[name]:.1f} | {rate[name] / rate['rloo']:.2f}x | "
              f"{split['generation']:.3f} | {split['scoring']:.3f} | {split['update']:.3f} |")
    print(f"| TRL RLOOTrainer | {rate['rloo']:.1f} | 1.00x | | | |")
    print(f"mean answer length: PPO {split1['length']:.1f}, RLOO {rloo_length:.1f} tokens")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["memory", "speed", "all"], default="all")
    parser.add_argument("--worker")
    parser.add_argument("--world")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.worker:
        memory_worker(args.worker, json.loads(args.world), args.out)
        return
    random.seed(0)
    print(f"command: {COMMAND} --part {args.part}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.part in ("memory", "all"):
            bench_memory(Path(tmp))
        if args.part in ("speed", "all"):
            bench_speed(Path(tmp))


if __name__ == "__main__":
    main()
