"""Ranking losses and metrics against values computed by hand (log sigma(x) = -log(1 + e^-x))."""

from __future__ import annotations

import math

import pytest
import torch

from korlhf.train.ranking import (
    center_penalty,
    group_rewards,
    kwise_ranking_loss,
    pair_mask,
    plackett_luce_loss,
    ranking_metrics,
)


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def batch(groups, tied=None):
    num = torch.tensor([len(g) for g in groups])
    tied = torch.tensor(tied or [False] * len(groups))
    flat = torch.tensor([r for g in groups for r in g], dtype=torch.float64)
    return group_rewards(flat, num), num, tied


def test_group_rewards_pads_by_prompt():
    rewards, num, _ = batch([[2.0, 1.0, 0.0], [5.0, 4.0]])
    assert rewards.tolist() == [[2.0, 1.0, 0.0], [5.0, 4.0, 0.0]]
    assert num.tolist() == [3, 2]


def test_pair_mask_full_ranking_and_tied_after_first():
    mask = pair_mask(torch.tensor([3, 4]), torch.tensor([False, True]), 4)
    full = {(i, j) for i in range(4) for j in range(4) if mask[0, i, j]}
    tied = {(i, j) for i in range(4) for j in range(4) if mask[1, i, j]}
    assert full == {(0, 1), (0, 2), (1, 2)}  # C(3,2) pairs, none with the padding slot 3
    assert tied == {(0, 1), (0, 2), (0, 3)}  # right > each wrong; wrong answers not compared


def test_kwise_loss_on_three_answers_by_hand():
    # r = (2, 1, 0): pairs (0,1) d=1, (0,2) d=2, (1,2) d=1; loss = -(2 log s(1) + log s(2)) / 3
    rewards, num, tied = batch([[2.0, 1.0, 0.0]])
    loss = kwise_ranking_loss(rewards, pair_mask(num, tied, 3))
    expected = -(2 * log_sigmoid(1.0) + log_sigmoid(2.0)) / 3
    assert expected == pytest.approx(0.25115046, abs=1e-8)
    assert loss.item() == pytest.approx(expected, abs=1e-12)


def test_kwise_loss_weights_each_prompt_equally():
    # Prompt 1 as above (3 pairs); prompt 2: K=2, r = (0, 1): one wrongly ordered pair, -log s(-1).
    rewards, num, tied = batch([[2.0, 1.0, 0.0], [0.0, 1.0]])
    loss = kwise_ranking_loss(rewards, pair_mask(num, tied, 3))
    first = -(2 * log_sigmoid(1.0) + log_sigmoid(2.0)) / 3
    second = -log_sigmoid(-1.0)
    assert loss.item() == pytest.approx((first + second) / 2, abs=1e-12)
    assert loss.item() == pytest.approx(0.78220607, abs=1e-8)


def test_kwise_with_two_answers_is_the_pairwise_bradley_terry_loss():
    chosen, rejected = torch.tensor([0.3, -1.0, 2.0]), torch.tensor([0.1, 0.5, 2.5])
    rewards = torch.stack([chosen, rejected], dim=1)
    num, tied = torch.tensor([2, 2, 2]), torch.tensor([False] * 3)
    trl_loss = -torch.nn.functional.logsigmoid(chosen - rejected).mean()  # TRL RewardTrainer's formula
    assert kwise_ranking_loss(rewards, pair_mask(num, tied, 2)).item() == pytest.approx(trl_loss.item(), abs=1e-7)


def test_kwise_tied_after_first_uses_only_first_vs_others():
    # r = (0, 1, -1, 0.5), tied: pairs (0,1) d=-1, (0,2) d=1, (0,3) d=-0.5, each weight 1/3.
    rewards, num, tied = batch([[0.0, 1.0, -1.0, 0.5]], tied=[True])
    loss = kwise_ranking_loss(rewards, pair_mask(num, tied, 4))
    expected = -(log_sigmoid(-1.0) + log_sigmoid(1.0) + log_sigmoid(-0.5)) / 3
    assert expected == pytest.approx(0.86686679, abs=1e-8)
    assert loss.item() == pytest.approx(expected, abs=1e-12)


def test_plackett_luce_by_hand():
    # -log P(0>1>2) = -[2 - log(e^2 + e + 1)] - [1 - log(e + 1)]
    rewards, num, tied = batch([[2.0, 1.0, 0.0]])
    expected = -(2 - math.log(math.e**2 + math.e + 1)) - (1 - math.log(math.e + 1))
    assert expected == pytest.approx(0.72086765, abs=1e-8)
    assert plackett_luce_loss(rewards, num, tied).item() == pytest.approx(expected, abs=1e-12)


def test_plackett_luce_padding_and_tied_records():
    # Prompt 1: K=2 padded to 3, r = (0, 1): -[0 - log(1 + e)]. Prompt 2 tied, r = (1, 0, 0): only the
    # first stage, -[1 - log(e + 2)].
    rewards, num, tied = batch([[0.0, 1.0], [1.0, 0.0, 0.0]], tied=[False, True])
    expected = (math.log(1 + math.e) + -(1 - math.log(math.e + 2))) / 2
    loss = plackett_luce_loss(rewards, num, tied)
    assert loss.item() == pytest.approx(expected, abs=1e-12)


def test_losses_have_finite_gradients_with_padding():
    rewards, num, tied = batch([[2.0, 1.0, 0.0, -1.0], [0.0, 1.0]], tied=[False, False])
    rewards.requires_grad_(True)
    (kwise_ranking_loss(rewards, pair_mask(num, tied, 4)) + plackett_luce_loss(rewards, num, tied)).backward()
    assert torch.isfinite(rewards.grad).all()
    assert rewards.grad[1, 2:].abs().sum() == 0  # padding gets no gradient


def test_center_penalty_ignores_padding():
    rewards, num, _ = batch([[1.0, -3.0], [2.0]])
    assert center_penalty(rewards, num).item() == pytest.approx((1 + 9 + 4) / 3)


def test_ranking_metrics_by_hand():
    scores = [
        [3.0, 2.0, 1.0],  # perfect: 3/3 pairs, top-1, tau = 1
        [1.0, 3.0, 2.0],  # pairs (0,1) no, (0,2) no, (1,2) yes: 1/3; top-1 no; tau = -1/3
        [0.5, 0.5],  # K = 2 tie: half a pair
        [1.0, 2.0, 0.0, -1.0],  # tied_after_first: (0,1) no, (0,2) yes, (0,3) yes; top-1 no; no tau
    ]
    metrics = ranking_metrics(scores, [False, False, False, True])
    assert metrics["pairwise_accuracy"] == pytest.approx((3 + 1 + 0.5 + 2) / (3 + 3 + 1 + 3))
    assert metrics["top1_accuracy"] == pytest.approx(1 / 3)
    assert metrics["kendall_tau"] == pytest.approx((1 - 1 / 3) / 2)
    assert (metrics["records"], metrics["pairs"]) == (4, 10)


def test_ranking_metrics_pairs_only():
    metrics = ranking_metrics([[1.0, 0.0], [0.0, 1.0]], [False, False])
    assert metrics["pairwise_accuracy"] == 0.5
    assert metrics["top1_accuracy"] is None and metrics["kendall_tau"] is None
