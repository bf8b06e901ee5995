"""The four PPO models and how they share weights.

- policy: the SFT model (full weights, or LoRA adapters on it);
- reference: the frozen SFT model. With LoRA it is the policy with its adapters switched off
  (``disable_adapter``), not a second copy;
- value model: initialised from the reward model as in InstructGPT (``value_model: reward``), or
  a linear value head on the policy's own last hidden state (``value_model: shared``);
- reward model: the `korlhf train rm` output with its trained head, frozen. With LoRA and
  ``value_model: reward`` it is the value model with its adapters switched off.

Policy and value model sit in one `ActorCritic` module so that accelerate (DDP, DeepSpeed) wraps,
and one optimizer steps, both with a single forward call per micro-batch.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from korlhf.errors import KorlhfError


class ActorCritic(nn.Module):
    """The policy and its value function, in one module."""

    def __init__(self, policy: nn.Module, value_model: nn.Module | None = None):
        super().__init__()
        self.policy = policy
        self.value_model = value_model
        if value_model is None:  # a value head on the policy's last hidden state
            hidden = policy.get_input_embeddings().weight.shape[1]
            self.value_head = nn.Linear(hidden, 1)
            nn.init.zeros_(self.value_head.weight)
            nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids, attention_mask, position_ids, ptx: dict | None = None, logits_to_keep: int | None = None):
        """-> logits (B, L or logits_to_keep, V), values (B, L), and the PPO-ptx LM loss on ``ptx`` (or None).

        Everything the update needs comes out of this one call, as DDP requires.
        """
        inputs = dict(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
        keep = {"logits_to_keep": logits_to_keep} if logits_to_keep else {}
        if self.value_model is None:
            out = self.policy(**inputs, **keep, output_hidden_states=True)
            values = self.value_head(out.hidden_states[-1].to(self.value_head.weight.dtype)).squeeze(-1)
        else:
            out = self.policy(**inputs, **keep)
            values = sequence_values(self.value_model, inputs)
        ptx_loss = self.policy(**ptx, use_cache=False).loss if ptx is not None else None
        return out.logits, values.float(), ptx_loss


def sequence_values(value_model: nn.Module, inputs: dict) -> torch.Tensor:
    """A value for every position: the reward model's backbone and score head applied token by token. (B, L)."""
    inner = value_model.get_base_model() if hasattr(value_model, "get_base_model") else value_model
    hidden = inner.base_model(**inputs).last_hidden_state  # the transformer under the classification head
    return inner.score(hidden).squeeze(-1).float()


@dataclass
class PPOModels:
    actor_critic: ActorCritic
    tokenizer: Any
    reference: nn.Module | None  # None: the policy with adapters disabled
    reward_model: nn.Module | None
    reward_tokenizer: Any
    reward_context: Any  # entered around reward-model forwards (disable_adapter when shared with the value model)

    def reference_context(self, actor_critic: ActorCritic):
        """(model, context) that compute reference log-probs."""
        if self.reference is not None:
            return self.reference, nullcontext()
        return actor_critic.policy, actor_critic.policy.disable_adapter()


def disable_dropout(model: nn.Module) -> None:
    """PPO needs pi(a|s) to be the same function at rollout and update time, so dropout is off.

    Not only ``nn.Dropout`` modules: Llama, Qwen2 and GPT-NeoX attention applies dropout from a
    float (``self.attention_dropout``, copied from the config) when training, so those module
    floats are zeroed too. The config is left alone: a saved PPO model keeps its dropout settings.
    """
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        _zero_float_dropouts(module)


def _zero_float_dropouts(obj) -> None:
    """Set every float attribute named ``*dropout*`` or ``*_pdrop`` of ``obj`` to 0.0."""
    for name, value in list(vars(obj).items()):
        if isinstance(value, float) and ("dropout" in name or name.endswith("_pdrop")):
            setattr(obj, name, 0.0)


def load_ppo_models(cfg) -> PPOModels:
    """Load policy, reference, value and reward models as configured (see the module docstring)."""
    from peft import get_peft_model

    from korlhf.models import load_causal_lm, load_reward_model, load_tokenizer
    from korlhf.train.common import lora_config, quantization_kwargs, training_dtype

    quant = quantization_kwargs(cfg)
    tokenizer = load_tokenizer(cfg.model_name_or_path, cfg.template, cfg.trust_remote_code)
    load = dict(dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code)  # frozen models
    train = dict(load, dtype=training_dtype(cfg.dtype))  # trained ones keep float32 master weights
    policy = load_causal_lm(cfg.model_name_or_path, tokenizer, **train, **quant)
    reference = None
    if cfg.use_lora or cfg.load_in_4bit:
        policy = get_peft_model(policy, lora_config(cfg, "CAUSAL_LM"))
    else:
        reference = load_causal_lm(cfg.model_name_or_path, tokenizer, **load).eval().requires_grad_(False)
    if cfg.gradient_checkpointing:
        policy.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})

    reward_model = reward_tokenizer = value_model = None
    reward_context = nullcontext
    if cfg.reward_model:
        reward_tokenizer = load_tokenizer(cfg.reward_model, None, cfg.trust_remote_code)
        shared = (cfg.use_lora or cfg.load_in_4bit) and value_from_reward_model(cfg, reward_tokenizer, tokenizer)
        reward_model = load_reward_model(cfg.reward_model, reward_tokenizer, **(train if shared else load))
        reward_model.eval().requires_grad_(False)
    if value_from_reward_model(cfg, reward_tokenizer, tokenizer):
        if cfg.use_lora or cfg.load_in_4bit:
            # One reward-model base: adapters + a trainable copy of the head = value model; switched off = reward model.
            value_model = get_peft_model(reward_model, lora_config(cfg, "SEQ_CLS"))
            reward_model, reward_context = value_model, value_model.disable_adapter
        else:
            value_model = load_reward_model(cfg.reward_model, tokenizer, **train)
            value_model.requires_grad_(True)
    actor_critic = ActorCritic(policy, value_model)
    for model in (actor_critic, reference, reward_model):
        if model is not None:
            disable_dropout(model)
    return PPOModels(actor_critic, tokenizer, reference, reward_model, reward_tokenizer, reward_context)


def value_from_reward_model(cfg, reward_tokenizer, tokenizer) -> bool:
    """Whether the value model starts as a copy of the reward model (InstructGPT) or is a head on the policy.

    ``auto`` takes the reward model when there is one and it reads the policy's tokens (same
    vocabulary); otherwise a shared head.
    """
    same_vocab = reward_tokenizer is not None and reward_tokenizer.get_vocab() == tokenizer.get_vocab()
    if cfg.value_model == "reward" and not cfg.reward_model:
        raise KorlhfError("value_model: reward needs reward_model (a `korlhf train rm` output); "
                          "with rule rewards only, set value_model: shared")
    if cfg.value_model == "reward" and not same_vocab:
        raise KorlhfError(f"value_model: reward needs the reward model ({cfg.reward_model}) to use the policy's "
                          "tokenizer, and it does not; set value_model: shared (a value head on the policy)")
    return cfg.value_model == "reward" or (cfg.value_model == "auto" and same_vocab)
