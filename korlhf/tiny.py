"""Tiny local Korean models for tests and the demo: no hub, no downloads.

A byte-level BPE tokenizer trained with `tokenizers` on Korean text, and tiny GPT-2 / Llama causal
LMs and a sequence-classification reward model, saved with `save_pretrained`. Everything else in
korlhf loads them back with `from_pretrained(path)`, the same call a user makes with a hub id such
as ``EleutherAI/polyglot-ko-1.3b``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from korlhf.templates import prepare_tokenizer

TEMPLATE_MARKUP = ["### Instruction(명령어):\n{prompt}\n\n### Response(응답):", "### 질문: {prompt}\n\n### 답변:",
                   "<|im_start|>user\n", "<|im_start|>assistant\n", "<|im_end|>\n"]
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>", "<|im_start|>", "<|im_end|>"]


@dataclass
class TinySize:
    """Dimensions of a tiny model; the defaults train in seconds on a laptop CPU."""

    hidden: int = 64
    layers: int = 2
    heads: int = 4
    max_positions: int = 512


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4000, template: str = "kochatgpt"):
    """Train a byte-level BPE tokenizer on ``texts`` and wrap it as a transformers fast tokenizer.

    Byte-level BPE can encode any string (no <unk> in practice); a Hangul syllable is 3 UTF-8
    bytes, so a token may end inside a character, which is why decoding goes through
    `korlhf.generate`'s streamer rather than per-token `decode`.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # The template markup is in every example, so it should be a few tokens, not dozens.
    markup = [t.replace("{prompt}", "") for t in TEMPLATE_MARKUP] * 50
    backend.train_from_iterator(itertools.chain(texts, markup), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        model_max_length=TinySize.max_positions,
        padding_side="right",
    )
    prepare_tokenizer(tokenizer, template)
    return tokenizer


def build_causal_lm(tokenizer, arch: str = "gpt2", size: TinySize | None = None, seed: int = 0):
    """A randomly initialised tiny causal LM whose special ids match ``tokenizer``."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(_model_config(tokenizer, arch, size or TinySize()))


def build_reward_model(tokenizer, arch: str = "gpt2", size: TinySize | None = None, seed: int = 0):
    """A tiny ``AutoModelForSequenceClassification`` with one output: the reward."""
    import torch
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)
    config = _model_config(tokenizer, arch, size or TinySize())
    config.num_labels = 1
    return AutoModelForSequenceClassification.from_config(config)


ARCHS = ("gpt2", "llama", "gpt_neox", "qwen2")


def _model_config(tokenizer, arch: str, size: TinySize):
    from transformers import GPT2Config, GPTNeoXConfig, LlamaConfig, Qwen2Config

    ids = dict(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    if arch == "gpt2":
        return GPT2Config(
            n_embd=size.hidden, n_layer=size.layers, n_head=size.heads, n_positions=size.max_positions, **ids
        )
    if arch == "llama":
        return LlamaConfig(
            hidden_size=size.hidden,
            intermediate_size=size.hidden * 4,
            num_hidden_layers=size.layers,
            num_attention_heads=size.heads,
            num_key_value_heads=size.heads,
            max_position_embeddings=size.max_positions,
            tie_word_embeddings=True,
            **ids,
        )
    if arch == "gpt_neox":  # polyglot-ko's architecture
        return GPTNeoXConfig(hidden_size=size.hidden, intermediate_size=size.hidden * 4, num_hidden_layers=size.layers,
                             num_attention_heads=size.heads, max_position_embeddings=size.max_positions,
                             rotary_pct=0.5, use_parallel_residual=True, tie_word_embeddings=False, **ids)
    if arch == "qwen2":
        return Qwen2Config(hidden_size=size.hidden, intermediate_size=size.hidden * 4, num_hidden_layers=size.layers,
                           num_attention_heads=size.heads, num_key_value_heads=size.heads,
                           max_position_embeddings=size.max_positions, tie_word_embeddings=True, **ids)
    raise ValueError(f"unknown tiny architecture {arch!r}; choose {', '.join(ARCHS)}")


def save_tiny(out_dir: str | Path, texts: Iterable[str], arch: str = "gpt2", kind: str = "causal",
              vocab_size: int = 4000, size: TinySize | None = None, template: str = "kochatgpt",
              tokenizer=None, seed: int = 0) -> Path:
    """Build a tokenizer (unless given) and a tiny model, and save both to ``out_dir``.

    ``kind`` is ``causal`` (a policy / SFT model) or ``reward`` (a reward model). Returns the path,
    ready for ``from_pretrained``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if tokenizer is None:
        tokenizer = train_tokenizer(texts, vocab_size=vocab_size, template=template)
    build = build_causal_lm if kind == "causal" else build_reward_model
    model = build(tokenizer, arch, size, seed)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
