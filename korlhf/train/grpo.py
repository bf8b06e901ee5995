"""`korlhf train grpo`: GRPO (Shao et al. 2024, DeepSeekMath) on TRL's GRPOTrainer, with our rewards.

An alternative to PPO without a value model: each prompt gets ``num_generations`` answers and each
answer's advantage is its reward against the group's mean. Same records as PPO (prompt records),
same chat template (TRL renders conversational prompts with the tokenizer's template, the one SFT
saved), same rewards (`korlhf.train.rl.rewards`: the `korlhf train rm` output with its trained
head, and/or rule functions, each logged by TRL as ``rewards/<name>/mean``) and the same output
folder (`korlhf.train.output`). The held-out reward before and after training is measured
exactly as PPO measures it, so ``metrics.json`` of ppo, grpo and rloo runs compare directly.

`korlhf train rloo` (`korlhf.train.rloo`) is the same stage on TRL's RLOOTrainer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from transformers import TrainerCallback

from korlhf.train.common import ModelFields, RunFields
from korlhf.train.fields import OptimFields
from korlhf.train.rl.fields import RLFields


@dataclass(kw_only=True)
class GroupFields:
    """What grpo and rloo add to the shared RL fields: a group of answers per prompt, TRL's update loop."""

    num_generations: int = field(default=8, metadata={"help": "answers sampled per prompt (the group)"})
    num_iterations: int = field(default=1, metadata={"help": "updates per generated batch (mu)"})
    mask_truncated_completions: bool = field(default=False, metadata={
        "help": "leave answers that never reached EOS out of the loss"})
    batch_size: int = field(default=8, metadata={
        "help": "answers per device per step; batch_size x processes x grad_accum must be a multiple of num_generations"})


@dataclass(kw_only=True)
class Config(GroupFields, RLFields, OptimFields, RunFields, ModelFields):
    loss_type: str = field(default="dapo", metadata={"help": "TRL GRPO loss: grpo, dapo, dr_grpo, bnpo..."})
    scale_rewards: str = field(default="group", metadata={
        "help": "divide advantages by the reward std of the group, the batch, or none"})


def main(cfg: Config) -> dict:
    from trl import GRPOConfig, GRPOTrainer

    return train(cfg, "grpo", GRPOConfig, GRPOTrainer, {"loss_type": cfg.loss_type, "scale_rewards": cfg.scale_rewards})


def train(cfg, stage: str, config_cls, trainer_cls, stage_args: dict) -> dict:
    """Load, train with ``trainer_cls`` (GRPOTrainer or RLOOTrainer), measure, write the output folder."""
    from accelerate import PartialState
    from datasets import Dataset

    from korlhf.models import load_causal_lm, load_reward_model, load_tokenizer
    from korlhf.train.common import lora_config, training_dtype
    from korlhf.train.fields import trainer_kwargs
    from korlhf.train.output import LogJsonl, begin, open_output_dir, resuming, with_atomic_checkpoints
    from korlhf.train.rl.prompts import load_prompts
    from korlhf.train.rl.rewards import RewardScorer, trl_rewards
    from korlhf.train.samplers import with_epoch_seeded_sampler

    start = begin(cfg, "prompt")
    if start.done is not None:
        return start.done
    out, quant, train_records, eval_records = Path(cfg.output_dir), start.quant, start.train_records, start.eval_records
    args = config_cls(**trainer_kwargs(cfg, has_eval=False), num_generations=cfg.num_generations,
                      max_completion_length=cfg.max_new_tokens, temperature=cfg.temperature, beta=cfg.kl_coef,
                      epsilon=cfg.cliprange, num_iterations=cfg.num_iterations,
                      reward_weights=cfg.reward_weights or None,
                      mask_truncated_completions=cfg.mask_truncated_completions,
                      trust_remote_code=cfg.trust_remote_code, **stage_args)  # sets up the processes
    checkpoint = open_output_dir(cfg)
    main_process = PartialState().is_main_process
    tokenizer = load_tokenizer(cfg.model_name_or_path, cfg.template, cfg.trust_remote_code)
    model = load_causal_lm(cfg.model_name_or_path, tokenizer, dtype=training_dtype(cfg.dtype),
                           trust_remote_code=cfg.trust_remote_code, **quant)
    prompts = load_prompts(train_records, tokenizer, cfg.max_prompt_length, cfg.output_dir, "train")
    eval_prompts = load_prompts(eval_records, tokenizer, cfg.max_prompt_length, cfg.output_dir, "eval")
    reward_model = reward_tokenizer = None
    if cfg.reward_model:
        reward_tokenizer = load_tokenizer(cfg.reward_model, None, cfg.trust_remote_code)
        reward_model = load_reward_model(cfg.reward_model, reward_tokenizer, dtype=cfg.dtype).eval().requires_grad_(False)

    scorer = RewardScorer(reward_model, reward_tokenizer, cfg.reward_rules, weights=cfg.reward_weights)
    held_out = HeldOutReward(cfg, tokenizer, eval_prompts, scorer)
    trainer = with_epoch_seeded_sampler(with_atomic_checkpoints(trainer_cls))(
        model=model, reward_funcs=trl_rewards(reward_model, reward_tokenizer, cfg.reward_rules),
        args=args, train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]), processing_class=tokenizer,
        peft_config=lora_config(cfg, "CAUSAL_LM"), callbacks=[LogJsonl(out), held_out])
    use_sft_reference(trainer, cfg, tokenizer)
    score_with_mask_positions(trainer)
    if reward_model is not None:
        reward_model.to(trainer.accelerator.device)
    if main_process:
        Console().print(f"[bold]{stage}[/bold] {cfg.model_name_or_path}: {len(prompts):,} train / "
                        f"{len(eval_prompts):,} eval prompts, {cfg.num_generations} answers each{resuming(checkpoint)}")
    if checkpoint is None:
        held_out.measure(trainer.model, step=0)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    if not cfg.eval_steps or trainer.state.global_step % cfg.eval_steps:  # else measured at the last step
        held_out.measure(trainer.model, step=trainer.state.global_step)
    return finish(cfg, stage, trainer, tokenizer, train_records, eval_records)


def use_sft_reference(trainer, cfg, tokenizer) -> None:
    """Make TRL's reference model the SFT model itself.

    Without LoRA, TRL rebuilds the reference from the policy's config path: for an SFT *adapter*
    that is its base model (not the SFT model), and it lacks a pad token korlhf added. In those
    cases we load the reference as the policy was loaded and hand it to TRL.
    """
    from transformers import AutoConfig

    from korlhf.models import is_adapter_dir, load_causal_lm
    from korlhf.train.common import training_dtype

    ref = getattr(trainer, "ref_model", None)
    path = cfg.model_name_or_path
    if ref is None or (not is_adapter_dir(path) and AutoConfig.from_pretrained(path).vocab_size >= len(tokenizer)):
        return
    from trl.models import prepare_deepspeed

    reference = load_causal_lm(path, tokenizer, dtype=training_dtype(cfg.dtype), trust_remote_code=cfg.trust_remote_code)
    reference.eval().requires_grad_(False)
    trainer.ref_model = (prepare_deepspeed(reference, trainer.accelerator) if trainer.is_deepspeed_enabled
                         else trainer.accelerator.prepare_model(reference, evaluation_mode=True))


def score_with_mask_positions(trainer) -> None:
    """Give TRL's policy and reference model the position ids ``generate`` sampled with.

    TRL scores left-padded prompt + completion without ``position_ids``, so absolute-position
    models (GPT-2) number positions from the first pad column and train on log-probs other than
    the sampled ones; see `korlhf.train.positions`.
    """
    from korlhf.train.positions import use_mask_positions

    for model in (trainer.model, getattr(trainer, "ref_model", None)):
        if model is not None:
            use_mask_positions(model)


class HeldOutReward(TrainerCallback):
    """PPO's held-out measure (one seeded sample per prompt), logged as ``eval/reward``: before
    training, every ``eval_steps`` and after, as in `korlhf train ppo`."""

    def __init__(self, cfg, tokenizer, prompts: list, scorer):
        from korlhf.train.rl.rollout import generation_config

        self.cfg, self.tokenizer, self.prompts, self.scorer = cfg, tokenizer, prompts, scorer
        self.gen_config = generation_config(tokenizer, cfg.max_new_tokens, cfg.temperature)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.cfg.eval_steps and state.global_step % self.cfg.eval_steps == 0:
            self.measure(model, state.global_step)

    def measure(self, model, step: int) -> float | None:
        from accelerate import PartialState

        from korlhf.train.output import append_log
        from korlhf.train.rl.evaluate import evaluate

        if not self.prompts:
            return None
        reward = evaluate(model, self.tokenizer, self.prompts, self.scorer, self.gen_config,
                          self.cfg.batch_size * 4, self.cfg.seed)
        if PartialState().is_main_process:
            append_log(self.cfg.output_dir, {"step": step, "eval/reward": reward})
        return reward


def finish(cfg, stage: str, trainer, tokenizer, train_records, eval_records) -> dict:
    """Model + tokenizer (merged copy), model card, metrics.json last."""
    from korlhf.train.output import finish_run, read_log, save_model_dir

    out = Path(cfg.output_dir)
    save_model_dir(trainer, tokenizer, out, cfg.merge)
    log = read_log(out) if trainer.accelerator.is_main_process else []
    rows, evals = [r for r in log if "reward" in r], [r for r in log if "eval/reward" in r]
    mean = lambda part, key: sum(r[key] for r in part) / len(part) if part else None  # noqa: E731
    metrics = {"steps": trainer.state.global_step, "reward_start": mean(rows[:5], "reward"),
               "reward_end": mean(rows[-5:], "reward"), "kl_end": mean([r for r in rows[-5:] if "kl" in r], "kl")}
    if evals:
        metrics |= {"eval_reward_start": evals[0]["eval/reward"], "eval_reward_end": evals[-1]["eval/reward"]}
    if trainer.accelerator.is_main_process:
        reward = " + ".join([*([f"reward model `{cfg.reward_model}`"] if cfg.reward_model else []),
                             *[f"rule `{r}`" for r in cfg.reward_rules]])
        settings = {"reward": reward, "num_generations": cfg.num_generations, "kl_coef": cfg.kl_coef,
                    "max_new_tokens": cfg.max_new_tokens}
        finish_run(cfg, tokenizer, stage=stage, title=f"{out.name}: Korean {stage.upper()} policy",
                   train_records=train_records, eval_records=eval_records, metrics=metrics, settings=settings,
                   processes=trainer.accelerator.num_processes)
    return metrics
