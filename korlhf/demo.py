"""`korlhf demo`: the whole recipe at toy scale, from nothing, on a laptop CPU (no network, no downloads).

1. **world**: korlhf writes a small Korean world whose every fact is known (`korlhf.demo_data`:
   arithmetic in words, units, weekdays, capitals, animal sounds, colours): questions with answers
   (sft), ranked answers with the right one first (rm, as KoBEST gives them) and bare prompts (ppo).
2. **base**: a byte-level BPE tokenizer trained on it and a tiny GPT-2 "pretrained" on the world's
   facts stated as plain sentences: it knows the facts but not how to answer a question.
3. the **pipeline** (`korlhf.pipeline`) on the world files: data clean/build → SFT → label (AI
   feedback: the SFT model's own answers ranked by the world's checker) → reward model → PPO with
   the checker as a verifiable reward → generate → eval → ``report.html``. Questions are
   checkable, so the report can say how many answers are right before SFT, after SFT and after PPO.
   `korlhf compare --config configs/compare_demo.yaml` then sets PPO on the learned reward model,
   GRPO, RLOO and DPO beside it, three seeds each (docs/rl.md says what was found).

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
from korlhf.streaming import REPLACEMENT

TOY = ("This is a toy: a ~1M-parameter model trained from scratch in minutes on a made-up world of a few "
       "hundred Korean facts. It shows the recipe working and measured, not a useful assistant.")


CHECKER = "korlhf.demo_data:correct"  # the world's exact-answer check: a verifiable reward and the scorer
EVAL_SOURCE = "korlhf-demo-eval"  # the held-out questions' source: data build draws eval from it alone


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
    pretrain_steps: int = field(default=1200, metadata={
        "help": "language-model steps on the world's sentences (300 left the model not knowing its facts: docs/rl.md)"})
    pretrain_lr: float = field(default=3e-3, metadata={"help": "learning rate of that pretraining"})
    # InstructGPT's proportions: demonstrations are costly, prompts cheap, so RL gets more prompts
    # (556) than SFT gets demonstrations; with 550 / 300 / 306 RL had too few to move held-out accuracy
    n_sft: int = field(default=350, metadata={"help": "world questions with answers (SFT)"})
    n_rm: int = field(default=250, metadata={"help": "world questions with ranked answers (reward model); the rest "
                                                       "of the world's questions are PPO prompts"})
    hard_negatives: int = field(default=3, metadata={
        "help": "per reward-model question: right sentences with a wrong value, ranked below the right answer"})
    eval_size: int = field(default=150, metadata={"help": "held-out questions with answers, answered by every model"})
    seed: int = field(default=0, metadata={"help": "seed of the world and of the tiny model"})
    threads: int = field(default=2, metadata={
        "help": "torch CPU threads; the figures depend on it (float sums run in another order), so it is pinned: "
                "two runs, and two machines, print the same (0: torch's default)"})
    data_clean: dict = _dict(near_dedup=False)  # "3 더하기 4" and "3 더하기 5" are different questions
    data_build: dict = _dict()
    stages: list[str] = field(default_factory=lambda: ["data", "sft", "label", "rm", "ppo", "generate", "eval"])
    sft: dict = _dict(max_steps=400, batch_size=32, learning_rate=1e-3, warmup_ratio=0.05, logging_steps=20,
                      eval_fraction=0.0, save_steps=100, max_length=96, seed=0)
    # AI feedback: the SFT model's own sampled answers to the RM questions, ranked by the world's checker
    label: dict = _dict(judge="rules", reward_rules=[CHECKER], samples_per_model=4, preset="sample",
                        max_new_tokens=24, batch_size=50)
    rm: dict = _dict(max_steps=300, batch_size=16, learning_rate=5e-4, warmup_ratio=0.05, logging_steps=10,
                     eval_fraction=0.15, save_steps=50, max_length=96, seed=0)
    # The verifiable reward: a learned reward model this small is a weak checker (docs/rl.md);
    # `korlhf compare --config configs/compare_demo.yaml` runs PPO on it beside this.
    ppo: dict = _dict(reward_model=None, reward_rules=[CHECKER], value_model="shared", max_steps=60,
                      rollout_batch_size=64, batch_size=32, ppo_epochs=4, learning_rate=3e-5, weight_decay=0.01,
                      max_prompt_length=96, max_new_tokens=24,
                      kl_coef=0.05, missing_eos_penalty=1.0, sample_steps=20, logging_steps=10, eval_fraction=0.0,
                      save_steps=20, seed=0)
    generate: dict = _dict(preset="greedy", max_new_tokens=24)
    sweep: dict = _dict(max_new_tokens=24, strategies=[{"preset": p} for p in
                                                       ("greedy", "beam", "sample", "top-p", "min-p", "contrastive")])
    eval_limit: int = 150
    answer_rule: str | None = CHECKER  # the answer sentence, not a substring
    batch_size: int = 50

    def __post_init__(self):
        # `--force base` rebuilds the tiny base model (not a pipeline stage), then every stage after it.
        force, self.force = self.force, [s for s in self.force if s != "base"]
        super().__post_init__()
        self.force = force


def main(cfg: Config) -> Path:
    from rich.console import Console

    console = Console()
    began = time.perf_counter()
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    run = Path(cfg.runs_dir) / cfg.name
    files, texts = (user_data(Path(cfg.data)) if cfg.data else write_world(run / "world", cfg))
    if cfg.data:
        without_checker(cfg)
    cfg.data_files = [str(f) for f in files]
    cfg.data_build = {"eval_size": cfg.eval_size, **({} if cfg.data else {"eval_sources": [EVAL_SOURCE]}),
                      **cfg.data_build}
    cfg.model_name_or_path = str(build_base(run / "base", texts, cfg, console))
    if "base" in cfg.force:  # a new base model: every stage that trains on it is redone
        cfg.force = [s for s in cfg.force if s != "base"] + ["sft"]
    report = pipeline.main(cfg)
    findings = summary(run, console)
    if findings:  # the measured outcome goes to the top of the report too
        from korlhf.report import pipeline_report

        cfg.note = f"{TOY} Measured: {' '.join(findings)}"
        report = pipeline_report(run, cfg)
    console.print(f"\n[bold]report[/bold]: {report}   ({time.perf_counter() - began:.0f}s in all)")
    console.print(f"[dim]{TOY}[/dim]")
    return report


def without_checker(cfg: Config) -> None:
    """Your own data has no checker: no label stage, PPO on the reward model, no answer_rule.

    Settings you changed yourself are kept; only the demo's checker defaults are taken out.
    """
    defaults = Config()
    if cfg.label == defaults.label:
        cfg.stages = [s for s in cfg.stages if s != "label"]
    if cfg.ppo == defaults.ppo:
        cfg.ppo = {k: v for k, v in cfg.ppo.items() if k not in ("reward_model", "reward_rules", "value_model")}
    if cfg.answer_rule == CHECKER:
        cfg.answer_rule = None


def write_world(folder: Path, cfg: Config) -> tuple[list[Path], list[str]]:
    """The demo world's sft / rm / ppo / eval files and its "pretraining" sentences.

    The four question sets are disjoint as texts and each holds every task kind in proportion
    (`korlhf.demo_data.split_world`): RL then trains on the kinds it is evaluated on, and
    the held-out questions are never seen by SFT, the reward model or PPO.
    """
    import random

    from korlhf.demo_data import preference, split_world, world_questions, world_text
    from korlhf.records import write_jsonl

    questions = world_questions(cfg.seed)
    if cfg.eval_size + cfg.n_sft + cfg.n_rm >= len(questions):
        raise KorlhfError(f"eval_size + n_sft + n_rm must leave PPO prompts: the world has {len(questions)} questions")
    sets = split_world(cfg.seed, {"eval": cfg.eval_size, "sft": cfg.n_sft, "rm": cfg.n_rm, "ppo": 0})
    rng = random.Random(cfg.seed)
    files = {name: folder / f"{name}.jsonl" for name in ("sft", "rm", "ppo", "eval")}
    write_jsonl(files["sft"], sets["sft"])
    write_jsonl(files["rm"], [preference(q, rng, cfg.hard_negatives) for q in sets["rm"]])
    write_jsonl(files["ppo"], [{"id": q["id"], "prompt": q["prompt"], "task": q["task"], "source": q["source"]}
                               for q in sets["ppo"]])
    write_jsonl(files["eval"], [{**q, "source": EVAL_SOURCE} for q in sets["eval"]])
    sentences = world_text(cfg.seed)
    return list(files.values()), sentences + [q["prompt"] for q in questions]


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


BASE_SETTINGS = ("arch", "hidden", "layers", "vocab_size", "pretrain_steps", "pretrain_lr", "seed", "data", "template")


def build_base(folder: Path, texts: list[str], cfg: Config, console) -> Path:
    """Tokenizer + tiny causal LM, pretrained on ``texts``; skipped when ``metrics.json`` is there
    (with a warning if the settings it was built with have changed since)."""
    settings = {name: getattr(cfg, name) for name in BASE_SETTINGS}
    if (folder / "metrics.json").is_file() and "base" not in cfg.force:
        console.print(f"[dim]base: done earlier ({folder}); --force base rebuilds it[/dim]")
        before = json.loads((folder / "settings.json").read_text()) if (folder / "settings.json").is_file() else {}
        changed = sorted(k for k in settings if k in before and before[k] != settings[k])
        if changed:
            console.print(f"[yellow]base: settings changed since it was built ({', '.join(changed)}); the base "
                          f"model and every stage after it are kept as they were: pass --force base to rebuild it "
                          f"and redo every stage, or give the run a new --name[/yellow]")
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
    (folder / "settings.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
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
    trained = {name: m["rl_prompt_accuracy"] for name, m in models.items() if "rl_prompt_accuracy" in m}
    if "ppo" in trained:
        findings.append("Right answers to the questions PPO trained on: " +
                        " → ".join(f"{name} {value:.0%}" for name, value in trained.items()) + ".")
    if "eval_pairwise_accuracy" in rm:
        findings.append(f"Reward model pairwise accuracy on held-out rankings: "
                        f"{rm.get('eval_pairwise_accuracy_start', float('nan')):.0%} untrained → "
                        f"{rm['eval_pairwise_accuracy']:.0%} trained.")
    if "reward_end" in ppo:
        findings.append(f"PPO: training reward {ppo['reward_start']:.2f} → {ppo['reward_end']:.2f}, "
                        f"KL to the SFT model {ppo.get('kl_end', float('nan')):.2f}.")
    if "ppo" in accuracy and "sft" in accuracy:
        gain = 100 * (accuracy["ppo"] - accuracy["sft"])
        findings.append(f"PPO {'raised' if gain > 0 else 'did not raise'} held-out accuracy ({gain:+.1f} points, "
                        "one seed; differences of a few points are within the seed spread: korlhf compare "
                        "measures several).")
    import torch

    findings.append(f"(torch threads: {torch.get_num_threads()})")
    for line in findings:
        console.print(line)
    answers = {p.stem: p for p in (run / "generate").glob("*.jsonl")}
    if {"base", "sft"} <= set(answers):
        from korlhf.records import read_jsonl

        rows = {name: [r for _, r in read_jsonl(path)] for name, path in answers.items()}
        from korlhf import stages

        names = [name for name in ("base", "sft", *stages.policies()) if name in rows]
        # Questions where the trained models answer differently show what the last stage changed.
        differ = [i for i in range(len(rows["sft"])) if len({rows[n][i]["response"] for n in names[1:]}) > 1]
        for i in (differ + [i for i in range(len(rows["sft"])) if i not in differ])[:4]:
            console.print(f"\n[bold]Q[/bold] {rows['base'][i]['prompt']}")
            for name in names:
                # U+FFFD: an invalid byte sequence the toy model emitted; a terminal shows nothing for it
                console.print(f"  {name:>4}: {rows[name][i]['response'].replace(REPLACEMENT, '')}")
    return findings
