"""Position ids from the attention mask, for trainers that score left-padded batches without them.

TRL's GRPOTrainer and RLOOTrainer call the policy and the reference model with ``input_ids`` and
``attention_mask`` only, so the model numbers positions 0..L-1 from the first *pad* column, while
``generate`` numbered them from each row's first real token. On absolute-position models (GPT-2,
the tiny test models) the log-probs trained on then differ from those sampled from (0.94
nats/token measured), and the KL and ratio are computed against the wrong distribution.
`use_mask_positions` makes those calls use the same position ids as ``generate`` and korlhf's PPO
(`korlhf.train.rl.rollout.Rollout.model_inputs`).
"""

from __future__ import annotations

import inspect

HOOKED = "_korlhf_mask_positions"


def mask_position_ids(attention_mask, length: int | None = None):
    """Position of each token among its row's real tokens (pads before them get 0). (B, L) -> (B, length).

    ``length`` keeps the last columns: with a KV cache the mask covers past + new tokens while the
    input holds only the new ones.
    """
    positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    return positions if length is None else positions[:, -length:]


def _fill_position_ids(module, args: tuple, kwargs: dict):
    """Forward pre-hook: derive missing ``position_ids`` from ``attention_mask``; leave given ones alone."""
    mask = kwargs.get("attention_mask")
    if kwargs.get("position_ids") is not None or mask is None or mask.dim() != 2:
        return None
    inputs = kwargs.get("input_ids")
    if inputs is None:
        inputs = kwargs.get("inputs_embeds")
    if inputs is None and args:
        inputs = args[0]
    length = inputs.shape[1] if inputs is not None else None
    return args, {**kwargs, "position_ids": mask_position_ids(mask, length)}


def causal_lm(model):
    """The transformers model under DDP / DeepSpeed (``.module``) and PEFT (``get_base_model``) wrappers."""
    model = getattr(model, "module", model)
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def use_mask_positions(model) -> bool:
    """Register `_fill_position_ids` on ``model``'s causal LM (once). -> whether the hook is (now) active.

    The hook sits on the transformers model itself, so it also fires under PEFT (LoRA calls the
    base model through ``__call__``), with adapters disabled (the LoRA reference), and in
    ``generate`` (whose steps pass position ids already, so nothing changes there). Models whose
    forward takes no ``position_ids`` are left as they are.
    """
    lm = causal_lm(model)
    if getattr(lm, HOOKED, False):
        return True
    if "position_ids" not in inspect.signature(type(lm).forward).parameters:
        return False
    lm.register_forward_pre_hook(_fill_position_ids, with_kwargs=True)
    setattr(lm, HOOKED, True)
    return True
