"""`korlhf demo`: the whole recipe at toy scale, from nothing, on a laptop CPU (no network, no downloads).

1. **world**: korlhf writes a small Korean world whose every fact is known (`korlhf.demo_data`:
   arithmetic in words, units, weekdays, capitals, animal sounds, colours): questions with answers
   (sft), ranked answers with the right one first (rm, as KoBEST gives them) and bare prompts (ppo).
2. **base**: a byte-level BPE tokenizer trained on it and a tiny GPT-2 "pretrained" on the world's
   facts stated as plain sentences: it knows the facts but not how to answer a question.
3. the **pipeline** (`korlhf.pipeline`) on the world files: data clean/build → SFT → reward model →
   PPO with that reward model → generate → eval → ``report.html``. Questions are checkable, so
   the report can say how many answers are right before SFT, after SFT and after PPO.

``--data DIR`` runs the same on your own files (any format `korlhf data` reads): the tokenizer
and the tiny base model are then built from your texts. The settings below are the demo's
(``configs/demo.yaml`` holds the same); every field of `korlhf pipeline` is one too.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from korlhf import pipeline
from korlhf.errors import KorlhfError

TOY = ("This is a toy: a ~1M-parameter model trained from scratch in minutes on a made-up world of a few "
       "hundred Korean facts. It shows the recipe working and measured, not a useful assistant.")


def _dict(**values):
    return field(default_factory=lambda: dict(values))


@dataclass
class Config(pipeline.Config):
    name: str = "demo"
    model_name_or_path: str = field(default="(built by the demo)", metadata={"help": "set by the demo: runs/<name>/base"})
    title: str = "korlhf demo: the RLHF recipe on a toy Korean world"
    note: str = TOY
    data: str | None = field(default=None, metadata={"help": "a folder of your own data files instead of the demo world"})
    arch: str = field(default="gpt2", metadata={"help": "tiny model architecture: gpt2 or llama"})
    hidden: int = field(default=128, metadata={"help": "hidden size of the tiny model"})
    layers: int = field(default=4, metadata={"help": "layers of the tiny model"})
    vocab_size: int = field(default=1500, metadata={"help": "BPE vocabulary of the demo tokenizer"})
    pretrain_steps: int = field(default=300, metadata={"help": "language-model steps on the world's sentences"})
    pretrain_lr: float = field(default=3e-3, metadata={"help": "learning rate of that pretraining"})
    n_sft: int = field(default=700, metadata={"help": "world questions with answers (SFT and held-out eval)"})
    n_rm: int = field(default=300, metadata={"help": "world questions with ranked answers (reward model)"})
    eval_size: int = field(default=150, metadata={"help": "held-out questions with answers, answered by every model"})
    seed: int = field(default=0, metadata={"help": "seed of the world and of the tiny model"})
    data_clean: dict = _dict(near_dedup=False)  # "3 더하기 4" and "3 더하기 5" are different questions
    data_build: dict = _dict()
    sft: dict = _dict(max_steps=400, batch_size=32, learning_rate=1e-3, warmup_ratio=0.05, logging_steps=20,
                      eval_fraction=0.0, save_steps=100, max_length=96, seed=0)
    rm: dict = _dict(max_steps=300, batch_size=16, learning_rate=5e-4, warmup_ratio=0.05, logging_steps=10,
                     eval_fraction=0.15, save_steps=50, max_length=96, seed=0)
    ppo: dict = _dict(steps=40, rollout_batch_size=32, mini_batch_size=16, ppo_epochs=4, learning_rate=1e-5,
                      max_new_tokens=24, kl_coef=0.2, missing_eos_penalty=1.0, sample_steps=10, logging_steps=1,
                      eval_fraction=0.2, eval_steps=10, save_steps=10, seed=0)
    generate: dict = _dict(preset="greedy", max_new_tokens=24)
    sweep: dict = _dict(max_new_tokens=24, strategies=[{"preset": p} for p in
                                                       ("greedy", "beam", "sample", "top-p", "min-p", "contrastive")])
    eval_limit: int = 150
    batch_size: int = 50


def main(cfg: Config) -> Path:
    from rich.console import Console

    console = Console()
    began = time.perf_counter()
    run = Path(cfg.runs_dir) / cfg.name
    files, texts = (user_data(Path(cfg.data)) if cfg.data else write_world(run / "world", cfg))
    cfg.data_files = [str(f) for f in files]
    cfg.data_build = {"eval_size": cfg.eval_size, **cfg.data_build}
    cfg.model_name_or_path = str(build_base(run / "base", texts, cfg, console))
    report = pipeline.main(cfg)
    findings = summary(run, console)
    if findings:  # the measured outcome goes to the top of the report too
        from korlhf.report import pipeline_report

        cfg.note = f"{TOY} Measured: {' '.join(findings)}"
        report = pipeline_report(run, cfg)
    console.print(f"\n[bold]report[/bold]: {report}   ({time.perf_counter() - began:.0f}s in all)")
    console.print(f"[dim]{TOY}[/dim]")
    return report


def write_world(folder: Path, cfg: Config) -> tuple[list[Path], list[str]]:
    """The demo world's sft / rm / ppo files and its "pretraining" sentences."""
    import random

    from korlhf.demo_data import preference, world_questions, world_text
    from korlhf.records import write_jsonl

    questions = world_questions(cfg.seed)
    if cfg.n_sft + cfg.n_rm >= len(questions):
        raise KorlhfError(f"n_sft + n_rm must leave PPO prompts: the world has {len(questions)} questions")
    sft, rm, ppo = (questions[:cfg.n_sft], questions[cfg.n_sft:cfg.n_sft + cfg.n_rm],
                    questions[cfg.n_sft + cfg.n_rm:])
    rng = random.Random(cfg.seed)
    files = [folder / "sft.jsonl", folder / "rm.jsonl", folder / "ppo.jsonl"]
    write_jsonl(files[0], sft)
    write_jsonl(files[1], [preference(q, rng) for q in rm])
    write_jsonl(files[2], [{"id": q["id"], "prompt": q["prompt"], "source": q["source"]} for q in ppo])
    sentences = world_text(cfg.seed)
    return files, sentences + [q["prompt"] for q in questions]


def user_data(folder: Path) -> tuple[list[Path], list[str]]:
    """Every readable file under ``folder``, and the texts to build a tokenizer and base model from."""
    from korlhf.data.normalize import texts_of
    from korlhf.data.readers import read_records

    if not folder.is_dir():
        raise KorlhfError(f"--data {folder}: not a folder; give a folder of data files (jsonl, json, csv, tsv, parquet)")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise KorlhfError(f"--data {folder}: no files in it")
    texts = [text for record in read_records(files) for _, text in texts_of(record)]
    return files, texts


def build_base(folder: Path, texts: list[str], cfg: Config, console) -> Path:
    """Tokenizer + tiny causal LM, pretrained on ``texts``; skipped when ``metrics.json`` is there."""
    if (folder / "metrics.json").is_file() and "base" not in cfg.force:
        console.print(f"[dim]base: done earlier ({folder}); --force base rebuilds it[/dim]")
        return folder
    from korlhf.tiny import TinySize, build_causal_lm, train_tokenizer

    console.rule("[bold]base (tiny model from scratch)")
    began = time.perf_counter()
    tokenizer = train_tokenizer(texts, cfg.vocab_size, cfg.template or "kochatgpt")
    size = TinySize(hidden=cfg.hidden, layers=cfg.layers, heads=4, max_positions=128)
    model = build_causal_lm(tokenizer, cfg.arch, size, seed=cfg.seed)
    losses = pretrain(model, tokenizer, texts, cfg, folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    metrics = {"parameters": sum(p.numel() for p in model.parameters()), "vocab": len(tokenizer),
               "texts": len(texts), "steps": cfg.pretrain_steps, "loss_start": losses[0], "loss_end": losses[-1],
               "time_s": round(time.perf_counter() - began, 1)}
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    console.print(f"base: {metrics['parameters']:,} parameters, {metrics['vocab']} tokens, LM loss "
                  f"{losses[0]:.2f} → {losses[-1]:.2f} in {metrics['time_s']}s -> {folder}")
    return folder


def pretrain(model, tokenizer, texts: list[str], cfg: Config, folder: Path) -> list[float]:
    """Plain next-token training on ``texts`` (each ends with EOS); returns the logged losses."""
    from datasets import Dataset
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    for name in ("resid_pdrop", "embd_pdrop", "attn_pdrop"):
        setattr(model.config, name, 0.0)  # a world this small is memorised, not regularised
    ids = [tokenizer(t + tokenizer.eos_token, add_special_tokens=False, truncation=True, max_length=128)["input_ids"]
           for t in texts]
    args = TrainingArguments(output_dir=str(folder / "tmp"), max_steps=cfg.pretrain_steps, per_device_train_batch_size=64,
                             learning_rate=cfg.pretrain_lr, lr_scheduler_type="cosine", warmup_steps=0.05,
                             logging_steps=max(1, cfg.pretrain_steps // 10), save_strategy="no", report_to="none",
                             use_cpu=True, seed=cfg.seed, disable_tqdm=False)
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_dict({"input_ids": ids}),
                      data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False))
    trainer.train()
    with open(folder / "log.jsonl", "w", encoding="utf-8") as f:
        for row in trainer.state.log_history:
            f.write(json.dumps(row) + "\n")
    return [row["loss"] for row in trainer.state.log_history if "loss" in row] or [float("nan")]


def summary(run: Path, console) -> list[str]:
    """Print the measured gain of each stage and a few answers before and after; return the findings."""
    from korlhf.report import read_json

    models = read_json(run / "eval" / "models.json") or {}
    rm = read_json(run / "rm" / "metrics.json") or {}
    ppo = read_json(run / "ppo" / "metrics.json") or {}
    findings = []
    accuracy = {name: m["answer_accuracy"] for name, m in models.items() if "answer_accuracy" in m}
    if accuracy:
        findings.append("Right answers to held-out questions: " +
                        " → ".join(f"{name} {value:.0%}" for name, value in accuracy.items()) + ".")
    if "eval_pairwise_accuracy" in rm:
        findings.append(f"Reward model pairwise accuracy on held-out rankings: "
                        f"{rm.get('eval_pairwise_accuracy_start', float('nan')):.0%} untrained → "
                        f"{rm['eval_pairwise_accuracy']:.0%} trained.")
    if "eval_reward_end" in ppo:
        findings.append(f"PPO: reward-model score on held-out prompts {ppo['eval_reward_start']:.2f} → "
                        f"{ppo['eval_reward_end']:.2f}, KL to the SFT model {ppo.get('kl_end', float('nan')):.2f}.")
        if accuracy.get("ppo", 1.0) < accuracy.get("sft", 0.0):
            findings.append("PPO raised the reward model's score but not the share of right answers: a reward model "
                            "this small cannot check arithmetic, and PPO finds its blind spots (reward hacking; the "
                            "KL penalty only limits it). Real scale needs a better reward model, not more PPO.")
    for line in findings:
        console.print(line)
    answers = {p.stem: p for p in (run / "generate").glob("*.jsonl")}
    if {"base", "sft"} <= set(answers):
        from korlhf.records import read_jsonl

        rows = {name: [r for _, r in read_jsonl(path)][:4] for name, path in answers.items()}
        for i, item in enumerate(rows["base"]):
            console.print(f"\n[bold]Q[/bold] {item['prompt']}")
            for name in ("base", "sft", "ppo", "dpo", "grpo"):
                if name in rows:
                    console.print(f"  {name:>4}: {rows[name][i]['response']}")
    return findings
