"""`korlhf train rm`: a reward model from ranked Korean answers.

Stage 2 of the recipe. The reward model is ``AutoModelForSequenceClassification`` with one output,
initialised from the SFT model (or any causal LM: the ``score`` head is new), and reads the same
chat-template text the policy writes: prompt, answer, EOS. Preference records list their answers
best -> worst (K >= 2). Losses:

- ``pairwise``: Bradley–Terry on every known pair, on TRL's RewardTrainer, with an optional
  margin (``margin_scale`` x score difference) and reward centering;
- ``kwise``: InstructGPT's ranking loss, all C(K,2) pairs of one prompt in the same batch, each
  weighted 1/C(K,2) (`korlhf.train.ranking`); the default, and the same as pairwise when K = 2;
- ``listwise``: the Plackett–Luce likelihood of the whole ranking.

With LoRA, peft saves the trained ``score`` head in the adapter (``modules_to_save``), and the
final metrics are measured on the model *reloaded from output_dir* with `load_reward_model`, so
they describe exactly what PPO will load. Held-out metrics: pairwise accuracy, and for K >= 3
top-1 accuracy and Kendall tau, in ``metrics.json``.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rich.console import Console

from korlhf.errors import KorlhfError
from korlhf.train.common import ModelFields, RunFields
from korlhf.train.fields import DataFields, OptimFields


@dataclass(kw_only=True)
class Config(OptimFields, DataFields, RunFields, ModelFields):
    loss: Literal["kwise", "pairwise", "listwise"] = field(default="kwise", metadata={
        "help": "kwise (InstructGPT: a prompt's C(K,2) pairs in one batch), pairwise (Bradley-Terry, "
                "TRL RewardTrainer), listwise (Plackett-Luce)"})
    margin_scale: float = field(default=0.0, metadata={
        "help": "pairwise only: margin = this x (score of chosen - score of rejected), from the records' scores"})
    center_rewards_coefficient: float | None = field(default=None, metadata={
        "help": "push rewards towards mean zero with this weight x mean(reward^2) (0.01 is typical)"})
    learning_rate: float = field(default=1e-5, metadata={"help": "peak learning rate (LoRA usually wants ~10x more)"})

    def __post_init__(self):
        super().__post_init__()
        if self.margin_scale and self.loss != "pairwise":
            raise ValueError(f"margin_scale needs loss: pairwise (loss is {self.loss})")


def main(cfg: Config, callbacks=()) -> dict:
    """Run the stage; returns the metrics written to ``metrics.json``."""
    from accelerate import PartialState

    from korlhf.models import load_reward_model, load_tokenizer
    from korlhf.train.common import training_dtype
    from korlhf.train.output import append_log, begin, open_output_dir, read_log, resuming

    start = begin(cfg, "preference")
    if start.done is not None:
        return start.done
    out, quant, train_records, eval_records = Path(cfg.output_dir), start.quant, start.train_records, start.eval_records
    args = training_args(cfg, has_eval=bool(eval_records))  # also sets up the processes (DDP, DeepSpeed)
    checkpoint = open_output_dir(cfg)
    main_process = PartialState().is_main_process
    tokenizer = load_tokenizer(cfg.model_name_or_path, cfg.template, cfg.trust_remote_code)
    with quiet_transformers():  # its "score.weight MISSING, train this model" report: that is what we do next
        model = load_reward_model(cfg.model_name_or_path, tokenizer, dtype=training_dtype(cfg.dtype),
                                  trust_remote_code=cfg.trust_remote_code, new_head=True, **quant)
    trainer = build_trainer(cfg, model, tokenizer, train_records, eval_records, callbacks, args)
    if main_process:
        Console().print(f"[bold]rm[/bold] {cfg.model_name_or_path}: {len(trainer.train_dataset):,} train rows "
                        f"({cfg.loss} loss), {len(eval_records):,} eval records{resuming(checkpoint)}")
    # Evaluate on the held-out records the eval loss sees: a truncated answer loses the EOS its score is read at.
    fitting = [r for r in eval_records if tokenize_answers(tokenizer, r["prompt"], r["responses"], cfg.max_length)]
    if fitting and checkpoint is None and main_process:
        start = evaluate(trainer.model, tokenizer, fitting, cfg.batch_size)
        append_log(out, {"step": 0, **{f"eval_{k}": v for k, v in start.items()}})
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    # The mean of every logged loss: after a resume, HF's own figure covers only the resumed steps.
    losses = [row["loss"] for row in read_log(out) if "loss" in row] if main_process else []
    metrics = {"train_loss": sum(losses) / len(losses) if losses else result.training_loss,
               "steps": trainer.state.global_step,
               "train_rows": len(trainer.train_dataset), "loss": cfg.loss}
    finish(cfg, trainer, tokenizer, train_records, fitting, metrics)
    return metrics


@contextmanager
def quiet_transformers():
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)


def tokenize_answers(tokenizer, prompt: str, responses, max_length: int) -> list[list[int]] | None:
    """Token ids of each (prompt, answer) as the policy renders it; None if one is too long."""
    from korlhf.templates import render_example

    ids = [tokenizer(render_example(tokenizer, prompt, r), add_special_tokens=False)["input_ids"] for r in responses]
    return None if any(len(x) > max_length for x in ids) else ids


def ranking_dataset(records, tokenizer, max_length: int):
    """One row per record: ``responses_ids`` (K lists of ids, best first) and ``tied_after_first``."""
    from datasets import Dataset

    rows = []
    for r in records:
        ids = tokenize_answers(tokenizer, r["prompt"], r["responses"], max_length)
        if ids is not None:
            rows.append({"responses_ids": ids, "tied_after_first": bool(r.get("tied_after_first", False))})
    _report_dropped(len(records) - len(rows), len(records), "records", max_length)
    return Dataset.from_list(rows)


def pairwise_dataset(records, tokenizer, max_length: int, margin_scale: float):
    """One row per known pair, tokenized for TRL's RewardTrainer (``chosen_ids``, ``rejected_ids``, ``margin``)."""
    from datasets import Dataset

    from korlhf.train.data import preference_pairs

    pairs = preference_pairs(records, margin_scale)
    rows = []
    for p in pairs:
        ids = tokenize_answers(tokenizer, p["prompt"], [p["chosen"], p["rejected"]], max_length)
        if ids is not None:
            rows.append({"chosen_ids": ids[0], "rejected_ids": ids[1]} | ({"margin": p["margin"]} if margin_scale else {}))
    _report_dropped(len(pairs) - len(rows), len(pairs), "pairs", max_length)
    return Dataset.from_list(rows)


def _report_dropped(dropped: int, total: int, what: str, max_length: int) -> None:
    if dropped == total:
        raise KorlhfError(f"every one of the {total} {what} is longer than max_length={max_length} tokens; "
                          "raise max_length")
    if dropped:
        Console().print(f"[yellow]{dropped} of {total} {what} skipped: longer than max_length={max_length}[/yellow]")


def training_args(cfg: Config, has_eval: bool):
    """TRL's ``RewardConfig`` for ``cfg``. Creating it sets up torch.distributed when launched with accelerate."""
    from trl import RewardConfig

    from korlhf.train.fields import trainer_kwargs

    # max_length=None: the datasets are tokenized and length-filtered by us, before TRL sees them.
    return RewardConfig(**trainer_kwargs(cfg, has_eval=has_eval), max_length=None,
                        center_rewards_coefficient=cfg.center_rewards_coefficient,
                        trust_remote_code=cfg.trust_remote_code)


def build_trainer(cfg: Config, model, tokenizer, train_records, eval_records, callbacks=(), args=None):
    """RewardTrainer (pairwise) or our K-wise subclass of it, with atomic checkpoints and ``log.jsonl``."""
    from trl import RewardTrainer

    from korlhf.train.common import lora_config
    from korlhf.train.output import LogJsonl, with_atomic_checkpoints
    from korlhf.train.rm_kwise import RankingTrainerMixin

    args = args or training_args(cfg, has_eval=bool(eval_records))
    if cfg.loss == "pairwise":
        make = lambda records: pairwise_dataset(records, tokenizer, cfg.max_length, cfg.margin_scale)  # noqa: E731
        trainer_cls, extra = with_atomic_checkpoints(RewardTrainer), {}
    else:
        make = lambda records: ranking_dataset(records, tokenizer, cfg.max_length)  # noqa: E731
        trainer_cls = with_atomic_checkpoints(type("RankingRewardTrainer", (RankingTrainerMixin, RewardTrainer), {}))
        extra = {"ranking_loss": cfg.loss}
    return trainer_cls(model=model, args=args, train_dataset=make(train_records),
                       eval_dataset=make(eval_records) if eval_records else None, processing_class=tokenizer,
                       peft_config=lora_config(cfg, "SEQ_CLS"), callbacks=[LogJsonl(cfg.output_dir), *callbacks],
                       **extra)


def reward_scores(model, tokenizer, prompts, responses, batch_size: int = 16, max_length: int | None = None):
    """Scores of (prompt, response) pairs, rendered with the tokenizer's template: a list of floats."""
    import torch
    from tqdm.auto import tqdm

    from korlhf.templates import render_example

    texts = [render_example(tokenizer, p, r) for p, r in zip(prompts, responses, strict=True)]
    was_training, scores = model.training, []
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in tqdm(range(0, len(texts), batch_size), desc="scoring", leave=False):
            batch = tokenizer(texts[start:start + batch_size], add_special_tokens=False, padding=True,
                              truncation=max_length is not None, max_length=max_length, return_tensors="pt")
            logits = model(**batch.to(device)).logits
            scores += logits[:, 0].float().tolist()
    model.train(was_training)
    return scores


def evaluate(model, tokenizer, records, batch_size: int = 16, max_length: int | None = None) -> dict:
    """`korlhf.train.ranking.ranking_metrics` of ``model`` on preference ``records``."""
    from korlhf.train.ranking import ranking_metrics

    prompts = [r["prompt"] for r in records for _ in r["responses"]]
    responses = [a for r in records for a in r["responses"]]
    flat = reward_scores(model, tokenizer, prompts, responses, batch_size, max_length)
    scores, i = [], 0
    for r in records:
        scores.append(flat[i:i + len(r["responses"])])
        i += len(r["responses"])
    return ranking_metrics(scores, [bool(r.get("tied_after_first")) for r in records])


def finish(cfg: Config, trainer, tokenizer, train_records, eval_records, metrics: dict) -> None:
    """Model, tokenizer, held-out metrics on the reloaded model, model card, metrics.json last.

    ``eval_records``: the held-out records that fit ``max_length``."""
    from korlhf.models import load_reward_model
    from korlhf.train.output import finish_run, read_log, save_model_dir

    out = Path(cfg.output_dir)
    save_model_dir(trainer, tokenizer, out, cfg.merge, load_merged=lambda path, tok: load_reward_model(path, tok))
    if not trainer.accelerator.is_main_process:
        return
    if eval_records:
        reloaded = load_reward_model(out, tokenizer, dtype="float32")  # what PPO will load
        metrics.update({f"eval_{k}": v for k, v in evaluate(reloaded, tokenizer, eval_records, cfg.batch_size).items()})
        start = next((row for row in read_log(out) if row["step"] == 0 and "eval_pairwise_accuracy" in row), None)
        if start is not None:
            metrics["eval_pairwise_accuracy_start"] = start["eval_pairwise_accuracy"]
    settings = {"loss": cfg.loss, "margin_scale": cfg.margin_scale,
                "center_rewards_coefficient": cfg.center_rewards_coefficient}
    usage = (f"from korlhf.models import load_reward_model, load_tokenizer\n"
             f"tokenizer = load_tokenizer({str(out)!r})\nreward_model = load_reward_model({str(out)!r}, tokenizer)\n"
             f"from korlhf.train.rm import reward_scores\n"
             f"print(reward_scores(reward_model, tokenizer, ['한국의 수도는?'], ['서울입니다.']))")
    finish_run(cfg, tokenizer, stage="reward-model", title=f"{out.name}: Korean reward model",
               train_records=train_records, eval_records=eval_records, metrics=metrics, settings=settings,
               processes=trainer.accelerator.num_processes, usage=usage)
