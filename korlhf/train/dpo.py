"""`korlhf train dpo`: Direct Preference Optimization (Rafailov et al. 2023) on TRL's DPOTrainer.

The alternative to reward model + PPO: learn from the preference records directly. A ranked
record (K answers, best first) gives all K(K-1)/2 (chosen, rejected) pairs; a KoBEST-style record
marked ``tied_after_first`` gives only (first, other) pairs (`korlhf.records.ranking_pairs`).
Pairs are conversational (`korlhf.train.data.preference_dataset`), so TRL renders them with the
tokenizer's chat template, the one SFT trained with. The reference is the SFT model itself: with
LoRA, the policy with its adapters switched off; without, a frozen copy loaded the same way as
the policy (not rebuilt by TRL from a config path, which for an SFT adapter is the wrong model).

Output: see `korlhf.train.output`; ``metrics.json`` has the held-out DPO loss and reward accuracy
(the share of pairs whose chosen answer gains more log-probability over the reference than the
rejected one) before and after training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from korlhf.train.common import ModelFields, RunFields
from korlhf.train.fields import DataFields, OptimFields


@dataclass(kw_only=True)
class Config(OptimFields, DataFields, RunFields, ModelFields):
    beta: float = field(default=0.1, metadata={"help": "how far the policy may move from the reference (higher: less)"})
    loss_type: str = field(default="sigmoid", metadata={
        "help": "TRL DPO loss: sigmoid (DPO), ipo, hinge, robust, apo_zero, ... (see TRL's DPOConfig)"})
    label_smoothing: float = field(default=0.0, metadata={"help": "assumed share of flipped labels (robust/cDPO)"})
    precompute_ref_log_probs: bool = field(default=False, metadata={
        "help": "compute reference log-probs once before training, then free the reference model"})
    learning_rate: float = field(default=1e-6, metadata={"help": "peak learning rate (LoRA usually wants ~10x more)"})


def main(cfg: Config) -> dict:
    from accelerate import PartialState
    from trl import DPOConfig

    from korlhf.models import load_causal_lm, load_tokenizer
    from korlhf.train.common import training_dtype
    from korlhf.train.data import preference_dataset
    from korlhf.train.fields import trainer_kwargs
    from korlhf.train.output import begin, open_output_dir, resuming, template_label

    start = begin(cfg, "preference")
    if start.done is not None:
        return start.done
    out, quant, train_records, eval_records = Path(cfg.output_dir), start.quant, start.train_records, start.eval_records
    train_data = preference_dataset(train_records)
    eval_data = preference_dataset(eval_records) if eval_records else None
    args = DPOConfig(**trainer_kwargs(cfg, has_eval=eval_data is not None), max_length=cfg.max_length, beta=cfg.beta,
                     loss_type=[cfg.loss_type], label_smoothing=cfg.label_smoothing,
                     precompute_ref_log_probs=cfg.precompute_ref_log_probs,
                     trust_remote_code=cfg.trust_remote_code)  # sets up the processes (DDP, DeepSpeed)
    checkpoint = open_output_dir(cfg)
    main_process = PartialState().is_main_process
    tokenizer = load_tokenizer(cfg.model_name_or_path, cfg.template, cfg.trust_remote_code)
    load = dict(dtype=training_dtype(cfg.dtype), trust_remote_code=cfg.trust_remote_code)
    model = load_causal_lm(cfg.model_name_or_path, tokenizer, **load, **quant)
    reference = None if cfg.use_lora or cfg.load_in_4bit else load_causal_lm(cfg.model_name_or_path, tokenizer, **load)
    trainer = build_trainer(cfg, model, reference, tokenizer, train_data, eval_data, args)
    if main_process:
        Console().print(f"[bold]dpo[/bold] {cfg.model_name_or_path}: {len(train_data):,} train pairs from "
                        f"{len(train_records):,} records / {len(eval_data or []):,} eval pairs, template "
                        f"{template_label(tokenizer)}{resuming(checkpoint)}")
    if eval_data is not None and checkpoint is None:
        trainer.evaluate()  # logged at step 0: the starting point
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    metrics = {"steps": trainer.state.global_step, "train_pairs": len(train_data), "eval_pairs": len(eval_data or [])}
    if eval_data is not None:
        metrics |= eval_summary(out, trainer.evaluate(), main_process)
    finish(cfg, trainer, tokenizer, train_records, eval_records, metrics)
    return metrics


def build_trainer(cfg: Config, model, reference, tokenizer, train_data, eval_data, args):
    """TRL's DPOTrainer with atomic checkpoints and ``log.jsonl``."""
    from trl import DPOTrainer

    from korlhf.train.common import lora_config
    from korlhf.train.output import LogJsonl, with_atomic_checkpoints

    return with_atomic_checkpoints(DPOTrainer)(model=model, ref_model=reference, args=args, train_dataset=train_data,
                            eval_dataset=eval_data, processing_class=tokenizer,
                            peft_config=lora_config(cfg, "CAUSAL_LM"), callbacks=[LogJsonl(cfg.output_dir)])


def eval_summary(output_dir: Path, final: dict, main_process: bool) -> dict:
    """Held-out DPO loss, reward accuracy and margin, with their values before training."""
    from korlhf.train.output import read_log

    names = {"eval_loss": "eval_loss", "eval_rewards/accuracies": "eval_reward_accuracy",
             "eval_rewards/margins": "eval_reward_margin"}
    summary = {ours: final[theirs] for theirs, ours in names.items() if theirs in final}
    start = next((row for row in (read_log(output_dir) if main_process else []) if row["step"] == 0), None)
    if start is not None:
        summary |= {f"{ours}_start": start[theirs] for theirs, ours in names.items() if theirs in start}
    return summary


def finish(cfg: Config, trainer, tokenizer, train_records, eval_records, metrics: dict) -> None:
    """Model + tokenizer (merged copy with LoRA + merge), model card, metrics.json last."""
    from korlhf.train.output import finish_run, save_model_dir

    out = Path(cfg.output_dir)
    save_model_dir(trainer, tokenizer, out, cfg.merge)
    if trainer.accelerator.is_main_process:
        settings = {"beta": cfg.beta, "loss_type": cfg.loss_type, "label_smoothing": cfg.label_smoothing}
        finish_run(cfg, tokenizer, stage="dpo", title=f"{out.name}: Korean DPO policy", train_records=train_records,
                   eval_records=eval_records, metrics=metrics, settings=settings,
                   processes=trainer.accelerator.num_processes)
