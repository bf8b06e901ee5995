"""Several requests answered together: one forward pass per token for the whole batch.

`Engine` sends the requests that waited while a batch ran as the next batch; a request alone
still goes through `korlhf.conversation.stream_reply` (``model.generate``). Here the decoding loop is
ours, because ``generate`` runs one sampling setting and one random generator for the whole batch,
and a request's own settings, seed, stop strings and token budget must hold whatever it is
batched with. Each row keeps:

- the logits processors ``generate`` itself would build from the request's settings, applied to
  that row's own tokens (no padding), then ``softmax`` + ``multinomial`` on a generator seeded
  with the request's seed, or ``argmax``: the same steps ``generate`` takes for a lone request,
  so a greedy or seeded answer is the one the request gets alone;
- its own streamed text (`IncrementalDecoder` + `StopText`), finish reason and counts.

Prompts are left-padded; positions come from the attention mask. Finished rows leave the batch
(their cache rows are dropped), so a short answer does not cost the others anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from korlhf.conversation import Reply
from korlhf.decoding import Decoding
from korlhf.streaming import IncrementalDecoder, StopText


@dataclass
class Row:
    """One request in a batch and its decoding state."""

    input_ids: list[int]
    decoding: Decoding
    on_text: Callable[[str], None] | None = None
    cancelled: Callable[[], bool] | None = None
    strip_leading: bool = True
    new_ids: list[int] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)
    reply: Reply | None = None

    def emit(self, piece: str) -> None:
        if self.strip_leading and not self.pieces:
            piece = piece.lstrip()  # as stream_reply: the space or newline before an answer is not content
            if not piece:
                return
        self.pieces.append(piece)
        if self.on_text:
            self.on_text(piece)


class Unbatchable(Exception):
    """The model or this transformers version does not offer what batching needs; nothing was sent yet."""


def batch_replies(model, tokenizer, rows: list[Row]) -> list[Reply]:
    """Generate every row's answer in one batch; each row's text streams to its ``on_text``.

    Raises `Unbatchable` before any text is streamed when the batch cannot be set up.
    """
    import inspect

    import torch

    start = time.perf_counter()
    try:
        states = [_State(model, tokenizer, row) for row in rows]
    except (AttributeError, TypeError) as exc:  # private generate helpers moved in another version
        raise Unbatchable(f"{type(exc).__name__}: {exc}") from exc
    parameters = inspect.signature(model.forward).parameters
    if "position_ids" not in parameters:  # left padding needs explicit positions
        raise Unbatchable(f"{type(model).__name__}.forward takes no position_ids")
    # transformers 5 renamed the forward argument `past_key_values` to `cache`
    cache_arg = "cache" if "cache" in parameters else "past_key_values"
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    width = max(len(row.input_ids) for row in rows)
    ids = torch.tensor([[pad] * (width - len(r.input_ids)) + r.input_ids for r in rows], device=model.device)
    mask = torch.tensor([[0] * (width - len(r.input_ids)) + [1] * len(r.input_ids) for r in rows],
                        device=model.device)
    active = list(range(len(rows)))
    cache = None
    with torch.inference_mode():
        while active:
            positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -ids.shape[1]:]
            out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **{cache_arg: cache})
            cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
            logits = out.logits[:, -1].to(dtype=torch.float32)
            chosen = [states[i].step(logits[n:n + 1]) for n, i in enumerate(active)]
            keep = [n for n, i in enumerate(active) if not states[i].done]
            if len(keep) < len(active):  # finished rows leave the batch, cache rows included
                if not keep:
                    break
                index = torch.tensor(keep, device=model.device)
                cache.batch_select_indices(index)
                mask, chosen, active = mask[index], [chosen[n] for n in keep], [active[n] for n in keep]
            ids = torch.tensor([[t] for t in chosen], device=model.device)
            mask = torch.cat([mask, torch.ones_like(ids)], dim=-1)
    seconds = time.perf_counter() - start
    return [state.finish(seconds) for state in states]


class _State:
    """A row's processors, random generator, streamed text and stopping rules."""

    def __init__(self, model, tokenizer, row: Row):
        import torch

        self.row, self.tokenizer = row, tokenizer
        self.processors = _processors(model, tokenizer, row)
        self.generator = None
        if row.decoding.do_sample:
            self.generator = torch.Generator(device=model.device)
            if row.decoding.seed is None:
                self.generator.seed()
            else:
                self.generator.manual_seed(row.decoding.seed)
        self.tokens = torch.tensor([row.input_ids], device=model.device)
        self.decoder = IncrementalDecoder(tokenizer)
        self.sink = StopText(row.decoding.stop, row.emit)
        self.done = False
        self.was_cancelled = False

    def step(self, logits) -> int:
        """Pick this row's next token from its logits ([1, vocab]); stream its text; mark done."""
        import torch

        scores = self.processors(self.tokens, logits)
        if self.generator is not None:
            token = int(torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=self.generator)[0, 0])
        else:
            token = int(torch.argmax(scores, dim=-1)[0])
        self.tokens = torch.cat([self.tokens, self.tokens.new_tensor([[token]])], dim=-1)
        row = self.row
        row.new_ids.append(token)
        self.sink.push(self.decoder.push([token]))
        self.was_cancelled = bool(row.cancelled and row.cancelled())
        self.done = (token == self.tokenizer.eos_token_id or len(row.new_ids) >= row.decoding.max_new_tokens
                     or self.sink.hit or self.was_cancelled)
        return token

    def finish(self, seconds: float) -> Reply:
        row, sink = self.row, self.sink
        sink.push(self.decoder.flush())
        sink.finish()
        if self.was_cancelled and not sink.hit:
            reason = "cancelled"
        elif sink.hit or (row.new_ids and row.new_ids[-1] == self.tokenizer.eos_token_id):
            reason = "stop"
        else:
            reason = "length" if len(row.new_ids) >= row.decoding.max_new_tokens else "stop"
        row.reply = Reply("".join(row.pieces), reason, len(row.input_ids), len(row.new_ids), seconds,
                          self.decoder.dropped)
        return row.reply


def _processors(model, tokenizer, row: Row):
    """The logits processors ``generate`` builds for this request's settings (temperature, top-k/p,
    typical-p, min-p, repetition penalty, ...), from transformers' own builder so they match."""
    kwargs = row.decoding.generate_kwargs(tokenizer)
    for name in ("stop_strings", "tokenizer", "stopping_criteria", "max_new_tokens"):
        kwargs.pop(name, None)
    config, _ = model._prepare_generation_config(None, **kwargs)
    model._prepare_special_tokens(config, True, device=model.device)
    import torch

    prompt = torch.tensor([row.input_ids], device=model.device)
    return model._get_logits_processor(generation_config=config, input_ids_seq_length=len(row.input_ids),
                                       encoder_input_ids=prompt, prefix_allowed_tokens_fn=None,
                                       logits_processor=None, device=model.device, model_kwargs={})
