"""Helpers more than one test module uses (fixtures live in conftest.py)."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import torch

from korlhf.train.ppo.math import logprobs_from_logits
from korlhf.train.rl.rollout import generation_config, sample


def weights_hash(model) -> str:
    """One digest of every tensor of ``model``: equal weights, equal hash (DDP ranks compare with it)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    return digest.hexdigest()


PROMPTS = ["김치찌개 끓이는 법을 알려줘", "서울", "한국의 수도는 어디인가요? 역사와 함께 자세히 설명해 주세요.", "안녕하세요"]
TEMPERATURE = 0.7


class Recorder:
    """A policy whose ``generate`` also keeps the scores (processed logits) each token was sampled from."""

    def __init__(self, model):
        self.model, self.scores = model, None

    def generate(self, **kwargs):
        out = self.model.generate(**kwargs, output_scores=True, return_dict_in_generate=True)
        self.scores = torch.stack(out.scores, dim=1)
        return out.sequences


def sample_recorded(model, tokenizer, prompts, temperature: float, seed: int = 0, max_new_tokens: int = 12):
    """korlhf's `sample`, plus the log-probs of the sampled tokens under generate's own distribution (masked)."""
    recorder = Recorder(model)
    torch.manual_seed(seed)
    rollout = sample(recorder, tokenizer, prompts, generation_config(tokenizer, max_new_tokens, temperature), "cpu")
    return rollout, logprobs_from_logits(recorder.scores, rollout.response_ids) * rollout.response_mask


def micro(runs: Path, **changes):
    """The demo, shrunk to seconds: a 1-layer model, a few steps per stage (a `korlhf.demo.Config`)."""
    from korlhf import demo

    cfg = demo.Config(
        runs_dir=str(runs), hidden=32, layers=1, vocab_size=400, pretrain_steps=5, n_sft=70, n_rm=24, eval_size=12,
        threads=1,
        sft=dict(max_steps=4, batch_size=8, learning_rate=1e-3, eval_fraction=0.0, save_steps=2, max_length=64,
                 logging_steps=1),
        rm=dict(max_steps=3, batch_size=4, learning_rate=1e-3, eval_fraction=0.25, save_steps=100, max_length=64,
                logging_steps=1),
        label=dict(judge="rules", reward_rules=["korlhf.demo_data:correct"], samples_per_model=2, preset="sample",
                   max_new_tokens=8, batch_size=8),
        ppo=dict(reward_model=None, reward_rules=["korlhf.demo_data:correct"], value_model="shared", max_steps=2,
                 rollout_batch_size=8, batch_size=4, ppo_epochs=1, learning_rate=1e-4, max_new_tokens=8,
                 sample_steps=0, eval_fraction=0.2, save_steps=1),
        generate=dict(preset="greedy", max_new_tokens=8),
        sweep=dict(max_new_tokens=8, strategies=[{"preset": "greedy"}, {"preset": "sample"}]),
        eval_limit=6, batch_size=8)
    return dataclasses.replace(cfg, **changes)
