"""What a PPO run shows and leaves behind: held-out reward, sample tables, and the output folder.

The output folder follows `korlhf.train.output`: the policy (HF model, or LoRA adapter) and the
tokenizer with its chat template, so `korlhf.models.load_causal_lm` reads it; the value model
(``value/`` or ``value_head.safetensors``); config.yaml; log.jsonl; README.md; metrics.json last.
"""

from __future__ import annotations

from pathlib import Path

WINDOW = 5  # steps averaged for the start/end figures in metrics.json (one step's reward is noisy)


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


def write_outputs(cfg, accelerator, actor_critic, tokenizer, history: list[dict], steps: int,
                  train_records: list[dict], eval_records: list[dict]) -> dict:
    """Policy, tokenizer, value model, model card, then metrics.json (last). Returns the metrics."""
    from korlhf.train.output import finish_run

    metrics = summarize(history, steps)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        out = Path(cfg.output_dir)
        layout = save_policy(cfg, actor_critic.policy, tokenizer, out)
        save_value(actor_critic, out)
        reward = " + ".join([*([f"reward model `{cfg.reward_model}`"] if cfg.reward_model else []),
                             *[f"rule `{r}`" for r in cfg.reward_rules]])
        settings = {"saved": layout, "reward": reward, "value model": cfg.value_model,
                    "rollout_batch_size": cfg.rollout_batch_size, "ppo_epochs": cfg.ppo_epochs,
                    "kl_coef": cfg.kl_coef, "kl_estimator": cfg.kl_estimator, "target_kl": cfg.target_kl,
                    "max_new_tokens": cfg.max_new_tokens, "ptx_coef": cfg.ptx_coef}
        finish_run(cfg, tokenizer, stage="ppo", title=f"{out.name}: Korean PPO policy", train_records=train_records,
                   eval_records=eval_records, metrics=metrics, settings=settings,
                   processes=accelerator.num_processes)
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
