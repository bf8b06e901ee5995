"""`korlhf train ppo`: PPO from a reward model and/or rule rewards (InstructGPT step 3), our own code.

TRL removed its PPO trainer, so this is PPO written out on torch + transformers + accelerate:

1. load the policy (the SFT output), its frozen reference, a value model and the reward model
   (`korlhf.train.ppo_models`);
2. each step, sample one response per prompt with the SFT chat template (`ppo_rollout`), score it
   (`ppo_rewards`), and turn scores into per-token rewards with a KL penalty and GAE advantages
   (`ppo_math`);
3. ``ppo_epochs`` passes of clipped-surrogate + clipped-value updates over shuffled mini-batches;
4. log every step, save resumable checkpoints (`ppo_checkpoint`), and write the output folder.

Runs as is under ``accelerate launch`` (each process samples its own share of prompts).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from korlhf.train.common import ModelFields, RunFields


@dataclass(kw_only=True)
class Config(RunFields, ModelFields):
    train_files: list[str] = field(metadata={"help": "prompt records (JSON Lines with 'prompt'); sft/preference files work too"})
    eval_files: list[str] = field(default_factory=list, metadata={
        "help": "held-out prompts, whose mean reward is measured before, every eval_steps and after training; "
                "default: a seeded eval_fraction of train_files"})
    eval_fraction: float = field(default=0.05, metadata={"help": "share of train prompts held out when eval_files is empty (0: none)"})
    reward_model: str | None = field(default=None, metadata={"help": "`korlhf train rm` output (loaded with its trained head)"})
    reward_rules: list[str] = field(default_factory=list, metadata={
        "help": "rule rewards added to the reward model's score: hangul, no_refusal, complete, contains:WORD, module:function"})
    value_model: str = field(default="auto", metadata={
        "help": "reward: value model initialised from the reward model (InstructGPT); shared: a value head on the policy; "
                "auto: reward if there is a reward model with the policy's tokenizer, else shared"})
    steps: int = field(default=100, metadata={"help": "PPO iterations (rollout + update)"})
    rollout_batch_size: int = field(default=16, metadata={"help": "prompts sampled per iteration (per process)"})
    mini_batch_size: int = field(default=8, metadata={"help": "sequences per optimizer step"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per mini-batch"})
    ppo_epochs: int = field(default=4, metadata={"help": "passes over each rollout batch"})
    learning_rate: float = field(default=1e-5, metadata={"help": "policy learning rate (AdamW)"})
    value_learning_rate: float | None = field(default=None, metadata={
        "help": "value model learning rate (default: 10 x learning_rate: a fresh value head must fit returns "
                "within a few steps, or advantages stay noise)"})
    lr_scheduler_type: str = field(default="constant", metadata={"help": "constant, linear, cosine (transformers schedulers)"})
    warmup_steps: int = field(default=0, metadata={"help": "optimizer steps of linear warm-up"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm (0: off)"})
    max_prompt_length: int = field(default=256, metadata={"help": "longer prompts (in tokens, templated) are skipped and listed"})
    max_new_tokens: int = field(default=64, metadata={"help": "response length limit"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature (log-probs use the same)"})
    missing_eos_penalty: float | None = field(default=None, metadata={
        "help": "subtracted from the score of a response that hits max_new_tokens without EOS"})
    kl_coef: float = field(default=0.05, metadata={"help": "initial KL penalty coefficient (beta)"})
    kl_estimator: str = field(default="k1", metadata={"help": "per-token KL estimator: k1 (log p/q) or k3 (non-negative)"})
    target_kl: float | None = field(default=None, metadata={"help": "adaptive KL controller target (None: fixed kl_coef)"})
    kl_horizon: float = field(default=10000.0, metadata={"help": "adaptive KL controller horizon (Ziegler et al. 2019)"})
    score_clip: float | None = field(default=None, metadata={"help": "clip scores to [-score_clip, score_clip]"})
    whiten_rewards: bool = field(default=False, metadata={"help": "whiten per-token rewards (keeping their mean)"})
    whiten_advantages: bool = field(default=True, metadata={"help": "whiten advantages over the batch"})
    gamma: float = field(default=1.0, metadata={"help": "discount"})
    lam: float = field(default=0.95, metadata={"help": "GAE lambda"})
    cliprange: float = field(default=0.2, metadata={"help": "policy ratio clip epsilon"})
    cliprange_value: float = field(default=0.2, metadata={"help": "value clip range"})
    vf_coef: float = field(default=0.1, metadata={"help": "value loss weight"})
    ent_coef: float = field(default=0.0, metadata={"help": "entropy bonus weight"})
    ptx_coef: float = field(default=0.0, metadata={"help": "PPO-ptx: weight of the SFT loss mixed into each update"})
    ptx_files: list[str] = field(default_factory=list, metadata={"help": "sft records for PPO-ptx"})
    logging_steps: int = field(default=1, metadata={"help": "print a metrics line every N steps (log.jsonl gets every step)"})
    sample_steps: int = field(default=10, metadata={"help": "print and save a table of sample responses every N steps"})
    num_samples: int = field(default=4, metadata={"help": "rows in the sample table"})
    eval_steps: int = field(default=0, metadata={"help": "measure held-out reward every N steps (0: only before and after)"})
    save_steps: int = field(default=0, metadata={"help": "save a resumable checkpoint every N steps (0: none)"})
    save_total_limit: int = field(default=2, metadata={"help": "checkpoints kept (0: all)"})
    resume: bool = field(default=False, metadata={
        "help": "continue from the latest complete checkpoint in output_dir (starts fresh if there is none)"})
    overwrite: bool = field(default=False, metadata={"help": "discard an earlier run in output_dir and start over"})
    keep_checkpoints: bool = field(default=False, metadata={
        "help": "keep checkpoint-N folders once the run has finished (they are only needed to resume)"})
    merge: bool = field(default=False, metadata={"help": "with LoRA, also save the merged model in output_dir/merged"})

    def __post_init__(self):
        if self.value_model not in ("auto", "reward", "shared"):
            raise ValueError(f"value_model must be auto, reward or shared; got {self.value_model!r}")
        if self.kl_estimator not in ("k1", "k3"):
            raise ValueError(f"kl_estimator must be k1 or k3; got {self.kl_estimator!r}")
        if self.mini_batch_size % self.gradient_accumulation_steps:
            raise ValueError(f"mini_batch_size ({self.mini_batch_size}) must be a multiple of "
                             f"gradient_accumulation_steps ({self.gradient_accumulation_steps})")
        if self.rollout_batch_size % self.mini_batch_size:
            raise ValueError(f"rollout_batch_size ({self.rollout_batch_size}) must be a multiple of "
                             f"mini_batch_size ({self.mini_batch_size})")
        if self.ptx_coef > 0 and not self.ptx_files:
            raise ValueError("ptx_coef > 0 needs ptx_files (sft records)")


def main(cfg: Config) -> dict:
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    from korlhf.config import save_config
    from korlhf.train.data import load_split, source_counts
    from korlhf.train.output import CONFIG, prepare_output_dir, read_metrics, run_finished
    from korlhf.train.ppo_checkpoint import RunLog, load_checkpoint, save_checkpoint
    from korlhf.train.ppo_data import PtxData, load_prompts, prompt_indices
    from korlhf.train.ppo_math import KLController
    from korlhf.train.ppo_models import load_ppo_models
    from korlhf.train.ppo_output import evaluate, print_samples, write_outputs
    from korlhf.train.ppo_rewards import RewardScorer
    from korlhf.train.ppo_rollout import generation_config

    out = Path(cfg.output_dir)
    if cfg.resume and run_finished(out):
        print(f"{out} already finished (metrics.json is there); --overwrite trains again")
        return read_metrics(out)
    # cpu=True without a GPU, as TRL stages get from device_kwargs(): otherwise `accelerate launch`
    # on CPUs leaves every process believing it is alone (DistributedType.NO).
    accelerator = Accelerator(gradient_accumulation_steps=cfg.gradient_accumulation_steps, cpu=not torch.cuda.is_available(),
                              log_with=cfg.report_to or None, project_dir=cfg.output_dir)
    checkpoint = prepare_output_dir(out, resume=cfg.resume, overwrite=cfg.overwrite)
    if accelerator.is_main_process:
        save_config(cfg, out / CONFIG)
    set_seed(cfg.seed)
    train_records, eval_records = load_split(cfg.train_files, cfg.eval_files, cfg.eval_fraction, "prompt", cfg.seed)
    models = load_ppo_models(cfg)
    tokenizer = models.tokenizer
    prompts = load_prompts(train_records, tokenizer, cfg.max_prompt_length, cfg.output_dir, "train")
    eval_prompts = load_prompts(eval_records, tokenizer, cfg.max_prompt_length, cfg.output_dir, "eval")
    ptx = (PtxData(cfg.ptx_files, tokenizer, cfg.max_prompt_length + cfg.max_new_tokens, cfg.seed,
                   accelerator.process_index) if cfg.ptx_coef > 0 else None)
    scorer = RewardScorer(models.reward_model, models.reward_tokenizer, cfg.reward_rules,
                          batch_size=cfg.mini_batch_size, context=models.reward_context)

    optimizer, scheduler = make_optimizer(cfg, models.actor_critic)
    actor_critic, optimizer = accelerator.prepare(models.actor_critic, optimizer)
    for frozen in (models.reference, models.reward_model):
        if frozen is not None:
            frozen.to(accelerator.device)
    kl_ctl = KLController(cfg.kl_coef, cfg.target_kl, cfg.kl_horizon)
    accelerator.register_for_checkpointing(kl_ctl, scheduler)
    start = load_checkpoint(accelerator, checkpoint) if checkpoint else 0
    log = RunLog(out, accelerator, start if checkpoint else None)
    accelerator.init_trackers("korlhf-ppo", config=tracker_config(cfg))
    unwrapped = accelerator.unwrap_model(actor_critic)
    gen_config = generation_config(tokenizer, cfg.max_new_tokens, cfg.temperature)
    accelerator.print(f"ppo {cfg.model_name_or_path}: {len(prompts):,} train / {len(eval_prompts):,} eval prompts, "
                      f"{accelerator.num_processes} process(es)" + (f", resuming from {checkpoint.name}" if checkpoint else ""))

    def held_out_reward() -> float:
        return evaluate(unwrapped.policy, tokenizer, eval_prompts, scorer, gen_config, cfg.rollout_batch_size, cfg.seed)

    if eval_prompts and not checkpoint:
        log.log({"step": 0, "eval/reward": held_out_reward()})
    # tqdm reads TQDM_DISABLE only for arguments left unset, so `disable` is passed off the main process only.
    progress = tqdm(range(start + 1, cfg.steps + 1), initial=start, total=cfg.steps, desc="ppo",
                    **({} if accelerator.is_main_process else {"disable": True}))
    run = Run(accelerator, models, actor_critic, unwrapped, optimizer, scheduler, scorer, kl_ctl, gen_config, ptx)
    for step in progress:
        batch = [prompts[i] for i in prompt_indices(step, len(prompts), cfg.rollout_batch_size,
                                                    accelerator.num_processes, accelerator.process_index, cfg.seed)]
        metrics, rollout, scores = ppo_step(cfg, run, batch, step)
        if eval_prompts and (step == cfg.steps or (cfg.eval_steps and step % cfg.eval_steps == 0)):
            metrics["eval/reward"] = held_out_reward()
        log.log(metrics)
        progress.set_postfix(reward=f"{metrics['reward/mean']:.3f}", kl=f"{metrics['kl/mean']:.3f}")
        if cfg.logging_steps and step % cfg.logging_steps == 0:
            progress.write(format_metrics(metrics))
        if cfg.sample_steps and (step % cfg.sample_steps == 0 or step == 1):
            print_samples(log, step, rollout, scores, cfg.num_samples, accelerator.is_main_process)
        if cfg.save_steps and step % cfg.save_steps == 0 and step < cfg.steps:
            save_checkpoint(accelerator, out, step, cfg.save_total_limit)

    sources = {"train": source_counts(train_records), "eval": source_counts(eval_records)}
    metrics = write_outputs(cfg, accelerator, unwrapped, tokenizer, log.history(), sources)
    accelerator.end_training()  # last: it closes the trackers and the process group
    return metrics


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

    from korlhf.train.ppo_rollout import sample, score_tokens

    accelerator, unwrapped = run.accelerator, run.unwrapped
    t0 = time.perf_counter()
    unwrapped.eval()
    rollout = sample(unwrapped.policy, run.models.tokenizer, prompts, run.gen_config, accelerator.device)
    t1 = time.perf_counter()
    raw_scores = run.scorer(rollout.prompts, rollout.responses).to(accelerator.device)
    scores = adjust_scores(cfg, raw_scores, rollout.ended)
    tokens = score_tokens(unwrapped, lambda: run.models.reference_context(unwrapped), rollout, cfg.temperature,
                          cfg.mini_batch_size)
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


def make_optimizer(cfg: Config, actor_critic):
    """AdamW with the policy and value parameters in two groups (their own learning rates), and a schedule."""
    import torch
    from transformers import get_scheduler

    value_params = [p for n, p in actor_critic.named_parameters() if p.requires_grad and not n.startswith("policy.")]
    policy_params = [p for n, p in actor_critic.named_parameters() if p.requires_grad and n.startswith("policy.")]
    groups = [{"params": policy_params, "lr": cfg.learning_rate},
              {"params": value_params, "lr": value_lr(cfg)}]
    optimizer = torch.optim.AdamW(groups, lr=cfg.learning_rate)
    updates = cfg.steps * cfg.ppo_epochs * (cfg.rollout_batch_size // cfg.mini_batch_size)
    scheduler = get_scheduler(cfg.lr_scheduler_type, optimizer, num_warmup_steps=cfg.warmup_steps,
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
    from korlhf.train.ppo_math import (
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
    """``ppo_epochs`` passes over shuffled mini-batches, ``gradient_accumulation_steps`` micro-batches each."""
    import torch

    from korlhf.train.ppo_math import masked_mean, policy_loss, value_loss
    from korlhf.train.ppo_rollout import keep_logits, response_slice, token_logprobs

    actor_critic.train()
    stats = defaultdict(list)
    size = rollout.response_ids.shape[0]
    micro = cfg.mini_batch_size // cfg.gradient_accumulation_steps
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
