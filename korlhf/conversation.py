"""What `korlhf chat` and `korlhf serve` share: a chat model's settings and loading, a
conversation encoded with its chat template, and one streamed reply.

`stream_reply` runs ``model.generate`` in the calling thread and passes complete text pieces on
(`korlhf.streaming.IncrementalDecoder`: a Hangul syllable split across byte-level tokens never
comes out half-made, and invalid byte sequences never come out at all).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields

from korlhf.decoding import Decoding
from korlhf.errors import KorlhfError
from korlhf.streaming import StopText

# Presets whose answer can stream token by token (beam search and contrastive search cannot).
STREAMED = ("greedy", "sample", "top-k", "top-p", "typical-p", "min-p")


@dataclass(kw_only=True)
class DecodingFields:
    """Decoding flags of chat and serve: a `korlhf.decoding` preset and the knobs that change it.

    The same presets and knobs as `korlhf generate`; ``temperature: 0`` means greedy (as in
    OpenAI's API), and a temperature above 0 on the greedy preset samples.
    """

    preset: str = field(default="top-p", metadata={"help": f"decoding preset: {', '.join(STREAMED)}"})
    max_new_tokens: int = field(default=256, metadata={"help": "most tokens in one answer"})
    temperature: float | None = field(default=None, metadata={
        "help": "sampling temperature; 0 = greedy (default: the preset's, 1.0)"})
    top_p: float | None = field(default=None, metadata={"help": "nucleus sampling mass (default: the preset's)"})
    top_k: int | None = field(default=None, metadata={"help": "sample among the k most likely tokens (0 = off)"})
    min_p: float | None = field(default=None, metadata={"help": "drop tokens with p < min_p * p(top token)"})
    repetition_penalty: float | None = field(default=None, metadata={
        "help": "divide the logits of tokens already present by this (1.0 = off; 1.1-1.2 curbs loops)"})
    seed: int | None = field(default=None, metadata={"help": "random seed for sampling (reproducible answers)"})
    stop: list[str] = field(default_factory=list, metadata={"help": "stop the answer before any of these strings"})

    def __post_init__(self):
        self.decoding()  # fail at startup on bad settings, not at the first answer

    def decoding(self, **changes) -> Decoding:
        """The `Decoding` these fields describe, with ``changes`` (e.g. one request's settings) on top."""
        from korlhf.generate import decoding_from

        values = {**{f.name: getattr(self, f.name) for f in fields(DecodingFields)}, **changes}
        if values["temperature"] == 0:
            values.update(preset="greedy", temperature=None)
        elif values["temperature"] is not None and values["preset"] == "greedy":
            values["preset"] = "sample"
        if values["preset"] not in STREAMED:
            raise KorlhfError(f"preset '{values['preset']}' cannot stream its answer token by token; "
                              f"choose one of: {', '.join(STREAMED)}")
        if any(not s for s in values["stop"]):
            raise KorlhfError("stop strings must not be empty")
        return decoding_from(values)


@dataclass(kw_only=True)
class ModelArgs:
    """Which model to load and how; shared by `korlhf chat` and `korlhf serve`."""

    model: str = field(metadata={"help": "model directory (e.g. runs/demo/sft) or hub id"})
    template: str | None = field(default=None, metadata={
        "help": "chat template: kochatgpt, koalpaca, chatml; default: the model's own"})
    system: str | None = field(default=None, metadata={"help": "system message put before every conversation"})
    dtype: str = field(default="auto", metadata={"help": "weights dtype: auto, float32, bfloat16, float16"})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, cuda:1, mps; default: cuda if available"})
    trust_remote_code: bool = field(default=False, metadata={"help": "allow model code from the hub repository"})


@dataclass
class Reply:
    text: str
    finish_reason: str  # "stop" (EOS or a stop string), "length" (max_new_tokens) or "cancelled"
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    dropped: int = 0  # U+FFFD left out of the text: invalid byte sequences the model emitted


def load_model(model: str, template: str | None = None, dtype: str = "auto", device: str | None = None,
               trust_remote_code: bool = False):
    """Tokenizer and causal LM (eval mode, on ``device``) through `korlhf.models`."""
    from transformers.utils import logging as hf_logging

    from korlhf.models import default_device, load_causal_lm, load_tokenizer

    hf_logging.disable_progress_bar()  # the caller shows its own "loading" line
    tokenizer = load_tokenizer(model, template, trust_remote_code)
    lm = load_causal_lm(model, tokenizer, dtype=dtype, device=default_device(device), trust_remote_code=trust_remote_code)
    return tokenizer, lm.eval()


def context_length(model, tokenizer) -> int:
    """Most tokens (prompt + answer) the model can attend to."""
    for n in (getattr(model.config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)):
        if isinstance(n, int) and 0 < n < 10_000_000:
            return n
    return 2048


def encode(tokenizer, messages: list[dict]) -> list[int]:
    """Token ids of ``messages`` rendered with the chat template, ready for the answer.

    The template already holds every marker the model was trained with, so the tokenizer adds
    no special tokens of its own (as in PPO rollouts).
    """
    from korlhf.templates import render_prompt

    return tokenizer(render_prompt(tokenizer, messages), add_special_tokens=False, verbose=False)["input_ids"]


def stream_reply(model, tokenizer, input_ids: list[int], decoding: Decoding,
                 on_text: Callable[[str], None] | None = None, cancelled: Callable[[], bool] | None = None,
                 strip_leading: bool = True) -> Reply:
    """Generate one answer to ``input_ids``, passing complete text pieces to ``on_text`` as they come.

    Stops at the tokenizer's EOS, a stop string, ``max_new_tokens``, or when ``cancelled()`` turns
    true (a client went away). Runs ``model.generate`` in the calling thread. ``strip_leading``
    drops whitespace before the first character (off for raw text completion).
    """
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList
    from transformers.generation.streamers import BaseStreamer

    from korlhf.streaming import IncrementalDecoder

    pieces: list[str] = []

    def emit(piece: str) -> None:
        if strip_leading and not pieces:
            piece = piece.lstrip()  # templates put a space or newline before the answer; it is not content
            if not piece:
                return
        pieces.append(piece)
        if on_text:
            on_text(piece)

    sink = StopText(decoding.stop, emit)
    decoder = IncrementalDecoder(tokenizer)
    new_ids: list[int] = []

    class Streamer(BaseStreamer):
        prompt_seen = False

        def put(self, value):
            if not self.prompt_seen:  # generate first echoes the prompt
                self.prompt_seen = True
                return
            ids = value.reshape(-1).tolist()
            new_ids.extend(ids)
            sink.push(decoder.push(ids))

        def end(self):
            sink.push(decoder.flush())
            sink.finish()

    class Stop(StoppingCriteria):
        def __call__(self, ids, scores, **kwargs):
            done = sink.hit or bool(cancelled and cancelled())
            return torch.full((ids.shape[0],), done, dtype=torch.bool, device=ids.device)

    kwargs = decoding.generate_kwargs(tokenizer)
    # StopText below both cuts the text and ends generation at a stop string, so transformers'
    # own stop-string criterion (built from the whole vocabulary on every call) is not needed.
    kwargs.pop("stop_strings", None), kwargs.pop("tokenizer", None)
    criteria = StoppingCriteriaList([Stop(), *kwargs.pop("stopping_criteria", [])])
    if decoding.seed is not None:
        torch.manual_seed(decoding.seed)
    start = time.perf_counter()
    ids = torch.tensor([input_ids], device=model.device)
    with torch.inference_mode():
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), streamer=Streamer(),
                       stopping_criteria=criteria, **kwargs)
    reason = finish_reason(new_ids, decoding, tokenizer.eos_token_id, sink.hit, bool(cancelled and cancelled()))
    return Reply("".join(pieces), reason, len(input_ids), len(new_ids), time.perf_counter() - start, decoder.dropped)


def finish_reason(new_ids: list[int], decoding: Decoding, eos_id: int | None, stopped: bool, cancelled: bool) -> str:
    """Why an answer ended: "cancelled" (its client left), "stop" (EOS or a stop string) or "length"."""
    if cancelled and not stopped:
        return "cancelled"
    if stopped or (new_ids and new_ids[-1] == eos_id):
        return "stop"
    return "length" if len(new_ids) >= decoding.max_new_tokens else "stop"


