"""Load tokenizers, causal LMs and reward models from a hub id or a local path.

Every stage (training, generation, evaluation, labelling, chat, serving) loads models through
these three functions, so a tiny local model built by `korlhf.tiny` and a hub model such as
``EleutherAI/polyglot-ko-1.3b`` take exactly the same path. A directory holding a peft adapter
(``adapter_config.json``) is loaded as its base model plus the adapter.
"""

from __future__ import annotations

import json
from pathlib import Path

from korlhf.errors import KorlhfError
from korlhf.hub import locate
from korlhf.templates import prepare_tokenizer

ADAPTER_CONFIG = "adapter_config.json"


def default_device(device: str | None = None) -> str:
    """``device`` if given, else the GPU when there is one, else the CPU: every command chooses this way."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def context_size(name_or_path: str | Path, trust_remote_code: bool = False) -> int | None:
    """Positions the model can attend to, from its config alone (no weights); None if unknown.

    Read before a stage loads anything, so a max_length the model cannot take is caught at once
    (GPT-2's learned positions fail deep inside the embedding with an IndexError otherwise).
    """
    from transformers import AutoConfig

    path = str(name_or_path)
    base = adapter_base(path) if is_adapter_dir(path) else path
    try:  # through `locate`, as the model load: an unreachable hub costs no minute of retries here
        config = AutoConfig.from_pretrained(base, trust_remote_code=trust_remote_code, **locate(base))
    except (KorlhfError, OSError, ValueError):
        return None  # loading the model says what is wrong with the path
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def is_adapter_dir(name_or_path: str | Path) -> bool:
    return (Path(name_or_path) / ADAPTER_CONFIG).is_file()


def adapter_base(name_or_path: str | Path) -> str:
    """The base model an adapter directory was trained on."""
    config = json.loads((Path(name_or_path) / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    return config["base_model_name_or_path"]


def load_tokenizer(name_or_path: str | Path, template: str | None = None, trust_remote_code: bool = False):
    """A tokenizer with a pad token distinct from EOS and a chat template (a named one if given).

    A saved korlhf model keeps its template in ``tokenizer_config.json``, so later stages pass
    ``template=None`` and get the one the model was trained with.
    """
    from transformers import AutoTokenizer

    where = locate(name_or_path, "tokenizer")  # a mistyped folder or an unreachable hub: one message, at once
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(name_or_path), trust_remote_code=trust_remote_code, **where)
    except (OSError, ValueError) as exc:
        raise KorlhfError(_not_found(name_or_path, "tokenizer", exc)) from None
    prepare_tokenizer(tokenizer, template)
    return tokenizer


def load_causal_lm(name_or_path: str | Path, tokenizer=None, dtype: str = "auto", device: str | None = None,
                   trust_remote_code: bool = False, merge_adapter: bool = True, **kwargs):
    """A causal LM whose embeddings cover ``tokenizer`` (grown if a pad token was added).

    ``dtype``: ``auto`` (the checkpoint's own), ``float32``, ``bfloat16`` or ``float16``.
    An adapter directory is loaded on its base; ``merge_adapter`` folds it into the weights.
    """
    from transformers import AutoModelForCausalLM

    model = _load(AutoModelForCausalLM, name_or_path, dtype, trust_remote_code, merge_adapter, **kwargs)
    _match_tokenizer(model, tokenizer)
    return model.to(device) if device else model


def load_reward_model(name_or_path: str | Path, tokenizer=None, dtype: str = "auto", device: str | None = None,
                      trust_remote_code: bool = False, new_head: bool = False, merge_adapter: bool = True,
                      **kwargs):
    """A sequence-classification model with one output (the reward), with its trained head.

    With a LoRA reward model the head is saved in the adapter (``modules_to_save``); loading
    base + adapter restores it. Transformers warns about a freshly initialised ``score`` head
    when the checkpoint has none; we refuse that case instead, because a random head silently
    ruins PPO (the original KoChatGPT pipeline lost its trained head exactly this way).
    ``new_head=True`` is for starting a reward model from an SFT/base model, where it is expected.
    ``merge_adapter=False`` keeps a LoRA adapter separate: scores then equal the trained model's
    bit for bit (merging reorders float sums, ~1e-7 apart).
    """
    from transformers import AutoModelForSequenceClassification

    kwargs.setdefault("num_labels", 1)
    model = _load(AutoModelForSequenceClassification, name_or_path, dtype, trust_remote_code, merge_adapter,
                  output_loading_info=True, **kwargs)
    model, info = model
    missing = [k for k in info.get("missing_keys", []) if k.split(".")[0] in ("score", "classifier", "v_head")]
    if missing and not new_head:
        raise KorlhfError(
            f"{name_or_path} has no trained reward head ({', '.join(missing)} would be randomly initialised); "
            "train one with `korlhf train rm` and pass its output directory"
        )
    _match_tokenizer(model, tokenizer)
    return model.to(device) if device else model


def _load(auto_cls, name_or_path, dtype, trust_remote_code, merge_adapter, output_loading_info=False, **kwargs):
    import torch

    torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
    path = str(name_or_path)
    locate(path)
    base = adapter_base(path) if is_adapter_dir(path) else path
    kwargs = {**locate(base), **kwargs}
    try:
        loaded = auto_cls.from_pretrained(base, dtype=torch_dtype, trust_remote_code=trust_remote_code,
                                          output_loading_info=output_loading_info, **kwargs)
    except (OSError, ValueError) as exc:
        raise KorlhfError(_not_found(base, "model", exc)) from None
    model, info = loaded if output_loading_info else (loaded, {})
    if base != path:
        from peft import PeftModel

        # A tokenizer that gained a pad token grew the embeddings before training, and peft saved the
        # grown matrices with the adapter: the base must have that size before the adapter goes on.
        _grow_embeddings(model, _adapter_vocab_size(path))
        model = PeftModel.from_pretrained(model, path, config=_adapter_config(path, model))
        info = {}  # the adapter carries the head (modules_to_save)
        if merge_adapter:
            model = model.merge_and_unload()
    return (model, info) if output_loading_info else model


def _adapter_config(path: str, model):
    """The adapter's peft config, for the model it goes on.

    An SFT (causal-LM) adapter under a reward model is how `korlhf train rm` starts from a LoRA
    SFT model: its layers apply, its task does not (peft's causal-LM wrapper needs generation
    methods a classification model lacks, GPT-NeoX's among them), so it goes on as a plain adapter.
    """
    from peft import PeftConfig

    config = PeftConfig.from_pretrained(path)
    if str(config.task_type) in ("CAUSAL_LM", "TaskType.CAUSAL_LM") and not hasattr(model, "generate"):
        config.task_type = None
    return config


def _adapter_vocab_size(path: str) -> int:
    """Rows of the embedding matrix saved with an adapter (0 if it saved none)."""
    from safetensors import safe_open

    weights = Path(path) / "adapter_model.safetensors"
    if not weights.is_file():
        return 0
    with safe_open(str(weights), framework="pt") as f:
        names = [k for k in f.keys() if k.endswith(("embed_tokens.weight", "wte.weight", "embed_in.weight"))]
        return f.get_slice(names[0]).get_shape()[0] if names else 0


def _grow_embeddings(model, size: int) -> None:
    if size > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(size)


def _match_tokenizer(model, tokenizer) -> None:
    """Grow embeddings for added tokens and take pad/EOS ids from the tokenizer, never hard-coded."""
    if tokenizer is None:
        return
    _grow_embeddings(model, len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    generation_config = getattr(model, "generation_config", None)
    if generation_config is not None:
        generation_config.pad_token_id = tokenizer.pad_token_id
        generation_config.eos_token_id = tokenizer.eos_token_id


def _not_found(name_or_path, what: str, exc: Exception) -> str:
    text = str(name_or_path)
    if not Path(text).exists() and (text.startswith(("/", ".", "~")) or text.count("/") > 1):
        return f"could not load the {what}: {text} does not exist (give a local model directory or a hub id)"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (
        f"could not load the {what} from {name_or_path!s}: {first}. Pass a local directory saved with "
        "save_pretrained or a hub id; with HF_HUB_OFFLINE=1 only models already in the local cache load"
    )
