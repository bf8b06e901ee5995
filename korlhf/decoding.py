"""Decoding settings with named presets, and contrastive search (which transformers 5 no longer ships).

`Decoding` is the one description of "how to decode" that `korlhf generate`, `korlhf eval sweep`,
the labelling stage and the pipeline share. It maps onto ``model.generate`` keyword arguments
(`Decoding.generate_kwargs`), and ``asdict(decoding)`` is what every output line records as its
exact settings.

>>> Decoding.from_preset("top-p", top_p=0.95, max_new_tokens=64, seed=1)

Presets (`PRESETS`; any field can be overridden):

- ``greedy``        the most likely token each step; deterministic.
- ``beam``          beam search, 4 beams: the highest-scoring beam (sum of log-probs / length**length_penalty).
- ``beam-sampling`` beam search whose candidates are sampled (top-k 50).
- ``sample``        pure ancestral sampling from the model's distribution (temperature 1, nothing cut).
- ``top-k``         sample among the 50 most likely tokens (Fan et al. 2018).
- ``top-p``         nucleus sampling, smallest set with probability >= 0.9 (Holtzman et al. 2020).
- ``typical-p``     locally typical sampling, mass 0.95 (Meister et al. 2023).
- ``min-p``         keep tokens with p >= 0.1 * p(most likely) (Nguyen et al. 2024).
- ``contrastive``   contrastive search, k=4, alpha=0.6 (Su et al. 2022), run by `contrastive_search`.

Temperature, repetition_penalty and no_repeat_ngram_size combine with any preset; stop strings end a
response early. transformers 5 moved contrastive search to a hub repository that executes remote code;
korlhf needs no hub at run time, so `contrastive_search` implements it here, plugged into
``model.generate(custom_generate=...)`` so transformers still prepares inputs, logits processors and
stopping criteria (EOS, stop strings, max_new_tokens).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

PRESETS: dict[str, dict] = {
    "greedy": {},
    "beam": {"num_beams": 4, "early_stopping": True},
    "beam-sampling": {"num_beams": 4, "early_stopping": True, "do_sample": True, "top_k": 50},
    "sample": {"do_sample": True},
    "top-k": {"do_sample": True, "top_k": 50},
    "top-p": {"do_sample": True, "top_p": 0.9},
    "typical-p": {"do_sample": True, "typical_p": 0.95},
    "min-p": {"do_sample": True, "min_p": 0.1},
    "contrastive": {"penalty_alpha": 0.6, "top_k": 4},
}


@dataclass
class Decoding:
    """How to decode. Defaults are greedy decoding; 0 / 1.0 mean "off" for the filters."""

    preset: str = "greedy"
    max_new_tokens: int = 128
    do_sample: bool = False
    num_beams: int = 1
    length_penalty: float = 1.0
    early_stopping: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    typical_p: float = 1.0
    min_p: float = 0.0
    penalty_alpha: float = 0.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    num_return_sequences: int = 1
    seed: int | None = 0
    stop: list[str] = field(default_factory=list)

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"unknown decoding preset {self.preset!r}; choose one of: {', '.join(PRESETS)}")
        checks = [
            (self.max_new_tokens >= 1, "max_new_tokens must be at least 1"),
            (self.num_beams >= 1, "num_beams must be at least 1"),
            (self.temperature > 0, "temperature must be > 0 (use the greedy preset for temperature 0)"),
            (self.top_k >= 0, "top_k must be >= 0 (0 = off)"),
            (0 < self.top_p <= 1, "top_p must be in (0, 1]"),
            (0 < self.typical_p <= 1, "typical_p must be in (0, 1]"),
            (0 <= self.min_p < 1, "min_p must be in [0, 1)"),
            (0 <= self.penalty_alpha <= 1, "penalty_alpha must be in [0, 1]"),
            (self.repetition_penalty > 0, "repetition_penalty must be > 0 (1.0 = off)"),
            (self.num_return_sequences >= 1, "num_return_sequences must be at least 1"),
            # transformers' set_seed also seeds numpy, which takes 0 .. 2**32 - 1 only
            (self.seed is None or 0 <= self.seed < 2**32, "seed must be between 0 and 4294967295 (2**32 - 1)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        if self.contrastive:
            if self.do_sample or self.num_beams > 1 or self.top_k < 2:
                raise ValueError("contrastive search needs do_sample=false, num_beams=1 and top_k >= 2 candidates")
        if not self.do_sample and self.num_return_sequences > max(self.num_beams, 1):
            raise ValueError(f"num_return_sequences={self.num_return_sequences} needs sampling or at least that many "
                             "beams: deterministic decoding returns the same answer every time")
        if isinstance(self.stop, str):
            self.stop = [self.stop]

    @classmethod
    def from_preset(cls, name: str = "greedy", **overrides) -> Decoding:
        """The preset's settings, then ``overrides`` (``None`` values are ignored)."""
        if name not in PRESETS:
            raise ValueError(f"unknown decoding preset {name!r}; choose one of: {', '.join(PRESETS)}")
        values = {**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}}
        return cls(preset=name, **values)

    @property
    def contrastive(self) -> bool:
        return self.penalty_alpha > 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def generate_kwargs(self, tokenizer) -> dict:
        """Keyword arguments for ``model.generate``: every knob explicit, EOS/pad from ``tokenizer``.

        Sampling knobs are always passed when sampling, so a model's own ``generation_config.json``
        (often ``top_k=50, temperature=0.6``) never silently changes what the preset claims.
        """
        kwargs = {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": self.do_sample,
            "num_beams": self.num_beams,
            "num_return_sequences": self.num_return_sequences,
            "repetition_penalty": self.repetition_penalty,
            "no_repeat_ngram_size": self.no_repeat_ngram_size,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        }
        if self.num_beams > 1:
            kwargs.update(length_penalty=self.length_penalty, early_stopping=self.early_stopping)
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p,
                          typical_p=self.typical_p, min_p=self.min_p)
        if self.contrastive:
            kwargs.update(custom_generate=contrastive_search, penalty_alpha=self.penalty_alpha,
                          contrastive_top_k=self.top_k)
        if self.stop and self.contrastive:
            # transformers 5.23 drops the tokenizer kwarg on the way to a custom decoding loop, so the
            # stop-string criterion is built here instead of from stop_strings=.
            from transformers import StoppingCriteriaList, StopStringCriteria

            kwargs["stopping_criteria"] = StoppingCriteriaList([StopStringCriteria(tokenizer, list(self.stop))])
        elif self.stop:
            kwargs.update(stop_strings=list(self.stop), tokenizer=tokenizer)
        return kwargs


def contrastive_search(model, input_ids, logits_processor, stopping_criteria, generation_config,
                       synced_gpus=False, streamer=None, penalty_alpha: float = 0.6, contrastive_top_k: int = 4,
                       **model_kwargs):
    """Contrastive search (Su et al. 2022), as a ``custom_generate`` decoding loop.

    Each step takes the ``k`` most likely next tokens v (after logits processors) and picks
    ``argmax_v (1 - alpha) * p(v | x) - alpha * max_j cos(h_v, h_j)``, where ``h`` are last-layer
    hidden states and j runs over every earlier non-pad position (prompt included).
    input_ids: (B, T) left-padded; returns (B, T + new) token ids, pad after a row finishes.
    Written here because transformers 5 moved it to a hub repo; it recomputes the full sequence
    each step (no KV cache): O(T^2), exact and short, fine for evaluation-sized outputs.
    """
    import inspect

    import torch

    if streamer is not None:
        raise ValueError("contrastive search in korlhf does not stream; use another preset to stream")
    k, alpha = contrastive_top_k, penalty_alpha
    attention_mask = model_kwargs.get("attention_mask")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    takes_positions = "position_ids" in inspect.signature(model.forward).parameters
    pad_id = generation_config.pad_token_id if generation_config.pad_token_id is not None else 0
    batch = input_ids.shape[0]
    unfinished = torch.ones(batch, dtype=torch.bool, device=input_ids.device)

    def forward(ids, mask):
        extra = {"position_ids": (mask.cumsum(-1) - 1).clamp(min=0)} if takes_positions else {}
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False, **extra)
        return out.logits[:, -1, :].float(), out.hidden_states[-1].float()

    logits, _ = forward(input_ids, attention_mask)
    rows = torch.arange(batch, device=input_ids.device)
    while True:
        probs = torch.softmax(logits_processor(input_ids, logits), dim=-1)
        top_probs, top_ids = probs.topk(k, dim=-1)                                    # (B, k)
        cand_ids = torch.cat([input_ids.repeat_interleave(k, 0), top_ids.reshape(-1, 1)], dim=1)
        cand_mask = torch.cat([attention_mask.repeat_interleave(k, 0), attention_mask.new_ones(batch * k, 1)], 1)
        cand_logits, hidden = forward(cand_ids, cand_mask)                            # (B*k, V), (B*k, T+1, H)
        cos = torch.nn.functional.cosine_similarity(hidden[:, -1:, :], hidden[:, :-1, :], dim=-1)  # (B*k, T)
        cos = cos.masked_fill(cand_mask[:, :-1] == 0, float("-inf"))
        degeneration = cos.max(dim=-1).values.view(batch, k)
        best = ((1 - alpha) * top_probs - alpha * degeneration).argmax(dim=-1)        # (B,)
        next_tokens = torch.where(unfinished, top_ids[rows, best], torch.full_like(best, pad_id))
        input_ids = torch.cat([input_ids, next_tokens[:, None]], dim=1)
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(batch, 1)], dim=1)
        logits = cand_logits[rows * k + best]
        unfinished &= ~stopping_criteria(input_ids, None)
        if not bool(unfinished.any()):
            return input_ids
