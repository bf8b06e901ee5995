"""Mask-derived position ids: TRL's GRPO/RLOO scoring of left-padded completions matches what ``generate`` sampled.

TRL scores prompt + completion with ``input_ids`` and ``attention_mask`` only (through its fused LM
head); on GPT-2 that numbers positions from the first pad column. `use_mask_positions` fixes it.
"""

from __future__ import annotations

import pytest
import torch
from helpers import PROMPTS, sample_recorded

from korlhf.train.positions import causal_lm, mask_position_ids, use_mask_positions

pytestmark = pytest.mark.usefixtures("one_thread")  # steady on a shared 2-core machine

TEMPERATURE = 0.7


@pytest.fixture
def gpt2(tiny_gpt2, tiny_tokenizer):
    from korlhf.models import load_causal_lm

    return load_causal_lm(tiny_gpt2, tiny_tokenizer).eval()


def trl_logprobs(model, rollout) -> torch.Tensor:
    """Completion log-probs as TRL 1.16's ``_get_per_token_logps_and_entropies`` gets them. -> (B, T).

    ``input_ids`` and ``attention_mask`` only, labels -100 outside the completion, fused LM head.
    """
    input_ids = torch.cat([rollout.query_ids, rollout.response_ids], dim=1)
    attention_mask = torch.cat([rollout.query_mask, rollout.response_mask.long()], dim=1)
    steps = rollout.response_ids.shape[1]
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    labels[:, :-steps] = -100
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, fused_lm_head=True)
    return out.log_probs[:, -steps:]


def unpadded_logprobs(model, rollout) -> torch.Tensor:
    """Each row scored alone, with no padding at all: the ground truth. -> (B, T), 0 past the response."""
    from korlhf.train.ppo.math import logprobs_from_logits

    rows = []
    for query, query_mask, response, response_mask in zip(rollout.query_ids, rollout.query_mask, rollout.response_ids,
                                                          rollout.response_mask, strict=True):
        length = int(response_mask.sum())
        ids = torch.cat([query[query_mask.bool()], response[:length]]).unsqueeze(0)
        with torch.no_grad():
            logits = model(input_ids=ids).logits[:, -(length + 1):-1] / TEMPERATURE
        row = torch.zeros(response.shape[0])
        row[:length] = logprobs_from_logits(logits, response[:length].unsqueeze(0))[0]
        rows.append(row)
    return torch.stack(rows)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_trl_scoring_uses_mask_positions(gpt2, tiny_tokenizer, lora):
    """With the hook, TRL-style log-probs equal the sampled ones (and the unpadded ones); without it they do not."""
    from peft import LoraConfig, get_peft_model
    from trl.trainer.utils import add_fused_lm_head

    add_fused_lm_head(gpt2, temperature=TEMPERATURE)  # as TRL does, before wrapping with peft
    model = gpt2
    if lora:  # random B, so the adapters change the output
        model = get_peft_model(gpt2, LoraConfig(r=4, target_modules=["c_attn"], init_lora_weights=False)).eval()
    rollout, sampled = sample_recorded(model, tiny_tokenizer, PROMPTS, TEMPERATURE, seed=1)
    mask = rollout.response_mask
    assert (rollout.query_mask == 0).any(), "the batch must be left-padded for the test to mean anything"

    before = trl_logprobs(model, rollout) * mask
    assert ((before - sampled).abs() * mask).max() > 0.05  # GPT-2 reads the pad columns as positions

    assert use_mask_positions(model)
    after = trl_logprobs(model, rollout) * mask
    torch.testing.assert_close(after, sampled, atol=1e-5, rtol=0)
    torch.testing.assert_close(after, unpadded_logprobs(model, rollout) * mask, atol=1e-5, rtol=0)
    if lora:  # the reference TRL uses with PEFT: the same model, adapters off
        with model.disable_adapter():
            torch.testing.assert_close(trl_logprobs(model, rollout) * mask, unpadded_logprobs(model, rollout) * mask,
                                       atol=1e-5, rtol=0)

    again, _ = sample_recorded(model, tiny_tokenizer, PROMPTS, TEMPERATURE, seed=1)
    assert torch.equal(again.response_ids, rollout.response_ids)  # generate is unchanged by the hook


def test_hook_keeps_given_position_ids_and_registers_once(gpt2, tiny_tokenizer):
    ids = torch.tensor([[tiny_tokenizer.pad_token_id, 5, 6, 7], [8, 9, 10, 11]])
    mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    given = torch.arange(4).expand(2, 4)
    with torch.no_grad():
        plain = gpt2(input_ids=ids, attention_mask=mask, position_ids=given).logits
        derived = gpt2(input_ids=ids, attention_mask=mask, position_ids=mask_position_ids(mask)).logits
        assert use_mask_positions(gpt2) and use_mask_positions(gpt2)
        assert len(causal_lm(gpt2)._forward_pre_hooks) == 1
        assert torch.equal(gpt2(input_ids=ids, attention_mask=mask, position_ids=given).logits, plain)
        assert torch.equal(gpt2(input_ids=ids, attention_mask=mask).logits, derived)
        assert torch.equal(gpt2(ids, attention_mask=mask).logits, derived)  # input_ids passed positionally
    assert mask_position_ids(mask).tolist() == [[0, 0, 1, 2], [0, 1, 2, 3]]
    assert mask_position_ids(mask, 1).tolist() == [[2], [3]]  # a cached step: the new column only
