"""Config fields and TrainingArguments shared by the stages built on a HF/TRL Trainer.

`DataFields` (train/eval files) and `OptimFields` (steps, batch, learning rate, logging, saving,
resuming) are spelled the same in ``sft``, ``rm``, ``dpo``, ``ppo``, ``grpo`` and ``rloo``;
`trainer_kwargs` turns them into keyword arguments for any TRL config (``SFTConfig``,
``RewardConfig``, ``DPOConfig``...), with CPU/GPU precision from `device_kwargs`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from korlhf.train.common import device_kwargs


@dataclass(kw_only=True)
class DataFields:
    train_files: list[str] = field(metadata={"help": "training records, JSON Lines (korlhf data build writes them)"})
    eval_files: list[str] = field(default_factory=list, metadata={
        "help": "held-out records; default: a seeded eval_fraction of train_files"})
    eval_fraction: float = field(default=0.05, metadata={
        "help": "share of train records held out for evaluation when eval_files is empty (0: none)"})
    max_length: int = field(default=512, metadata={"help": "longest sequence in tokens (prompt + answer)"})


@dataclass(kw_only=True)
class OptimFields:
    epochs: float = field(default=1.0, metadata={"help": "passes over the training data"})
    max_steps: int = field(default=-1, metadata={"help": "stop after this many optimizer steps (-1: use epochs)"})
    batch_size: int = field(default=8, metadata={"help": "examples per device per step"})
    grad_accum: int = field(default=1, metadata={"help": "gradient accumulation steps (effective batch = batch_size x this x GPUs)"})
    learning_rate: float = field(default=2e-5, metadata={"help": "peak learning rate (LoRA usually wants ~10x more)"})
    lr_scheduler: str = field(default="cosine", metadata={"help": "learning-rate schedule: cosine, linear, constant..."})
    warmup_ratio: float = field(default=0.03, metadata={"help": "share of steps spent warming the learning rate up"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm (0: off)"})
    logging_steps: int = field(default=10, metadata={"help": "log (log.jsonl, report_to) every this many steps"})
    eval_steps: int = field(default=0, metadata={"help": "evaluate every this many steps (0: only at the end)"})
    save_steps: int = field(default=200, metadata={"help": "write a resumable checkpoint every this many steps"})
    save_total_limit: int = field(default=1, metadata={"help": "checkpoints kept (older ones are deleted)"})
    resume: bool = field(default=False, metadata={
        "help": "continue from the latest complete checkpoint in output_dir (starts fresh if there is none)"})
    overwrite: bool = field(default=False, metadata={"help": "discard an earlier run in output_dir and start over"})
    keep_checkpoints: bool = field(default=False, metadata={
        "help": "keep checkpoint-N folders once the run has finished (they are only needed to resume)"})
    merge: bool = field(default=False, metadata={"help": "LoRA: also save the adapter merged into the base, in output_dir/merged"})

    def __post_init__(self):
        check_ranges(self)


# Numeric settings and the values they may take: (lowest, highest (excluded), whether the lowest is allowed).
RANGES = {
    "epochs": (0, None, False), "batch_size": (1, None, True), "grad_accum": (1, None, True),
    "learning_rate": (0, None, False), "warmup_ratio": (0, 1, True), "weight_decay": (0, None, True),
    "max_grad_norm": (0, None, True), "logging_steps": (1, None, True), "eval_steps": (0, None, True),
    "save_steps": (1, None, True), "save_total_limit": (0, None, True), "eval_fraction": (0, 1, True),
    "max_length": (1, None, True), "max_prompt_length": (1, None, True), "max_new_tokens": (1, None, True),
    "temperature": (0, None, False), "kl_coef": (0, None, True), "cliprange": (0, None, False),
    "rollout_batch_size": (1, None, True), "ppo_epochs": (1, None, True), "num_generations": (2, None, True),
    "num_iterations": (1, None, True), "lora_r": (1, None, True),
}


def check_ranges(cfg) -> None:
    """Every numeric setting of ``cfg`` listed in `RANGES` is in range, or a ValueError names it.

    Run from the configs' ``__post_init__``: a learning rate of 0 or a batch of 0 is refused when the
    config is built (and by `korlhf pipeline`'s up-front check), not deep inside a trainer.
    """
    for name, (low, high, low_ok) in RANGES.items():
        value = getattr(cfg, name, None)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if value < low or (value == low and not low_ok) or (high is not None and value >= high):
            bound = (f"at least {low}" if low_ok else f"more than {low}") + (f" and less than {high}" if high else "")
            raise ValueError(f"{name} must be {bound}; got {value}")


def trainer_kwargs(cfg, has_eval: bool) -> dict:
    """Keyword arguments for a TRL ``*Config`` (a ``TrainingArguments``) from a stage config.

    Checkpoints go to ``output_dir/checkpoint-N`` (written atomically, see `korlhf.train.output`);
    the final model goes to ``output_dir`` itself.
    """
    eval_steps = cfg.eval_steps if has_eval and cfg.eval_steps > 0 else None
    return dict(
        output_dir=cfg.output_dir,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        logging_steps=cfg.logging_steps,
        eval_strategy="steps" if eval_steps else "no",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        activation_checkpointing=cfg.gradient_checkpointing,
        gradient_checkpointing=None,  # the deprecated alias (TRL defaults it to True)
        report_to=list(cfg.report_to) or "none",
        seed=cfg.seed,
        data_seed=cfg.seed,
        **device_kwargs(),
    )
