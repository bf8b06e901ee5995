"""PPO arithmetic against values worked out by hand (in the comments), not by calling the same code."""

import math

import pytest
import torch

from korlhf.train.ppo.math import (
    KLController,
    entropy_from_logits,
    explained_variance,
    gae,
    kl_estimate,
    logprobs_and_entropy,
    logprobs_from_logits,
    masked_mean,
    masked_whiten,
    per_token_rewards,
    policy_loss,
    value_loss,
)


def close(actual, expected, tol=1e-5):
    assert torch.allclose(torch.as_tensor(actual, dtype=torch.float32),
                          torch.as_tensor(expected, dtype=torch.float32), atol=tol), (actual, expected)


def test_gae_three_tokens():
    # gamma = 0.9, lambda = 0.8, so gamma * lambda = 0.72.
    values = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 9.0]])
    rewards = torch.tensor([[0.5, -1.0, 2.0], [0.5, 2.0, 7.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    advantages, returns = gae(values, rewards, mask, gamma=0.9, lam=0.8)
    # Row 0, backwards: t=2: delta = 2.0 + 0.9*0 - 3.0 = -1.0, A2 = -1.0
    #                  t=1: delta = -1.0 + 0.9*3.0 - 2.0 = -0.3, A1 = -0.3 + 0.72*(-1.0) = -1.02
    #                  t=0: delta = 0.5 + 0.9*2.0 - 1.0 = 1.3,  A0 = 1.3 + 0.72*(-1.02) = 0.5656
    # Row 1 ends after t=1 (the 9.0 and 7.0 are padding and must not leak in):
    #                  t=1: delta = 2.0 + 0 - 2.0 = 0, A1 = 0;  t=0: delta = 1.3, A0 = 1.3 + 0.72*0 = 1.3
    close(advantages, [[0.5656, -1.02, -1.0], [1.3, 0.0, 0.0]])
    # returns = A + V on real tokens, 0 on padding.
    close(returns, [[1.5656, 0.98, 2.0], [2.3, 2.0, 0.0]])


def test_per_token_kl_reward_with_masked_tail():
    logprobs = torch.tensor([[-1.0, -2.0, -0.5, -3.0]])
    ref_logprobs = torch.tensor([[-1.5, -1.0, -0.5, -9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    k1 = kl_estimate(logprobs, ref_logprobs, "k1")
    close(k1[:, :3], [[0.5, -1.0, 0.0]])  # log p - log q
    rewards = per_token_rewards(torch.tensor([2.0]), k1, mask, kl_coef=0.1)
    # -0.1 * [0.5, -1.0, 0.0] = [-0.05, 0.1, 0.0]; the score 2.0 lands on the last real token (index 2);
    # the padded 4th token (KL 6.0 there) gets nothing.
    close(rewards, [[-0.05, 0.1, 2.0, 0.0]])

    k3 = kl_estimate(logprobs, ref_logprobs, "k3")
    # log(q/p) = [-0.5, 1.0, 0.0]; k3 = exp(log q/p) - 1 - log(q/p)
    close(k3[:, :3], [[math.exp(-0.5) - 1 + 0.5, math.e - 1 - 1.0, 0.0]])
    assert (k3 >= 0).all()
    rewards3 = per_token_rewards(torch.tensor([2.0]), k3, mask, kl_coef=0.1)
    close(rewards3, [[-0.1 * (math.exp(-0.5) - 0.5), -0.1 * (math.e - 2), 2.0, 0.0]])


def test_kl_estimate_rejects_unknown_kind():
    with pytest.raises(ValueError, match="choose k1 or k3"):
        kl_estimate(torch.zeros(1, 1), torch.zeros(1, 1), "k2")


def test_whitening_ignores_padding():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    # Mean of the real values is 2, unbiased variance ((1)^2 + 0 + (1)^2) / 2 = 1, so (x - 2) / 1.
    close(masked_whiten(x, mask), [[-1.0, 0.0, 1.0, 0.0]], tol=1e-4)
    # Keeping the mean: (x - 2) / 1 + 2 on real tokens.
    close(masked_whiten(x, mask, shift_mean=False), [[1.0, 2.0, 3.0, 0.0]], tol=1e-4)
    close(masked_mean(x, mask), 2.0)


def test_clipped_surrogate_both_branches():
    eps = 0.2
    # Tokens: (A=+1, r=1.5) clipped above; (A=-1, r=0.5) clipped below;
    # (A=+2, r=0.5) and (A=-2, r=1.5) not clipped (the pessimistic term is the unclipped one);
    # a fifth, padded token with a huge ratio must not count.
    old = torch.zeros(1, 5)
    ratios = [1.5, 0.5, 0.5, 1.5, 50.0]
    new = torch.tensor([[math.log(r) for r in ratios]], requires_grad=True)
    advantages = torch.tensor([[1.0, -1.0, 2.0, -2.0, 1.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]])
    loss, clipfrac, approx_kl = policy_loss(new, old, advantages, mask, eps)
    # Per token max(-A r, -A clip(r)): max(-1.5, -1.2) = -1.2; max(0.5, 0.8) = 0.8;
    # max(-1.0, -1.6) = -1.0; max(3.0, 2.4) = 3.0. Mean = (-1.2 + 0.8 - 1.0 + 3.0) / 4 = 0.4
    close(loss, 0.4)
    close(clipfrac, 0.5)  # two of four real tokens took the clipped term
    close(approx_kl, 0.5 * (2 * math.log(1.5) ** 2 + 2 * math.log(0.5) ** 2) / 4)
    loss.backward()
    # The clipped tokens pass no gradient; the others pass d(-A r)/d(log r) / 4 = -A r / 4.
    close(new.grad, [[0.0, 0.0, -2 * 0.5 / 4, 2 * 1.5 / 4, 0.0]])


def test_clipped_value_loss():
    c = 0.2
    old = torch.tensor([[1.0, 1.0, 5.0]])
    new = torch.tensor([[1.5, 1.5, -5.0]])
    returns = torch.tensor([[2.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    loss, clipfrac = value_loss(new, old, returns, mask, c)
    # Token 0: clip(1.5) = 1.2; (1.5 - 2)^2 = 0.25 < (1.2 - 2)^2 = 0.64 -> 0.64 (clipped term)
    # Token 1: (1.5 - 0)^2 = 2.25 > (1.2 - 0)^2 = 1.44 -> 2.25; loss = 0.5 * (0.64 + 2.25) / 2
    close(loss, 0.7225)
    close(clipfrac, 0.5)


def test_logprobs_and_entropy():
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25]]]))
    close(logprobs_from_logits(logits, torch.tensor([[1]])), [[math.log(0.25)]])
    # H = -(0.5 ln 0.5 + 2 * 0.25 ln 0.25) = 1.5 ln 2
    close(entropy_from_logits(logits), [[1.5 * math.log(2)]])


def test_logprobs_and_entropy_in_one_pass():
    logits = torch.randn(2, 3, 5, requires_grad=True)
    tokens = torch.tensor([[0, 4, 2], [1, 1, 3]])
    logprobs, entropy = logprobs_and_entropy(logits, tokens)
    close(logprobs, logprobs_from_logits(logits, tokens))
    close(entropy, entropy_from_logits(logits))
    assert entropy.requires_grad
    assert not logprobs_and_entropy(logits, tokens, entropy_grad=False)[1].requires_grad


def test_explained_variance():
    returns = torch.tensor([[1.0, 2.0, 3.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    assert explained_variance(returns, returns, mask) == pytest.approx(1.0)
    # A constant critic at the mean explains nothing: Var(R - 2) / Var(R) = 1.
    assert explained_variance(torch.full_like(returns, 2.0), returns, mask) == pytest.approx(0.0, abs=1e-6)


def test_kl_controllers():
    fixed = KLController(0.1)
    fixed.update(100.0, 256)
    assert fixed.value == 0.1
    adaptive = KLController(0.1, target=6.0, horizon=10000)
    adaptive.update(12.0, 256)  # error = clip(12/6 - 1, -0.2, 0.2) = 0.2; beta *= 1 + 0.2 * 256 / 10000
    assert adaptive.value == pytest.approx(0.1 * 1.00512)
    adaptive.update(5.7, 100)  # error = 5.7/6 - 1 = -0.05; beta *= 1 - 0.05 * 100 / 10000
    assert adaptive.value == pytest.approx(0.1 * 1.00512 * 0.9995)
    restored = KLController(1.0)
    restored.load_state_dict(adaptive.state_dict())
    assert restored == adaptive
