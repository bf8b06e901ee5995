"""Reward-model ranking losses and metrics, as pure functions.

No library offers the K-wise losses: TRL's RewardTrainer sees one (chosen, rejected) pair per
row, so the pairs of one prompt land in different batches. InstructGPT (Ouyang et al. 2022, eq. 1)
puts all C(K,2) comparisons of a prompt in the same batch, each weighted 1/C(K,2), which is both
cheaper (each answer goes through the model once) and less prone to overfitting. We write that
loss, and the listwise Plackett–Luce likelihood, by hand here.

Shapes: B prompts, each with K_b <= K answers ranked best -> worst. Rewards of a batch arrive
flat (N = sum K_b sequences) and are padded into (B, K) by `group_rewards`. A record with
``tied_after_first`` (KoBEST multiple choice) only knows "first beats each other one": it gives
the K_b - 1 pairs (0, j), and only the first choice stage of Plackett–Luce.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def group_rewards(flat: torch.Tensor, num_responses: torch.Tensor) -> torch.Tensor:
    """(N,) rewards of B consecutive groups of sizes ``num_responses`` (B,) -> (B, K) padded with 0."""
    groups = torch.split(flat, num_responses.tolist())
    return torch.nn.utils.rnn.pad_sequence(list(groups), batch_first=True)


def pair_mask(num_responses: torch.Tensor, tied_after_first: torch.Tensor, k: int) -> torch.Tensor:
    """(B, K, K) bool: ``[b, i, j]`` is True when answer i is known to beat answer j (i < j < K_b).

    ``tied_after_first`` (B,) bool keeps only i == 0 for that record.
    """
    idx = torch.arange(k, device=num_responses.device)
    before = idx[:, None] < idx[None, :]  # (K, K): i ranked above j
    inside = idx[None, None, :] < num_responses[:, None, None]  # (B, 1, K): j exists (so does i < j)
    first_row = (idx == 0)[None, :, None]  # (1, K, 1)
    known = ~tied_after_first[:, None, None] | first_row
    return before[None] & inside & known


def kwise_ranking_loss(rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """InstructGPT's ranking loss: mean over prompts of -1/P_b * sum over known pairs of log sigma(r_i - r_j).

    rewards (B, K), mask (B, K, K) from `pair_mask`; P_b = number of known pairs of prompt b
    (C(K_b, 2) for a full ranking). Returns a scalar.
    """
    logp = F.logsigmoid(rewards[:, :, None] - rewards[:, None, :])  # (B, K, K): log sigma(r_i - r_j)
    m = mask.to(rewards.dtype)
    per_prompt = -(logp * m).sum(dim=(1, 2)) / m.sum(dim=(1, 2)).clamp(min=1)
    return per_prompt.mean()


def plackett_luce_loss(rewards: torch.Tensor, num_responses: torch.Tensor,
                       tied_after_first: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of each ranking under Plackett–Luce, averaged over prompts.

    -log P(1 > 2 > ... > K_b) = -sum_{i=0}^{K_b-2} [r_i - logsumexp(r_i, ..., r_{K_b-1})]; a
    ``tied_after_first`` record keeps only the i = 0 term (the first beats all the others).
    rewards (B, K), num_responses (B,), tied_after_first (B,). Returns a scalar.
    """
    b, k = rewards.shape
    idx = torch.arange(k, device=rewards.device)
    valid = idx[None, :] < num_responses[:, None]  # (B, K)
    # Padding far below every real reward adds exp(-1e4) = 0 to each sum, and keeps gradients finite.
    floor = rewards.detach().min() - 1e4
    padded = torch.where(valid, rewards, floor)
    suffix_lse = torch.logcumsumexp(padded.flip(1), dim=1).flip(1)  # (B, K): logsumexp(r_i..r_K-1)
    stage = idx[None, :] < (num_responses - 1)[:, None]  # choice stages 0 .. K_b - 2
    stage = stage & (~tied_after_first[:, None] | (idx == 0)[None, :])
    terms = torch.where(stage, padded - suffix_lse, torch.zeros_like(padded))
    return -terms.sum(dim=1).mean()


def center_penalty(rewards: torch.Tensor, num_responses: torch.Tensor) -> torch.Tensor:
    """Mean squared reward over the real (unpadded) answers: pushes rewards towards zero mean
    (Eisenstein et al. 2023, as TRL's ``center_rewards_coefficient``). rewards (B, K)."""
    valid = torch.arange(rewards.shape[1], device=rewards.device)[None, :] < num_responses[:, None]
    return (rewards[valid] ** 2).mean()


def ranking_metrics(scores: Sequence[Sequence[float]], tied_after_first: Sequence[bool]) -> dict:
    """Held-out metrics of a reward model from its scores of each record's answers (best first).

    - ``pairwise_accuracy``: share of known pairs scored in the right order (a tie counts 1/2);
    - ``top1_accuracy``: share of records with K >= 3 whose best answer gets the highest score;
    - ``kendall_tau``: mean Kendall tau-b between scores and the true order, over fully ranked
      records with K >= 3 (1 = same order, -1 = reversed).
    The last two are None when no record qualifies.
    """
    from scipy.stats import kendalltau

    right = pairs = 0.0
    top1, taus = [], []
    for s, tied in zip(scores, tied_after_first, strict=True):
        k = len(s)
        known = [(0, j) for j in range(1, k)] if tied else [(i, j) for i in range(k) for j in range(i + 1, k)]
        right += sum(1.0 if s[i] > s[j] else 0.5 if s[i] == s[j] else 0.0 for i, j in known)
        pairs += len(known)
        if k >= 3:
            top1.append(float(max(range(k), key=lambda i: s[i]) == 0 and s.count(s[0]) == 1))
            if not tied:
                tau = kendalltau(list(s), list(range(k, 0, -1))).statistic
                taus.append(0.0 if math.isnan(tau) else float(tau))
    return {
        "pairwise_accuracy": right / pairs if pairs else None,
        "top1_accuracy": sum(top1) / len(top1) if top1 else None,
        "kendall_tau": sum(taus) / len(taus) if taus else None,
        "records": len(scores),
        "pairs": int(pairs),
    }
