"""`korlhf train sft`: supervised fine-tuning on Korean instruction data, on TRL's SFTTrainer.

Stage 1 of the recipe. sft records (prompt/response, or multi-turn ``messages``) are rendered with
the tokenizer's chat template and the loss covers the answers only: TRL's ``assistant_only_loss``
reads the template's ``{% generation %}`` markers, so every prompt, user turn and piece of template
markup gets label -100 and every assistant turn (with its EOS) is learned.

Batches are grouped by length by default (HF's LengthGroupedSampler): random batches of
KoChatGPT-like data are about a third padding, length-grouped ones ~2% (benchmarks/bench_sft.py).
On a CPU the loss is the model's own (`plain_loss`): TRL's fused LM head pays off on GPUs only.
Packing and padding-free batches are options for GPUs with flash-attention's variable-length
kernels, and refused without them: with sdpa or eager attention the examples of a packed row would
attend to each other (checked: the second of two flattened sequences gets different logits).

Output: see `korlhf.train.output` (model or adapter, tokenizer + template, config.yaml,
log.jsonl, checkpoints, README.md model card, metrics.json last).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from korlhf.train.common import ModelFields, RunFields
from korlhf.train.fields import DataFields, OptimFields


@dataclass(kw_only=True)
class Config(OptimFields, DataFields, RunFields, ModelFields):
    group_by_length: bool = field(default=True, metadata={
        "help": "batch examples of similar length together (far less padding; the default)"})
    packing: bool = field(default=False, metadata={
        "help": "pack examples into max_length rows (needs attn_implementation: flash_attention_2)"})
    padding_free: bool = field(default=False, metadata={
        "help": "flatten each batch into one row without padding (needs attn_implementation: flash_attention_2)"})
    neftune_noise_alpha: float | None = field(default=None, metadata={
        "help": "NEFTune: add uniform noise of this scale to embeddings while training (5 is typical)"})
    attn_implementation: str | None = field(default=None, metadata={
        "help": "attention kernel: sdpa (default), eager, flash_attention_2 (CUDA + flash-attn; needed to pack)"})

    def __post_init__(self):
        super().__post_init__()
        # Packed / flattened rows keep examples apart only through flash-attention's variable-length
        # kernels; sdpa and eager attention would let each example attend to the ones packed before it.
        if (self.packing or self.padding_free) and "flash" not in (self.attn_implementation or ""):
            raise ValueError("packing and padding_free need attn_implementation: flash_attention_2 (CUDA and "
                             "flash-attn); with sdpa or eager attention packed examples would attend to each other")


def main(cfg: Config, callbacks=()) -> dict:
    """Run the stage; returns the metrics written to ``metrics.json``. ``callbacks``: extra Trainer callbacks."""
    from accelerate import PartialState

    from korlhf.models import load_causal_lm, load_tokenizer
    from korlhf.train.common import training_dtype
    from korlhf.train.data import sft_dataset
    from korlhf.train.output import begin, open_output_dir, read_log, resuming, template_label

    start = begin(cfg, "sft")
    if start.done is not None:
        return start.done
    out, quant, train_records, eval_records = Path(cfg.output_dir), start.quant, start.train_records, start.eval_records
    train_data, eval_data = sft_dataset(train_records), sft_dataset(eval_records) if eval_records else None
    args = training_args(cfg, has_eval=eval_data is not None)  # also sets up the processes (DDP, DeepSpeed)
    checkpoint = open_output_dir(cfg)
    main_process = PartialState().is_main_process
    tokenizer = load_tokenizer(cfg.model_name_or_path, cfg.template, cfg.trust_remote_code)
    attention = {"attn_implementation": cfg.attn_implementation} if cfg.attn_implementation else {}
    model = load_causal_lm(cfg.model_name_or_path, tokenizer, dtype=training_dtype(cfg.dtype),
                           trust_remote_code=cfg.trust_remote_code, **quant, **attention)
    trainer = build_trainer(cfg, model, tokenizer, train_data, eval_data, callbacks, args)
    if main_process:
        Console().print(f"[bold]sft[/bold] {cfg.model_name_or_path}: {len(trainer.train_dataset):,} train / "
                      f"{len(eval_records):,} eval examples, template {template_label(tokenizer)}{resuming(checkpoint)}")
    if eval_records and checkpoint is None:
        trainer.evaluate()  # logged at step 0: the starting point of the eval loss
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    # The mean of every logged loss: after a resume, HF's own figure covers only the resumed steps.
    losses = [row["loss"] for row in read_log(out) if "loss" in row] if main_process else []
    metrics = {"train_loss": sum(losses) / len(losses) if losses else result.training_loss,
               "steps": trainer.state.global_step, "train_examples": len(trainer.train_dataset),
               "eval_examples": len(trainer.eval_dataset) if eval_records else 0}
    if eval_records:
        metrics.update(eval_summary(out, trainer.evaluate()))
    finish(cfg, trainer, tokenizer, train_records, eval_records, metrics)
    return metrics


def training_args(cfg: Config, has_eval: bool):
    """TRL's ``SFTConfig`` for ``cfg``. Creating it sets up torch.distributed when launched with accelerate."""
    from trl import SFTConfig

    from korlhf.train.fields import trainer_kwargs

    return SFTConfig(
        **trainer_kwargs(cfg, has_eval=has_eval),
        # TRL refuses padding-free rows with a max_length unless it packs: `build_trainer` truncates them.
        max_length=None if cfg.padding_free and not cfg.packing else cfg.max_length,
        assistant_only_loss=True,
        packing=cfg.packing,
        padding_free=cfg.padding_free,
        train_sampling_strategy="group_by_length" if cfg.group_by_length and not cfg.packing else "random",
        neftune_noise_alpha=cfg.neftune_noise_alpha,
        trust_remote_code=cfg.trust_remote_code,
    )


def build_trainer(cfg: Config, model, tokenizer, train_data, eval_data=None, callbacks=(), args=None):
    """TRL's SFTTrainer with atomic checkpoints and ``log.jsonl``; data from `korlhf.train.data.sft_dataset`."""
    from trl import SFTTrainer

    from korlhf.train.common import lora_config
    from korlhf.train.output import LogJsonl, with_atomic_checkpoints
    from korlhf.train.samplers import with_epoch_seeded_sampler

    class KorlhfSFTTrainer(with_epoch_seeded_sampler(with_atomic_checkpoints(SFTTrainer))):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if self.accelerator.device.type == "cpu":
                return plain_loss(self, model, inputs, return_outputs, num_items_in_batch)
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    unpacked_padding_free = cfg.padding_free and not cfg.packing
    trainer = KorlhfSFTTrainer(
        model=model,
        args=args or training_args(cfg, has_eval=eval_data is not None),
        train_dataset=train_data,
        eval_dataset=eval_data,
        processing_class=tokenizer,
        peft_config=lora_config(cfg, "CAUSAL_LM"),
        callbacks=[LogJsonl(cfg.output_dir), *callbacks],
    )
    if unpacked_padding_free:  # truncate as TRL does when it pads: keep the start, drop rows with no answer left
        trainer.train_dataset = truncate(trainer.train_dataset, cfg.max_length)
        if trainer.eval_dataset is not None:
            trainer.eval_dataset = truncate(trainer.eval_dataset, cfg.max_length)
    return trainer


def plain_loss(trainer, model, inputs, return_outputs=False, num_items_in_batch=None):
    """The model's own loss, and token accuracy, instead of TRL's fused LM head: used on a CPU.

    TRL's fused head scores only the answer tokens on Triton (GPU) devices but every position
    elsewhere, through a chunked autograd function: on a CPU a step took 1.45x as long as with the
    model's own loss (benchmarks/bench_sft.py; 498 vs 341 ms on its model). Same loss, same labels.
    """
    import torch
    from transformers import Trainer

    loss, outputs = Trainer.compute_loss(trainer, model, {**inputs, "use_cache": False}, return_outputs=True,
                                         num_items_in_batch=num_items_in_batch)
    with torch.no_grad():
        labels = inputs["labels"][:, 1:]
        mask = labels != -100
        correct = ((outputs.logits[:, :-1].argmax(-1) == labels) & mask).sum()
        gather = trainer.accelerator.gather_for_metrics
        accuracy = gather(correct).sum() / gather(mask.sum()).sum().clamp(min=1)
    trainer._metrics["train" if model.training else "eval"]["mean_token_accuracy"].append(accuracy.item())
    return (loss, outputs) if return_outputs else loss


def truncate(dataset, max_length: int):
    cut = dataset.map(lambda e: {"input_ids": e["input_ids"][:max_length], "labels": e["labels"][:max_length]})
    return cut.filter(lambda e: any(label != -100 for label in e["labels"]))


def eval_summary(output_dir: Path, final: dict) -> dict:
    """Final eval loss and perplexity, with the loss before training (logged at step 0) for comparison."""
    import math

    from korlhf.train.output import read_log

    start = next((row["eval_loss"] for row in read_log(output_dir) if row["step"] == 0 and "eval_loss" in row), None)
    summary = {"eval_loss": final["eval_loss"], "eval_perplexity": math.exp(min(final["eval_loss"], 50.0))}
    if "eval_mean_token_accuracy" in final:
        summary["eval_token_accuracy"] = final["eval_mean_token_accuracy"]
    if start is not None:
        summary["eval_loss_start"] = start
    return summary


def finish(cfg: Config, trainer, tokenizer, train_records, eval_records, metrics: dict) -> None:
    """Model + tokenizer (merged copy with LoRA + merge), model card, metrics.json last."""
    from korlhf.train.output import finish_run, save_model_dir

    out = Path(cfg.output_dir)
    save_model_dir(trainer, tokenizer, out, cfg.merge)
    if trainer.accelerator.is_main_process:
        batching = "packed" if cfg.packing else "length-grouped" if cfg.group_by_length else "random"
        finish_run(cfg, tokenizer, stage="sft", title=f"{out.name}: Korean SFT model", train_records=train_records,
                   eval_records=eval_records, metrics=metrics, processes=trainer.accelerator.num_processes,
                   settings={"batching": batching, "neftune_noise_alpha": cfg.neftune_noise_alpha})
