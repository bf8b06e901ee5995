"""The arithmetic of PPO for language models, as pure tensor functions (no models, no state but the KL controller).

Shapes: ``B`` sequences in a batch, ``T`` response tokens (right-padded), ``V`` vocabulary size.
``mask`` is 1.0 on real response tokens (up to and including EOS) and 0.0 on padding; it is always a
contiguous prefix of each row. Written by hand because no maintained library ships these for LMs
(TRL removed its PPO trainer); the formulas follow Schulman et al. 2017 (PPO), Schulman et al. 2016
(GAE), Ziegler et al. 2019 (KL penalty and adaptive controller) and Ouyang et al. 2022 (InstructGPT).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over positions where ``mask`` is 1. x, mask: (B, T) -> scalar, or (B,) with ``dim=1``."""
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of ``x`` over the masked positions (Bessel-corrected by default). (B, T) -> scalar."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    if unbiased:
        n = mask.sum()
        var = var * n / (n - 1).clamp(min=1)
    return var


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """Normalise ``x`` to unit variance (and zero mean) using only the masked positions. (B, T) -> (B, T).

    Padding does not enter the statistics and comes back as 0. ``shift_mean=False`` keeps the mean
    (used for rewards, whose sign carries meaning).
    """
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    whitened = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask


def logprobs_from_logits(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(token) under ``logits``. logits (B, T, V), tokens (B, T) -> (B, T)."""
    logprobs = F.log_softmax(logits.float(), dim=-1)
    return torch.gather(logprobs, 2, tokens.unsqueeze(-1)).squeeze(-1)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of each next-token distribution. (B, T, V) -> (B, T)."""
    logprobs = F.log_softmax(logits.float(), dim=-1)
    return -(logprobs.exp() * logprobs).sum(-1)


def logprobs_and_entropy(logits: torch.Tensor, tokens: torch.Tensor, entropy_grad: bool = True
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """`logprobs_from_logits` and `entropy_from_logits` from one log-softmax. (B, T, V), (B, T) -> (B, T), (B, T).

    ``entropy_grad=False`` keeps the entropy out of the autograd graph: with no entropy bonus it is
    only logged, and back-propagating through a (B, T, V) softmax for nothing costs a full pass.
    """
    logprobs = F.log_softmax(logits.float(), dim=-1)
    chosen = torch.gather(logprobs, 2, tokens.unsqueeze(-1)).squeeze(-1)
    with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
        entropy = -(logprobs.exp() * logprobs).sum(-1)
    return chosen, entropy


def kl_estimate(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, kind: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from sampled tokens. (B, T), (B, T) -> (B, T).

    ``k1`` = log p - log q (unbiased, can be negative); ``k3`` = (q/p - 1) - log(q/p) (unbiased,
    always >= 0, lower variance), in J. Schulman's "Approximating KL divergence" notation.
    """
    log_ratio = logprobs - ref_logprobs
    if kind == "k1":
        return log_ratio
    if kind == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    raise ValueError(f"unknown KL estimator {kind!r}; choose k1 or k3")


def per_token_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float) -> torch.Tensor:
    """The reward PPO maximises: -kl_coef * KL on every token, plus the sequence score on its last token.

    scores (B,), kl (B, T), mask (B, T) -> rewards (B, T), zero on padding.
    """
    rewards = -kl_coef * kl * mask
    last = (mask.sum(1).long() - 1).clamp(min=0)
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, last] += scores.to(rewards.dtype)
    return rewards


def gae(values: torch.Tensor, rewards: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation. values, rewards, mask (B, T) -> advantages (B, T), returns (B, T).

    delta_t = r_t + gamma * V_{t+1} - V_t, A_t = delta_t + gamma * lam * A_{t+1}; the value after the
    last real token is 0 (the episode ends there), so padding contributes nothing. returns = A + V.
    """
    values, rewards = values * mask, rewards * mask
    advantages = torch.zeros_like(values)
    last_gae = torch.zeros_like(values[:, 0])
    steps = values.shape[1]
    for t in reversed(range(steps)):
        next_value = values[:, t + 1] if t + 1 < steps else torch.zeros_like(last_gae)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last_gae = delta + gamma * lam * last_gae
        advantages[:, t] = last_gae
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                cliprange: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The clipped surrogate objective, as a loss. All inputs (B, T) -> (loss, clip fraction, approx KL), scalars.

    loss = mean(max(-A * r, -A * clip(r, 1 - eps, 1 + eps))) with r = pi / pi_old; approx KL is
    0.5 * mean((log r)^2), the quantity PPO implementations watch to see the policy run away.
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    clipfrac = masked_mean((clipped > unclipped).float(), mask)
    approx_kl = 0.5 * masked_mean(log_ratio.detach() ** 2, mask)
    return loss, clipfrac.detach(), approx_kl


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               cliprange_value: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped value loss. All inputs (B, T) -> (loss, clip fraction), scalars.

    loss = 0.5 * mean(max((V - R)^2, (clip(V, V_old - c, V_old + c) - R)^2)): the value may not move
    more than ``c`` from its rollout-time estimate in one update unless that lowers the loss.
    """
    clipped_values = torch.clamp(values, old_values - cliprange_value, old_values + cliprange_value)
    unclipped_loss = (values - returns) ** 2
    clipped_loss = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(unclipped_loss, clipped_loss), mask)
    clipfrac = masked_mean((clipped_loss > unclipped_loss).float(), mask)
    return loss, clipfrac.detach()


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """1 - Var(R - V) / Var(R) over masked positions: 1 is a perfect critic, 0 no better than a constant."""
    var_returns = masked_var(returns, mask)
    if var_returns.item() == 0:
        return float("nan")
    return float(1.0 - masked_var(returns - values, mask) / var_returns)


@dataclass
class KLController:
    """The KL coefficient beta: fixed, or adapted towards ``target`` (Ziegler et al. 2019, section 2.2).

    Adaptive: e = clip(KL / target - 1, -0.2, 0.2); beta <- beta * (1 + e * n_steps / horizon), where
    KL is the mean summed KL of the last batch and n_steps the number of sequences in it.
    """

    value: float
    target: float | None = None
    horizon: float = 10000.0

    def update(self, current_kl: float, n_steps: int) -> None:
        if self.target is None or not math.isfinite(current_kl):
            return
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon

    # state_dict/load_state_dict make it checkpointable by accelerate (register_for_checkpointing).
    def state_dict(self) -> dict:
        return {"value": self.value, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict) -> None:
        self.value, self.target, self.horizon = state["value"], state["target"], state["horizon"]
