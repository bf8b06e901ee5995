"""SFT throughput: korlhf's default batching vs the seed's random padded batches, side by side.

Real (non-pad) tokens per second over one epoch of the KoChatGPT dialogues, same model, same
tokens, same order of runs in one process:

- ``seed``: what the original KoChatGPT notebook did: a plain HF ``Trainer``, random batches of 8
  padded to the longest;
- ``grouped``: the same HF ``Trainer`` with length-grouped batches (isolates the batching effect);
- ``korlhf``: `korlhf.train.sft` as shipped (TRL SFTTrainer, length-grouped, answer-only loss; on a
  CPU the model's own loss instead of TRL's fused LM head, see `korlhf.train.sft.plain_loss`).

(Packing is not timed: without flash-attention, which a CPU lacks, packed examples attend to
each other, so korlhf refuses it there.)

Every setup trains the same prepared examples (TRL's tokenization and truncation) from the same
initial weights. The model is a small GPT-2 with a Korean BPE tokenizer trained on the data, so
the run fits a laptop CPU; the padding share, and hence the ratio, depends on the data's length
mix, not on the model.

    .venv/bin/python benchmarks/bench_sft.py            # ~10 min on a 2-core CPU
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DATA = Path(__file__).resolve().parents[1].parent / "shared/data/kochatgpt/kochatgpt_1_SFT_conversation.jsonl"


class CountingCollator:
    """Wraps a collator and counts real and padded tokens of every batch it builds."""

    def __init__(self, inner):
        self.inner, self.real, self.total = inner, 0, 0

    def __call__(self, examples):
        batch = self.inner(examples)
        self.real += sum(len(e["input_ids"]) for e in examples)
        self.total += batch["input_ids"].numel()
        return batch


def build_model(tokenizer, args, root: Path) -> Path:
    from korlhf.tiny import TinySize, save_tiny

    size = TinySize(hidden=args.hidden, layers=args.layers, heads=args.heads, max_positions=args.max_length)
    return save_tiny(root / "model", None, arch="gpt2", tokenizer=tokenizer, size=size)


def run_korlhf(name, model_dir, records, args, root):
    from korlhf.config import load_config
    from korlhf.models import load_causal_lm, load_tokenizer
    from korlhf.train import sft
    from korlhf.train.data import sft_dataset

    cfg = load_config(sft.Config, None, [
        "--model_name_or_path", str(model_dir), "--train_files", "unused", "--output_dir", str(root / name),
        "--batch_size", str(args.batch_size), "--max_length", str(args.max_length), "--epochs", "1",
        "--save_steps", "100000", "--logging_steps", "100000", "--seed", str(args.seed)])
    tokenizer = load_tokenizer(model_dir)
    trainer = sft.build_trainer(cfg, load_causal_lm(model_dir, tokenizer), tokenizer, sft_dataset(records))
    trainer.data_collator = counter = CountingCollator(trainer.data_collator)
    return time_training(name, trainer, counter)


def run_hf(name, model_dir, prepared, args, root, strategy):
    import torch
    from transformers import Trainer, TrainingArguments

    from korlhf.models import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(model_dir)

    def pad_to_longest(examples):
        width = max(len(e["input_ids"]) for e in examples)
        ids = torch.full((len(examples), width), tokenizer.pad_token_id)
        labels = torch.full((len(examples), width), -100)
        mask = torch.zeros((len(examples), width), dtype=torch.long)
        for i, e in enumerate(examples):
            n = len(e["input_ids"])
            ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(e["input_ids"]), torch.tensor(e["labels"]), 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    counter = CountingCollator(pad_to_longest)
    targs = TrainingArguments(output_dir=str(root / name), per_device_train_batch_size=args.batch_size,
                              num_train_epochs=1, learning_rate=2e-5, save_strategy="no", report_to="none",
                              logging_steps=100000, use_cpu=True, seed=args.seed, train_sampling_strategy=strategy,
                              remove_unused_columns=False)
    trainer = Trainer(model=load_causal_lm(model_dir, tokenizer), args=targs, train_dataset=prepared,
                      data_collator=counter)
    return time_training(name, trainer, counter)


def time_training(name, trainer, counter) -> dict:
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    row = {"setup": name, "seconds": seconds, "real_tokens": counter.real, "batch_tokens": counter.total,
           "tokens_per_s": counter.real / seconds, "real_share": counter.real / counter.total}
    print(f"  {name:8s} {seconds:7.1f} s  {row['tokens_per_s']:8.0f} real tok/s  "
          f"{row['real_share']:.0%} of batch tokens are real", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--unit", choices=["turn", "dialogue"], default="turn",
                        help="turn: each question -> answer is an example, like KoChatGPT's SFT file (default); "
                             "dialogue: each whole conversation is one multi-turn example")
    parser.add_argument("--limit", type=int, default=0, help="use the first N dialogues (0: all 439)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--max_length", type=int, default=512)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 keeps timings steady on a machine shared with others)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="time every setup this many times, interleaved; the median is reported")
    args = parser.parse_args()

    import torch

    from korlhf.data.readers import read_records
    from korlhf.tiny import train_tokenizer

    torch.set_num_threads(args.threads)

    dialogues = read_records([args.data], "kochatgpt-conversation")
    dialogues = dialogues[: args.limit] if args.limit else dialogues
    records = dialogues if args.unit == "dialogue" else turns(dialogues)
    texts = [m["content"] for r in dialogues for m in r["messages"]]
    tokenizer = train_tokenizer(texts, vocab_size=args.vocab)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir = build_model(tokenizer, args, root)
        print(f"{len(records)} examples ({args.unit}s of {len(dialogues)} KoChatGPT dialogues), GPT-2 {args.hidden}x{args.layers}, vocab {len(tokenizer)}, "
              f"batch {args.batch_size}, max_length {args.max_length}, torch threads {torch.get_num_threads()}")
        prepared = prepared_examples(model_dir, records, args, root)
        setups = {"seed": lambda: run_hf("seed", model_dir, prepared, args, root, "random"),
                  "grouped": lambda: run_hf("grouped", model_dir, prepared, args, root, "group_by_length"),
                  "korlhf": lambda: run_korlhf("korlhf", model_dir, records, args, root)}
        run_hf("warm-up", model_dir, prepared.select(range(min(16, len(prepared)))), args, root, "random")
        runs = {name: [] for name in setups}
        for round_ in range(args.rounds):  # interleaved, so a busy spell on a shared machine hits every setup
            print(f"round {round_ + 1}/{args.rounds}", flush=True)
            for name, run in setups.items():
                runs[name].append(run())
    rows = [median_row(name, rs) for name, rs in runs.items()]
    seed = rows[0]
    assert all(r["real_tokens"] == seed["real_tokens"] for r in rows), "the setups trained on different tokens"
    print(f"\nmedians of {args.rounds} interleaved rounds; 'vs seed' is the median of the per-round ratios\n"
          "| setup | real tokens/s | real share of batch tokens | vs seed | vs seed, each round |\n"
          "|---|---:|---:|---:|---|")
    for r in rows:
        ratios = [a["tokens_per_s"] / b["tokens_per_s"] for a, b in zip(runs[r["setup"]], runs["seed"], strict=True)]
        print(f"| {r['setup']} | {r['tokens_per_s']:.0f} | {r['real_share']:.0%} | "
              f"{statistics.median(ratios):.2f}x | {', '.join(f'{x:.2f}' for x in ratios)} |")
    print("\ncommand: .venv/bin/python " + " ".join(sys.argv))


def median_row(name: str, rows: list[dict]) -> dict:
    return dict(rows[0], setup=name, tokens_per_s=statistics.median(r["tokens_per_s"] for r in rows))


def turns(dialogues: list[dict]) -> list[dict]:
    """Every (question, answer) pair of the dialogues as a single-turn sft record."""
    records = []
    for d in dialogues:
        m = d["messages"]
        records += [{"prompt": q["content"], "response": a["content"]} for q, a in zip(m, m[1:], strict=False)
                    if q["role"] == "user" and a["role"] == "assistant"]
    return records


def prepared_examples(model_dir, records, args, root):
    """The exact examples korlhf trains on (TRL tokenization, answer-only labels, truncation)."""
    from korlhf.config import load_config
    from korlhf.models import load_causal_lm, load_tokenizer
    from korlhf.train import sft
    from korlhf.train.data import sft_dataset

    cfg = load_config(sft.Config, None, ["--model_name_or_path", str(model_dir), "--train_files", "unused",
                                         "--output_dir", str(root / "prep"), "--max_length", str(args.max_length)])
    tokenizer = load_tokenizer(model_dir)
    trainer = sft.build_trainer(cfg, load_causal_lm(model_dir, tokenizer), tokenizer, sft_dataset(records))
    return trainer.train_dataset.select_columns(["input_ids", "labels"])


if __name__ == "__main__":
    main()
