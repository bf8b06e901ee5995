"""What a PPO run shows and leaves behind: held-out reward, sample tables, and the output folder.

The output folder follows `korlhf.train.output`: the policy (HF model, or LoRA adapter) and the
tokenizer with its chat template, so `korlhf.models.load_causal_lm` reads it; the value model
(``value/`` or ``value_head.safetensors``); config.yaml; log.jsonl; README.md; metrics.json last.
"""

from __future__ import annotations

from pathlib import Path

import torch

from korlhf.train.ppo_rollout import sample

WINDOW = 5  # steps averaged for the start/end figures in metrics.json (one step's reward is noisy)


@torch.no_grad()
def evaluate(policy, tokenizer, prompts: list, scorer, gen_config, batch_size: int, seed: int) -> float:
    """Mean reward of one sampled response per held-out prompt, with a fixed seed.

    The global RNG is forked, so evaluating does not change what training samples next (resume
    stays exact) and every evaluation draws with the same seed (before/after are comparable).
    PPO, GRPO and RLOO all report this number, so their runs compare directly.
    """
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    device = next(policy.parameters()).device
    scores, was_training = [], policy.training
    policy.eval()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for start in range(0, len(prompts), batch_size):
            rollout = sample(policy, tokenizer, prompts[start:start + batch_size], gen_config, device)
            scores.append(scorer(rollout.prompts, rollout.responses))
    policy.train(was_training)
    return torch.cat(scores).mean().item()


def print_samples(log, step: int, rollout, scores, n: int, is_main: bool) -> None:
    """A table of the first ``n`` prompts, responses and scores, on the console and in samples.jsonl."""
    if not is_main or n <= 0:
        return
    from rich.console import Console
    from rich.table import Table

    rows = [{"prompt": prompt[-1]["content"], "response": response, "score": round(float(score), 4)}
            for prompt, response, score in zip(rollout.prompts[:n], rollout.responses[:n], scores[:n].tolist(),
                                               strict=True)]
    table = Table("prompt", "response", "score", title=f"samples at step {step}", show_lines=True)
    for row in rows:
        table.add_row(row["prompt"], row["response"], f"{row['score']:.3f}")
    Console().print(table)
    log.samples(step, rows)


def summarize(history: list[dict], steps: int) -> dict:
    """metrics.json: reward and KL over the first and last few steps, held-out reward before and after."""
    rows = [r for r in history if "reward/mean" in r]

    def mean(key, part):
        values = [r[key] for r in part if r.get(key) is not None]
        return sum(values) / len(values) if values else None

    evals = [r for r in history if "eval/reward" in r]
    metrics = {"steps": steps,
               "reward_start": mean("reward/mean", rows[:WINDOW]), "reward_end": mean("reward/mean", rows[-WINDOW:]),
               "kl_end": mean("kl/mean", rows[-WINDOW:]), "kl_coef_end": rows[-1]["kl/coef"] if rows else None,
               "response_length_end": mean("response/length", rows[-WINDOW:]),
               "samples_per_s": mean("samples_per_s", rows)}
    if evals:
        metrics["eval_reward_start"] = evals[0]["eval/reward"]
        metrics["eval_reward_end"] = evals[-1]["eval/reward"]
    return metrics


def write_outputs(cfg, accelerator, actor_critic, tokenizer, history: list[dict], sources: dict) -> dict:
    """Policy, tokenizer, value model, model card, then metrics.json (last). Returns the metrics."""
    from korlhf.train.output import remove_checkpoints, write_metrics

    metrics = summarize(history, cfg.steps)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        out = Path(cfg.output_dir)
        layout = save_policy(cfg, actor_critic.policy, tokenizer, out)
        save_value(actor_critic, out)
        write_card(cfg, out, tokenizer, metrics, sources, layout)
        write_metrics(out, metrics)
        if not cfg.keep_checkpoints:
            remove_checkpoints(out)
    accelerator.wait_for_everyone()
    return metrics


def save_policy(cfg, policy, tokenizer, out: Path) -> str:
    """The policy in HF format. A LoRA policy is saved as its adapter, except on top of an SFT *adapter*:
    its base was merged at load time and exists nowhere on disk, so the merged policy is saved instead."""
    from accelerate.utils import is_peft_model

    from korlhf.models import is_adapter_dir, load_causal_lm

    tokenizer.save_pretrained(out)
    if is_peft_model(policy) and is_adapter_dir(cfg.model_name_or_path):
        policy.merge_and_unload().save_pretrained(out)
        return "full model (LoRA merged into the SFT model, itself an adapter)"
    policy.save_pretrained(out)
    if not is_peft_model(policy):
        return "full model"
    if cfg.merge:
        load_causal_lm(out, tokenizer).save_pretrained(out / "merged")
        tokenizer.save_pretrained(out / "merged")
    return "LoRA adapter" + (" + merged/" if cfg.merge else "")


def save_value(actor_critic, out: Path) -> None:
    if actor_critic.value_model is not None:
        actor_critic.value_model.save_pretrained(out / "value")
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in actor_critic.value_head.state_dict().items()},
                  str(out / "value_head.safetensors"))


def write_card(cfg, out: Path, tokenizer, metrics: dict, sources: dict, layout: str) -> None:
    from korlhf.train.common import command_line
    from korlhf.train.output import causal_lm_usage, lora_label, template_label, write_model_card

    reward = " + ".join([*([f"reward model `{cfg.reward_model}`"] if cfg.reward_model else []),
                         *[f"rule `{r}`" for r in cfg.reward_rules]])
    settings = {"saved": layout, "reward": reward, "value model": cfg.value_model, "steps": cfg.steps,
                "rollout_batch_size": cfg.rollout_batch_size, "mini_batch_size": cfg.mini_batch_size,
                "ppo_epochs": cfg.ppo_epochs, "learning_rate": cfg.learning_rate, "kl_coef": cfg.kl_coef,
                "kl_estimator": cfg.kl_estimator, "target_kl": cfg.target_kl, "max_new_tokens": cfg.max_new_tokens,
                "lora": lora_label(cfg), "ptx_coef": cfg.ptx_coef, "seed": cfg.seed}
    write_model_card(out, stage="ppo", title=f"{out.name}: Korean PPO policy", base_model=cfg.model_name_or_path,
                     template=template_label(tokenizer), data=sources,
                     metrics=metrics, settings=settings, usage=causal_lm_usage(out), command=command_line())
