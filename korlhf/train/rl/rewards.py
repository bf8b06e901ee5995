"""Rewards for the RL stages (PPO, GRPO, RLOO): a trained reward model and/or rule functions on text.

A reward is a number for (prompt, response) text. The reward model gets text, not token ids: it is
re-rendered with the reward model's own chat template and tokenizer, so a reward model trained
with a different tokenizer than the policy still scores correctly. Rules are plain functions of
text, named in the config:

- ``hangul``: share of Hangul among the response's letters (`korlhf.text.hangul_ratio`)
- ``contains:WORD``: 1.0 if the response contains WORD, else 0.0
- ``no_refusal``: 0.0 for refusal / "as an AI" boilerplate (`korlhf.text.is_refusal`), else 1.0
- ``complete``: 1.0 if the response ends like a finished Korean sentence (`korlhf.text.looks_truncated`)
- ``package.module:function``: your own ``function(prompt: str, response: str) -> float``

The total reward is the reward-model score plus the rules, each times its weight (default 1).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from contextlib import nullcontext

from korlhf.errors import KorlhfError
from korlhf.text import hangul_ratio, is_refusal, looks_truncated

Rule = Callable[[str, str], float]

BUILTIN_RULES: dict[str, Rule] = {
    "hangul": lambda prompt, response: hangul_ratio(response),
    "no_refusal": lambda prompt, response: 0.0 if is_refusal(response) else 1.0,
    "complete": lambda prompt, response: 0.0 if looks_truncated(response) else 1.0,
}


def parse_rule(name: str) -> Rule:
    """The function behind a rule name (see the module docstring for the names)."""
    if name in BUILTIN_RULES:
        return BUILTIN_RULES[name]
    head, sep, tail = name.partition(":")
    if head == "contains" and tail:
        return lambda prompt, response: 1.0 if tail in response else 0.0
    if head and head != "contains" and sep and tail:
        try:
            function = getattr(importlib.import_module(head), tail)
        except (ImportError, AttributeError) as exc:
            raise KorlhfError(f"reward rule {name!r}: cannot import {tail} from {head} ({exc})") from None
        if not callable(function):
            raise KorlhfError(f"reward rule {name!r}: {head}.{tail} is not a function")
        return function
    raise KorlhfError(
        f"unknown reward rule {name!r}; use one of {', '.join(BUILTIN_RULES)}, contains:WORD, "
        "or package.module:function (a function of (prompt, response) returning a float)"
    )


class RewardScorer:
    """Scores (prompt, response) texts with a reward model and/or rules. Returns a float tensor (B,).

    ``reward_model`` is a sequence-classification model with one output (loaded with its trained
    head by `korlhf.models.load_reward_model`), ``tokenizer`` its own tokenizer. ``context`` is
    entered around the forward pass: PPO with LoRA passes ``value_model.disable_adapter`` so the
    frozen reward model is the value model's base with its adapters switched off.
    """

    def __init__(self, reward_model=None, tokenizer=None, rules: Sequence[str] = (), batch_size: int = 16,
                 max_length: int = 1024, context: Callable | None = None, weights: Sequence[float] = ()):
        if reward_model is None and not rules:
            raise KorlhfError("no reward: set reward_model (a `korlhf train rm` output) and/or reward_rules")
        self.model, self.tokenizer = reward_model, tokenizer
        self.rules = [(name, parse_rule(name)) for name in rules]
        # One weight per reward, the model's first (TRL's reward_weights order); none given: all 1.
        weights = list(weights) or [1.0] * (int(reward_model is not None) + len(self.rules))
        self.model_weight = weights.pop(0) if reward_model is not None else 0.0
        self.rule_weights = weights
        self.batch_size, self.max_length = batch_size, max_length
        self.context = context or nullcontext

    def __call__(self, prompts: Sequence[str | list[dict]], responses: Sequence[str]):
        """``prompts``: user texts or conversations (message lists) that the responses answer."""
        import torch

        from korlhf.templates import to_messages

        conversations = [to_messages(p) if isinstance(p, str) else p for p in prompts]
        total = torch.zeros(len(responses))
        if self.model is not None:
            total += self.model_weight * self.model_scores(conversations, responses)
        for (_, rule), weight in zip(self.rules, self.rule_weights, strict=True):
            total += weight * torch.tensor([float(rule(c[-1]["content"], r))
                                            for c, r in zip(conversations, responses, strict=True)])
        return total

    def model_scores(self, conversations: Sequence[list[dict]], responses: Sequence[str]):
        """Reward-model scores on text rendered with the reward model's own template (ends with its EOS)."""
        import torch

        texts = [self.tokenizer.apply_chat_template([*c, {"role": "assistant", "content": r}], tokenize=False)
                 for c, r in zip(conversations, responses, strict=True)]
        device = next(self.model.parameters()).device
        # The score is read at the last token, so over-long inputs lose their beginning, not their end.
        self.tokenizer.truncation_side = "left"
        scores = []
        with torch.no_grad(), self.context():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(texts[start:start + self.batch_size], return_tensors="pt", padding=True,
                                       truncation=True, max_length=self.max_length, add_special_tokens=False)
                logits = self.model(**batch.to(device)).logits
                scores.append(logits[:, 0].float().cpu())
        return torch.cat(scores)


class TRLReward:
    """One reward as a TRL reward function (GRPO/RLOO): ``f(prompts, completions, **kwargs) -> list[float]``.

    One per reward-model or rule, so TRL logs each as ``rewards/<name>/mean``. Conversational
    completions arrive as message lists; the scorer reads their text, tidied as PPO's rollouts are
    (`korlhf.generate.decode_response`): TRL decodes the template's ``' ' + answer`` with its space,
    which the reward model, re-rendering the answer, would read doubled.
    """

    def __init__(self, name: str, scorer: RewardScorer):
        self.__name__, self.scorer = name, scorer

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        from korlhf.streaming import REPLACEMENT

        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return self.scorer(prompts, [text.rstrip(REPLACEMENT).strip() for text in texts]).tolist()


def trl_rewards(reward_model=None, tokenizer=None, rules: Sequence[str] = (), batch_size: int = 16) -> list[TRLReward]:
    """The reward model (if any) and each rule as separate TRL reward functions (TRL sums them,
    weighted by its ``reward_weights``)."""
    functions = [TRLReward("reward_model", RewardScorer(reward_model, tokenizer, batch_size=batch_size))] if reward_model is not None else []
    return functions + [TRLReward(rule, RewardScorer(rules=[rule])) for rule in rules]
