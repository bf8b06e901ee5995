"""`korlhf demo`: the recipe at toy scale on data korlhf writes itself (no network, no downloads).

Today it builds the demo world, trains a Korean BPE tokenizer on it, builds a tiny model, saves
it and loads it back through `from_pretrained` (the path real models take), and reports what it
built. Later stages (SFT, RM, PPO, evaluation) join as they land.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console


@dataclass
class Config:
    out_dir: str = field(default="runs/demo", metadata={"help": "where the run directory is written"})
    n_tasks: int = field(default=2000, metadata={"help": "demo tasks to generate"})
    vocab_size: int = field(default=3000, metadata={"help": "BPE vocabulary of the demo tokenizer"})
    arch: str = field(default="gpt2", metadata={"help": "tiny model architecture: gpt2 or llama"})
    template: str = field(default="kochatgpt", metadata={"help": "prompt template: kochatgpt, koalpaca, chatml"})
    seed: int = field(default=0, metadata={"help": "random seed"})


def main(cfg: Config) -> Path:
    from korlhf.demo_data import demo_corpus, demo_tasks
    from korlhf.templates import render_example
    from korlhf.tiny import save_tiny, train_tokenizer

    console = Console()
    out = Path(cfg.out_dir)
    data_dir = out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    tasks = demo_tasks(cfg.seed, cfg.n_tasks)
    with open(data_dir / "tasks.jsonl", "w", encoding="utf-8") as f:
        for task in tasks:
            f.write(json.dumps(task, ensure_ascii=False) + "\n")
    console.print(f"[bold]1. data[/bold]   {len(tasks)} demo tasks -> {data_dir / 'tasks.jsonl'}")

    start = time.perf_counter()
    tokenizer = train_tokenizer(demo_corpus(cfg.seed, cfg.n_tasks), cfg.vocab_size, cfg.template)
    model_dir = save_tiny(out / "base", None, arch=cfg.arch, tokenizer=tokenizer, seed=cfg.seed)
    console.print(f"[bold]2. model[/bold]  tiny {cfg.arch} + BPE tokenizer ({len(tokenizer)} tokens) -> {model_dir}"
                  f" in {time.perf_counter() - start:.1f}s")

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    n_params = sum(p.numel() for p in model.parameters())
    text = render_example(tokenizer, tasks[0]["prompt"], tasks[0]["response"])
    ids = tokenizer(text)["input_ids"]
    chars = sum(len(t["response"]) for t in tasks[:200])
    tokens = sum(len(tokenizer(t["response"])["input_ids"]) for t in tasks[:200])
    console.print(f"[bold]3. reload[/bold] from_pretrained({model_dir}): {n_params:,} parameters; "
                  f"{chars / tokens:.2f} Korean characters per token")
    console.print(f"[bold]template[/bold] {cfg.template}, {len(ids)} tokens:\n{text}")
    return out
