"""`korlhf train ppo`: PPO from a reward model and/or rule rewards (InstructGPT step 3), our own code.

TRL removed its PPO trainer, so this is PPO written out on torch + transformers + accelerate:

1. load the policy (the SFT output), its frozen reference, a value model and the reward model
   (`korlhf.train.ppo.models`);
2. each step, sample one response per prompt with the SFT chat template (`korlhf.train.rl.rollout`),
   score it (`korlhf.train.rl.rewards`), and turn scores into per-token rewards with a KL penalty
   and GAE advantages (`korlhf.train.ppo.math`);
3. ``ppo_epochs`` passes of clipped-surrogate + clipped-value updates over shuffled mini-batches;
4. log every step, save resumable checkpoints (`korlhf.train.ppo.checkpoint`), and write the output folder.

Runs as is under ``accelerate launch`` (each process samples its own share of prompts).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from korlhf.train.common import ModelFields, RunFields
from korlhf.train.fields import OptimFields
from korlhf.train.rl.fields import RLFields


@dataclass(kw_only=True)
class Config(RLFields, OptimFields, RunFields, ModelFields):
    value_model: str = field(default="auto", metadata={
        "help": "reward: value model initialised from the reward model (InstructGPT); shared: a value head on the policy; "
                "auto: reward if there is a reward model with the policy's tokenizer, else shared"})
    rollout_batch_size: int = field(default=16, metadata={
        "help": "prompts sampled per step and process; a multiple of batch_size x grad_accum (the mini-batch)"})
    ppo_epochs: int = field(default=4, metadata={"help": "passes over each rollout batch"})
    value_learning_rate: float | None = field(default=None, metadata={
        "help": "value model learning rate (default: 10 x learning_rate: a fresh value head must fit returns "
                "within a few steps, or advantages stay noise)"})
    missing_eos_penalty: float | None = field(default=None, metadata={
        "help": "subtracted from the score of a response that hits max_new_tokens without EOS"})
    kl_estimator: str = field(default="k1", metadata={"help": "per-token KL estimator: k1 (log p/q) or k3 (non-negative)"})
    target_kl: float | None = field(default=None, metadata={"help": "adaptive KL controller target (None: fixed kl_coef)"})
    kl_horizon: float = field(default=10000.0, metadata={"help": "adaptive KL controller horizon (Ziegler et al. 2019)"})
    score_clip: float | None = field(default=None, metadata={"help": "clip scores to [-score_clip, score_clip]"})
    whiten_rewards: bool = field(default=False, metadata={"help": "whiten per-token rewards (keeping their mean)"})
    whiten_advantages: bool = field(default=True, metadata={"help": "whiten advantages over the batch"})
    gamma: float = field(default=1.0, metadata={"help": "discount"})
    lam: float = field(default=0.95, metadata={"help": "GAE lambda"})
    cliprange_value: float = field(default=0.2, metadata={"help": "value clip range"})
    vf_coef: float = field(default=0.1, metadata={"help": "value loss weight"})
    ent_coef: float = field(default=0.0, metadata={"help": "entropy bonus weight"})
    ptx_coef: float = field(default=0.0, metadata={"help": "PPO-ptx: weight of the SFT loss mixed into each update"})
    ptx_files: list[str] = field(default_factory=list, metadata={"help": "sft records for PPO-ptx"})
    sample_steps: int = field(default=10, metadata={"help": "print and save a table of sample responses every N steps"})
    num_samples: int = field(default=4, metadata={"help": "rows in the sample table"})

    def __post_init__(self):
        super().__post_init__()
        if self.value_model not in ("auto", "reward", "shared"):
            raise ValueError(f"value_model must be auto, reward or shared; got {self.value_model!r}")
        if self.value_model == "reward" and not self.reward_model:
            raise ValueError("value_model: reward needs reward_model (a `korlhf train rm` output); "
                             "with rule rewards only, set value_model: shared")
        if self.kl_estimator not in ("k1", "k3"):
            raise ValueError(f"kl_estimator must be k1 or k3; got {self.kl_estimator!r}")
        if self.rollout_batch_size % self.mini_batch:
            raise ValueError(f"rollout_batch_size ({self.rollout_batch_size}) must be a multiple of "
                             f"batch_size x grad_accum ({self.batch_size} x {self.grad_accum} = {self.mini_batch})")
        if self.ptx_coef > 0 and not self.ptx_files:
            raise ValueError("ptx_coef > 0 needs ptx_files (sft records)")

    @property
    def mini_batch(self) -> int:
        """Sequences per optimizer step (per process): ``batch_size`` micro-batches x ``grad_accum``."""
        return self.batch_size * self.grad_accum


def main(cfg: Config) -> dict:
    import torch
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    from korlhf.train.output import begin, open_output_dir, resuming
    from korlhf.train.ppo.checkpoint import RunLog, load_checkpoint, save_checkpoint
    from korlhf.train.ppo.output import print_samples, write_outputs
    from korlhf.train.rl.evaluate import evaluate
    from korlhf.train.rl.prompts import prompt_indices

    start = begin(cfg, "prompt")
    if start.done is not None:
        return start.done
    # cpu=True without a GPU, as TRL stages get from device_kwargs(): otherwise `accelerate launch`
    # on CPUs leaves every process believing it is alone (DistributedType.NO).
    accelerator = Accelerator(gradient_accumulation_steps=cfg.grad_accum, cpu=not torch.cuda.is_available(),
                              log_with=cfg.report_to or None, project_dir=cfg.output_dir)
    checkpoint = open_output_dir(cfg)  # also seeds, before the models load
    train_records, eval_records = start.train_records, start.eval_records
    run, prompts, eval_prompts = setup(cfg, accelerator, train_records, eval_records)
    total = total_steps(cfg, len(prompts), accelerator.num_processes)
    run.optimizer, run.scheduler = make_optimizer(cfg, run.models.actor_critic, total)
    run.actor_critic, run.optimizer = accelerator.prepare(run.models.actor_critic, run.optimizer)
    run.unwrapped = accelerator.unwrap_model(run.actor_critic)
    accelerator.register_for_checkpointing(run.kl_ctl, run.scheduler)
    start = load_checkpoint(accelerator, checkpoint) if checkpoint else 0
    log = RunLog(cfg.output_dir, accelerator, start if checkpoint else None)
    accelerator.init_trackers("korlhf-ppo", config=tracker_config(cfg))
    accelerator.print(f"ppo {cfg.model_name_or_path}: {len(prompts):,} train / {len(eval_prompts):,} eval prompts, "
                      f"{total} steps, {accelerator.num_processes} process(es){resuming(checkpoint)}")

    def held_out_reward() -> float:
        return evaluate(run.unwrapped.policy, run.models.tokenizer, eval_prompts, run.scorer, run.gen_config,
                        cfg.rollout_batch_size, cfg.seed)

    if eval_prompts and not checkpoint:
        log.log({"step": 0, "eval/reward": held_out_reward()})
    # tqdm reads TQDM_DISABLE only for arguments left unset, so `disable` is passed off the main process only.
    progress = tqdm(range(start + 1, total + 1), initial=start, total=total, desc="ppo",
                    **({} if accelerator.is_main_process else {"disable": True}))
    for step in progress:
        batch = [prompts[i] for i in prompt_indices(step, len(prompts), cfg.rollout_batch_size,
                                                    accelerator.num_processes, accelerator.process_index, cfg.seed)]
        metrics, rollout, scores = ppo_step(cfg, run, batch, step)
        if eval_prompts and (step == total or (cfg.eval_steps and step % cfg.eval_steps == 0)):
            metrics["eval/reward"] = held_out_reward()
        log.log(metrics)
        progress.set_postfix(reward=f"{metrics['reward/mean']:.3f}", kl=f"{metrics['kl/mean']:.3f}")
        if cfg.logging_steps and step % cfg.logging_steps == 0:
            progress.write(format_metrics(metrics))
        if cfg.sample_steps and (step % cfg.sample_steps == 0 or step == 1):
            print_samples(log, step, rollout, scores, cfg.num_samples, accelerator.is_main_process)
        if cfg.save_steps and step % cfg.save_steps == 0 and step < total:
            save_checkpoint(accelerator, cfg.output_dir, step, cfg.save_total_limit)

    metrics = write_outputs(cfg, accelerator, run.unwrapped, run.models.tokenizer, log.history(), total,
                            train_records, eval_records)
    accelerator.end_training()  # last: it closes the trackers and the process group
    return metrics


def setup(cfg: Config, accelerator, train_records: list[dict], eval_records: list[dict]):
    """Models, prompts, PPO-ptx data, reward scorer, KL controller and sampling settings.
    -> (`Run` without its optimizer yet, train prompts, eval prompts)."""
    from korlhf.train.ppo.math import KLController
    from korlhf.train.ppo.models import load_ppo_models
    from korlhf.train.ppo.ptx import PtxData
    from korlhf.train.rl.prompts import load_prompts
    from korlhf.train.rl.rewards import RewardScorer
    from korlhf.train.rl.rollout import generation_config

    models = load_ppo_models(cfg)
    tokenizer = models.tokenizer
    prompts = load_prompts(train_records, tokenizer, cfg.max_prompt_length, cfg.output_dir, "train")
    eval_prompts = load_prompts(eval_records, tokenizer, cfg.max_prompt_length, cfg.output_dir, "eval")
    ptx = (PtxData(cfg.ptx_files, tokenizer, cfg.max_prompt_length + cfg.max_new_tokens, cfg.seed,
                   accelerator.process_index) if cfg.ptx_coef > 0 else None)
    scorer = RewardScorer(models.reward_model, models.reward_tokenizer, cfg.reward_rules,
                          batch_size=cfg.batch_size, weights=cfg.reward_weights, context=models.reward_context)
    for frozen in (models.reference, models.reward_model):
        if frozen is not None:
            frozen.to(accelerator.device)
    run = Run(accelerator, models, None, None, None, None, scorer,
              KLController(cfg.kl_coef, cfg.target_kl, cfg.kl_horizon),
              generation_config(tokenizer, cfg.max_new_tokens, cfg.temperature), ptx)
    return run, prompts, eval_prompts


def total_steps(cfg: Config, n_prompts: int, processes: int) -> int:
    """``max_steps``, or with -1 the steps that take ``epochs`` passes over the prompts."""
    import math

    if cfg.max_steps > 0:
        return cfg.max_steps
    return max(1, math.ceil(cfg.epochs * n_prompts / (cfg.rollout_batch_size * processes)))


@dataclass
class Run:
    """What every PPO step uses, set up once by `main`."""

    accelerator: Any
    models: Any  # PPOModels
    actor_critic: Any  # prepared by accelerate (DDP / DeepSpeed wrapped)
    unwrapped: Any  # the ActorCritic itself: sampling and no-grad scoring
    optimizer: Any
    scheduler: Any
    scorer: Any
    kl_ctl: Any
    gen_config: Any
    ptx: Any


def ppo_step(cfg: Config, run: Run, prompts: list, step: int) -> tuple[dict, object, object]:
    """Sample, score, update: one PPO iteration. -> (metrics, rollout, raw scores)."""
    import torch

    from korlhf.train.ppo.scoring import score_tokens
    from korlhf.train.rl.rollout import sample

    accelerator, unwrapped = run.accelerator, run.unwrapped
    t0 = time.perf_counter()
    unwrapped.eval()
    rollout = sample(unwrapped.policy, run.models.tokenizer, prompts, run.gen_config, accelerator.device)
    t1 = time.perf_counter()
    raw_scores = run.scorer(rollout.prompts, rollout.responses).to(accelerator.device)
    scores = adjust_scores(cfg, raw_scores, rollout.ended)
    tokens = score_tokens(unwrapped, lambda: run.models.reference_context(unwrapped), rollout, cfg.temperature,
                          cfg.batch_size)
    experience, rollout_stats = make_experience(cfg, rollout, scores, tokens, run.kl_ctl.value)
    t2 = time.perf_counter()
    update_stats = ppo_update(cfg, accelerator, run.actor_critic, run.optimizer, run.scheduler, rollout, experience,
                              run.ptx, step)
    t3 = time.perf_counter()

    all_scores = accelerator.gather(raw_scores)
    stats = {**rollout_stats, **update_stats}
    means = accelerator.reduce(torch.tensor(list(stats.values()), device=accelerator.device), "mean").tolist()
    metrics = {"step": step, "reward/mean": all_scores.mean().item(), "reward/std": all_scores.std().item(),
               **dict(zip(stats, means, strict=True)), "kl/coef": run.kl_ctl.value,
               "lr": run.scheduler.get_last_lr()[0], "time/generation_s": t1 - t0, "time/scoring_s": t2 - t1,
               "time/update_s": t3 - t2, "samples_per_s": len(all_scores) / (t3 - t0)}
    run.kl_ctl.update(metrics["kl/mean"], len(all_scores))
    return metrics, rollout, raw_scores


def adjust_scores(cfg: Config, scores, ended):
    """The missing-EOS penalty, then clipping: what PPO optimises (raw scores are what gets logged)."""
    if cfg.missing_eos_penalty is not None:
        scores = scores - cfg.missing_eos_penalty * (~ended).float()
    if cfg.score_clip is not None:
        scores = scores.clamp(-cfg.score_clip, cfg.score_clip)
    return scores


def make_optimizer(cfg: Config, actor_critic, total: int):
    """AdamW with the policy and value parameters in two groups (their own learning rates), and a schedule."""
    import torch
    from transformers import get_scheduler

    value_params = [p for n, p in actor_critic.named_parameters() if p.requires_grad and not n.startswith("policy.")]
    policy_params = [p for n, p in actor_critic.named_parameters() if p.requires_grad and n.startswith("policy.")]
    groups = [{"params": policy_params, "lr": cfg.learning_rate},
              {"params": value_params, "lr": value_lr(cfg)}]
    optimizer = torch.optim.AdamW(groups, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    updates = total * cfg.ppo_epochs * (cfg.rollout_batch_size // cfg.mini_batch)
    scheduler = get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=round(cfg.warmup_ratio * updates),
                              num_training_steps=updates)
    return optimizer, scheduler


def value_lr(cfg: Config) -> float:
    """The value model's learning rate: as set, else 10x the policy's.

    At the policy's rate a zero-initialised value head stayed at explained variance 0.00 for 40
    demo steps, so GAE's advantages were the raw returns; critics commonly learn ~10-20x faster
    than the actor (OpenRLHF's examples: 9e-6 vs 5e-7).
    """
    return cfg.value_learning_rate if cfg.value_learning_rate is not None else 10 * cfg.learning_rate


def make_experience(cfg: Config, rollout, scores, tokens: dict, kl_coef: float) -> tuple[dict, dict]:
    """Per-token rewards (score - beta * KL), GAE advantages and returns; plus the rollout's metrics."""
    from korlhf.train.ppo.math import (
        explained_variance,
        gae,
        kl_estimate,
        masked_mean,
        masked_whiten,
        per_token_rewards,
    )

    mask = rollout.response_mask
    kl = kl_estimate(tokens["logprobs"], tokens["ref_logprobs"], cfg.kl_estimator) * mask
    rewards = per_token_rewards(scores, kl, mask, kl_coef)
    if cfg.whiten_rewards:
        rewards = masked_whiten(rewards, mask, shift_mean=False)
    advantages, returns = gae(tokens["values"], rewards, mask, cfg.gamma, cfg.lam)
    if cfg.whiten_advantages:
        advantages = masked_whiten(advantages, mask)
    kl_sum = kl.sum(1)
    stats = {"kl/mean": kl_sum.mean().item(), "reward/total": (scores - kl_coef * kl_sum).mean().item(),
             "policy/entropy": masked_mean(tokens["entropy"], mask).item(),
             "value/mean": masked_mean(tokens["values"], mask).item(),
             "value/explained_variance": explained_variance(tokens["values"], returns, mask),
             "response/length": mask.sum(1).mean().item(), "response/eos_fraction": rollout.ended.float().mean().item()}
    experience = {"logprobs": tokens["logprobs"], "values": tokens["values"], "advantages": advantages,
                  "returns": returns}
    return experience, stats


def ppo_update(cfg: Config, accelerator, actor_critic, optimizer, scheduler, rollout, exp: dict, ptx, step: int) -> dict:
    """``ppo_epochs`` passes over shuffled mini-batches, ``grad_accum`` micro-batches of ``batch_size`` each."""
    import torch

    from korlhf.train.ppo.math import masked_mean, policy_loss, value_loss
    from korlhf.train.ppo.scoring import keep_logits, response_slice, token_logprobs

    actor_critic.train()
    stats = defaultdict(list)
    size = rollout.response_ids.shape[0]
    micro = cfg.batch_size
    micro_step = 0
    keep = keep_logits(accelerator.unwrap_model(actor_critic).policy, rollout)
    for _ in range(cfg.ppo_epochs):
        order = torch.randperm(size, device=rollout.response_ids.device)
        for start in range(0, size, micro):
            rows = order[start:start + micro]
            with accelerator.accumulate(actor_critic):
                ptx_batch = ptx.batch(step, micro_step, micro, accelerator.device) if ptx else None
                micro_step += 1
                logits, values, ptx_loss = actor_critic(**rollout.model_inputs(rows, keep), ptx=ptx_batch)
                logprobs, entropy = token_logprobs(logits, rollout, rows, cfg.temperature, entropy_grad=cfg.ent_coef != 0)
                mask = rollout.response_mask[rows]
                pg_loss, pg_clip, approx_kl = policy_loss(logprobs, exp["logprobs"][rows], exp["advantages"][rows],
                                                          mask, cfg.cliprange)
                vf_loss, vf_clip = value_loss(response_slice(values, rollout).float(), exp["values"][rows],
                                              exp["returns"][rows], mask, cfg.cliprange_value)
                entropy = masked_mean(entropy, mask)
                loss = pg_loss + cfg.vf_coef * vf_loss - cfg.ent_coef * entropy
                if ptx_loss is not None:
                    loss = loss + cfg.ptx_coef * ptx_loss
                    stats["loss/ptx"].append(ptx_loss.item())
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    if cfg.max_grad_norm > 0:
                        stats["grad_norm"].append(float(accelerator.clip_grad_norm_(actor_critic.parameters(),
                                                                                    cfg.max_grad_norm)))
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
            for name, value in (("loss/policy", pg_loss), ("loss/value", vf_loss), ("policy/clipfrac", pg_clip),
                                ("policy/approx_kl", approx_kl), ("value/clipfrac", vf_clip)):
                stats[name].append(value.item())
    return {name: sum(values) / len(values) for name, values in stats.items()}


def tracker_config(cfg: Config) -> dict:
    """Trackers (TensorBoard hparams) take flat scalars only."""
    from korlhf.config import config_to_dict

    return {k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v)) for k, v in config_to_dict(cfg).items()}


def format_metrics(m: dict) -> str:
    return (f"step {m['step']}: reward {m['reward/mean']:.3f}±{m['reward/std']:.3f} kl {m['kl/mean']:.3f} "
            f"(β {m['kl/coef']:.3f}) entropy {m['policy/entropy']:.2f} clip {m['policy/clipfrac']:.2f} "
            f"approx_kl {m['policy/approx_kl']:.4f} vf_loss {m['loss/value']:.3f} "
            f"ev {m['value/explained_variance']:.2f} len {m['response/length']:.1f} | "
            f"gen {m['time/generation_s']:.1f}s score {m['time/scoring_s']:.1f}s update {m['time/update_s']:.1f}s")
