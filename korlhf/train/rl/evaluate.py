"""The held-out measure every online RL stage reports: mean reward of one seeded sample per prompt."""

from __future__ import annotations

import torch

from korlhf.train.rl.rollout import sample


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
