"""Rollouts for online RL: sample responses to templated prompts (PPO, and the held-out measure of all).

Prompts are rendered with the policy tokenizer's chat template (the one SFT trained with) and
left-padded, so every response starts at the same column and one batched ``generate`` call with
a KV cache samples them all. The training forward passes use the same layout, with position ids
computed from the attention mask exactly as ``generate`` does, so log-probs at update time match
the sampling distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from korlhf.generate import decode_response


@dataclass
class Rollout:
    """One batch of sampled responses. B prompts, P prompt columns (left-padded), T response columns."""

    query_ids: torch.Tensor  # (B, P), left-padded
    query_mask: torch.Tensor  # (B, P)
    response_ids: torch.Tensor  # (B, T), pad after EOS
    response_mask: torch.Tensor  # (B, T) float: 1 up to and including EOS
    ended: torch.Tensor  # (B,) bool: the response produced EOS
    prompts: list[str]
    responses: list[str]

    def model_inputs(self, rows=slice(None), logits_to_keep: int | None = None) -> dict:
        """input_ids, attention_mask, position_ids of prompt + response for ``rows``.

        ``logits_to_keep`` (for models that take it) asks for logits of the last T + 1 positions only:
        the prompt's positions predict nothing PPO needs, and the LM head + softmax over them is waste.
        """
        input_ids = torch.cat([self.query_ids[rows], self.response_ids[rows]], dim=1)
        attention_mask = torch.cat([self.query_mask[rows], self.response_mask[rows].long()], dim=1)
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        inputs = dict(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids)
        if logits_to_keep:
            inputs["logits_to_keep"] = logits_to_keep
        return inputs


def encode_prompts(tokenizer, prompts: list, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Render ``prompts`` (texts or conversations) with the chat template and left-pad them. -> (B, P), (B, P).

    No special tokens are added: the template is the whole prompt, as in SFT's chat-template rendering.
    """
    from korlhf.templates import render_prompt

    texts = [render_prompt(tokenizer, p) for p in prompts]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    return batch["input_ids"].to(device), batch["attention_mask"].to(device)


def generation_config(tokenizer, max_new_tokens: int, temperature: float):
    """Pure sampling from the policy: PPO's log-probs assume no top-k/top-p/repetition tricks.

    Everything is set explicitly because ``generate`` fills unset fields from the model's own
    ``generation_config.json`` (hub models often ship top_k, top_p or a repetition penalty).
    """
    from transformers import GenerationConfig

    return GenerationConfig(
        do_sample=True, temperature=temperature, top_k=0, top_p=1.0, typical_p=1.0, min_p=None,
        repetition_penalty=1.0, no_repeat_ngram_size=0, min_new_tokens=0, max_new_tokens=max_new_tokens,
        num_beams=1, use_cache=True, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )


@torch.no_grad()
def sample(policy, tokenizer, prompts: list[str], gen_config, device) -> Rollout:
    """Sample one response per prompt; the response ends at the tokenizer's EOS (kept) or at max_new_tokens."""
    query_ids, query_mask = encode_prompts(tokenizer, prompts, device)
    output = policy.generate(input_ids=query_ids, attention_mask=query_mask, generation_config=gen_config)
    response_ids = output[:, query_ids.shape[1]:]
    is_eos = response_ids == tokenizer.eos_token_id
    ended = is_eos.any(1)
    # Real tokens: up to and including the first EOS (all of them when there is none).
    first_eos = torch.where(ended, is_eos.int().argmax(1), torch.full_like(ended, response_ids.shape[1], dtype=torch.long))
    positions = torch.arange(response_ids.shape[1], device=device).unsqueeze(0)
    response_mask = (positions <= first_eos.unsqueeze(1)).float()
    response_ids = response_ids.masked_fill(response_mask == 0, tokenizer.pad_token_id)
    # As `korlhf generate` returns answers: the template writes ' ' + answer, and the reward model
    # re-renders the text with its template, so a kept leading space would reach it doubled.
    texts = [decode_response(tokenizer, row)[0] for row in response_ids.tolist()]
    return Rollout(query_ids, query_mask, response_ids, response_mask, ended, list(prompts), texts)
