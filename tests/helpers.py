"""Helpers more than one test module uses (fixtures live in conftest.py)."""

from __future__ import annotations

import hashlib

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
