"""What every training stage shares: the model fields of its config, LoRA/QLoRA, CPU/GPU settings.

Stage configs (``sft``, ``rm``, ``ppo``, ``dpo``, ``grpo``, ``rloo``) inherit `ModelFields` and
`RunFields`, so ``model_name_or_path``, the LoRA knobs and the output folder are spelled the same
everywhere and a YAML written for one stage reads naturally in the next.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from korlhf.errors import KorlhfError


@dataclass(kw_only=True)
class ModelFields:
    model_name_or_path: str = field(metadata={"help": "hub id (EleutherAI/polyglot-ko-1.3b) or local model directory"})
    template: str | None = field(default=None, metadata={
        "help": "prompt template: kochatgpt, koalpaca, chatml; default: the model's own, else kochatgpt"})
    dtype: str = field(default="auto", metadata={"help": "weights dtype: auto, float32, bfloat16, float16"})
    trust_remote_code: bool = field(default=False, metadata={"help": "allow model code from the hub repository"})
    use_lora: bool = field(default=False, metadata={"help": "train LoRA adapters (peft) instead of all weights"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling alpha"})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout"})
    lora_target_modules: list[str] = field(default_factory=lambda: ["all-linear"], metadata={
        "help": "modules that get adapters: all-linear, or names such as q_proj,v_proj / c_attn"})
    load_in_4bit: bool = field(default=False, metadata={"help": "QLoRA: 4-bit NF4 base weights (needs CUDA + bitsandbytes)"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute activations to save memory"})


@dataclass(kw_only=True)
class RunFields:
    output_dir: str = field(metadata={"help": "where the trained model, config, logs and metrics are written"})
    seed: int = field(default=42, metadata={"help": "random seed (data order, initialisation, sampling)"})
    report_to: list[str] = field(default_factory=list, metadata={"help": "loggers: tensorboard, wandb (none by default)"})


def lora_config(cfg: ModelFields, task_type: str):
    """A peft ``LoraConfig`` for ``cfg`` (None without ``use_lora``).

    ``task_type`` is ``CAUSAL_LM`` or ``SEQ_CLS``; for ``SEQ_CLS`` peft itself adds the ``score``
    head to ``modules_to_save``, so the trained head is saved inside the adapter.
    """
    if not (cfg.use_lora or cfg.load_in_4bit):
        return None
    from peft import LoraConfig

    targets = cfg.lora_target_modules
    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets[0] if targets == ["all-linear"] else targets,
        task_type=task_type,
    )


def quantization_kwargs(cfg: ModelFields) -> dict:
    """``from_pretrained`` kwargs for QLoRA, checked before anything is loaded.

    bitsandbytes 4-bit needs a CUDA GPU; on a CPU-only machine we stop with a clear message rather
    than fail deep inside model loading.
    """
    if not cfg.load_in_4bit:
        return {}
    import torch

    if not torch.cuda.is_available():
        raise KorlhfError("load_in_4bit (QLoRA) needs a CUDA GPU and none is visible; "
                          "train with --use_lora (plain LoRA) on this machine, or run on a GPU")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise KorlhfError("load_in_4bit (QLoRA) needs bitsandbytes: pip install 'korlhf[qlora]'") from None
    from transformers import BitsAndBytesConfig

    compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=compute)
    return {"quantization_config": quant}


def training_dtype(dtype: str) -> str:
    """The dtype trained weights are loaded in: float32 master weights for ``auto``, as TRL keeps them.

    Mixed precision comes from bf16=True on a GPU; "auto" would train a float16 checkpoint in
    float16, which diverges.
    """
    return "float32" if dtype == "auto" else dtype


def device_kwargs() -> dict:
    """TRL/HF TrainingArguments for this machine: bf16 on a GPU that has it, plain fp32 on a CPU.

    TRL configs default to bf16, which fails (or crawls) on a CPU, so every stage passes these.
    """
    import torch

    if torch.cuda.is_available():
        return {"bf16": torch.cuda.is_bf16_supported(), "fp16": False, "use_cpu": False}
    return {"bf16": False, "fp16": False, "use_cpu": True}


def command_line() -> str:
    """The command that started this run, for model cards and logs."""
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
