"""PPO's token-level view of a rollout: log-probs, entropies, values and reference log-probs.

The positions that predict the response tokens are sliced out of full-sequence (or
``logits_to_keep``) outputs, so the update scores exactly what `korlhf.train.rl.rollout.sample` drew.
"""

from __future__ import annotations

import inspect

import torch

from korlhf.train.ppo.math import logprobs_and_entropy, logprobs_from_logits
from korlhf.train.rl.rollout import Rollout


def keep_logits(model, rollout: Rollout) -> int | None:
    """T + 1 if ``model``'s forward takes ``logits_to_keep`` (most transformers LMs do), else None."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    takes = "logits_to_keep" in inspect.signature(base.forward).parameters
    return rollout.response_ids.shape[1] + 1 if takes else None


def response_slice(full: torch.Tensor, rollout: Rollout) -> torch.Tensor:
    """The positions that predict response tokens, P - 1 ... P + T - 2: of a (B, P + T, ...) tensor, or of
    logits kept for the last T + 1 positions only. Counted from the end, both are [-(T + 1), -1)."""
    return full[:, -(rollout.response_ids.shape[1] + 1):-1]


def token_logprobs(logits: torch.Tensor, rollout: Rollout, rows, temperature: float, entropy_grad: bool = False):
    """Log-probs of the sampled response tokens and the entropy at each position. -> (b, T), (b, T)."""
    logits = response_slice(logits, rollout) / temperature
    return logprobs_and_entropy(logits, rollout.response_ids[rows], entropy_grad)


@torch.no_grad()
def score_tokens(actor_critic, reference_context, rollout: Rollout, temperature: float, batch_size: int) -> dict:
    """Rollout-time log-probs, entropies and values of the policy, and reference log-probs. Each (B, T)."""
    parts: dict[str, list] = {"logprobs": [], "entropy": [], "values": [], "ref_logprobs": []}
    reference, _ = reference_context()
    keep, ref_keep = keep_logits(actor_critic.policy, rollout), keep_logits(reference, rollout)
    for start in range(0, rollout.response_ids.shape[0], batch_size):
        rows = slice(start, start + batch_size)
        logits, values, _ = actor_critic(**rollout.model_inputs(rows, keep))
        logprobs, entropy = token_logprobs(logits, rollout, rows, temperature)
        reference, context = reference_context()
        with context:
            ref_logits = reference(**rollout.model_inputs(rows, ref_keep), use_cache=False).logits
        parts["logprobs"].append(logprobs)
        parts["entropy"].append(entropy)
        parts["values"].append(response_slice(values, rollout).float())
        ref_logits = response_slice(ref_logits, rollout) / temperature
        parts["ref_logprobs"].append(logprobs_from_logits(ref_logits, rollout.response_ids[rows]))
    return {k: torch.cat(v) for k, v in parts.items()}
