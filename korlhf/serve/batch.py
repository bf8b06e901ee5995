"""Requests answered together: one forward pass per token for every running request.

`Engine` keeps one `Batch` running: a request that arrives while others are being answered joins
it at the next token (continuous batching), and a finished one leaves it at once, so the batch
stays full while clients keep asking. The decoding loop is ours, because ``generate`` runs one
sampling setting and one random generator for the whole batch, and a request's own settings,
seed, stop strings and token budget must hold whatever it is batched with. Each row keeps:

- the logits processors ``generate`` itself would build from the request's settings, applied to
  that row's own tokens (no padding), then ``softmax`` + ``multinomial`` on a generator seeded
  with the request's seed, or ``argmax``: the same steps ``generate`` takes for a lone request,
  so a greedy or seeded answer is the one the request gets alone;
- its own streamed text (`IncrementalDecoder` + `StopText`), finish reason and counts.

Rows are left-padded; positions come from the attention mask. Joining rows are run over their
prompts together (prefill), then their key/value cache is left-padded to the running batch's
length and stacked under it; columns no running row uses any more are cut off the left.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from korlhf.conversation import Reply, finish_reason
from korlhf.decoding import Decoding
from korlhf.streaming import IncrementalDecoder, StopText


@dataclass(eq=False)  # rows are told apart by identity (the engine maps each to its request)
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
    batch = Batch(model, tokenizer)
    batch.add(rows)
    while batch:
        batch.step()
    return [row.reply for row in rows]


class Batch:
    """The running rows, their key/value cache, attention mask and next input token."""

    def __init__(self, model, tokenizer):
        import inspect

        try:
            parameters = inspect.signature(model.forward).parameters
        except (AttributeError, TypeError, ValueError) as exc:
            raise Unbatchable(f"{type(model).__name__}.forward cannot be inspected: {exc}") from exc
        if "position_ids" not in parameters:  # left padding needs explicit positions
            raise Unbatchable(f"{type(model).__name__}.forward takes no position_ids")
        # transformers 5 renamed the forward argument `past_key_values` to `cache`
        self.cache_arg = "cache" if "cache" in parameters else "past_key_values"
        self.model, self.tokenizer = model, tokenizer
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.states: list[_State] = []
        self.cache = self.mask = self.next_ids = None
        self.shared: dict = {}  # logits processors by settings (`_processors`)
        self.can_join = True  # until a cache shows it cannot be stacked (sliding-window or other layers)

    def __len__(self) -> int:
        return len(self.states)

    def add(self, rows: list[Row]) -> list[Row]:
        """Run the rows' prompts, pick their first tokens and let them join; returns the rows already done.

        Raises `Unbatchable` (nothing streamed) when a row's settings cannot be prepared here.
        """
        import torch

        try:
            states = [_State(self.model, self.tokenizer, row, self.shared) for row in rows]
        except (AttributeError, TypeError) as exc:  # private generate helpers moved in another version
            raise Unbatchable(f"{type(exc).__name__}: {exc}") from exc
        width = max(len(row.input_ids) for row in rows)
        ids = self._tensor([[self.pad] * (width - len(r.input_ids)) + r.input_ids for r in rows])
        mask = self._tensor([[0] * (width - len(r.input_ids)) + [1] * len(r.input_ids) for r in rows])
        if self.states and not self.can_join:
            raise Unbatchable("this model's cache cannot take rows while others run")
        cache, chosen = self._forward(states, ids, mask, None)
        self.can_join = self._joinable(cache)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
        if self.states:
            cache, mask, chosen = self._stack(cache, mask, chosen)
            states = self.states + states
        self.states, self.cache, self.mask, self.next_ids = states, cache, mask, chosen
        return self._leave()

    def step(self) -> list[Row]:
        """One token for every running row; returns the rows that finished with it."""
        import torch

        ids = self.next_ids.unsqueeze(-1)
        self.cache, self.next_ids = self._forward(self.states, ids, self.mask, self.cache)
        self.mask = torch.cat([self.mask, torch.ones_like(ids)], dim=-1)
        return self._leave()

    def _tensor(self, rows: list[list[int]]):
        import torch

        return torch.tensor(rows, device=self.model.device)

    def _forward(self, states, ids, mask, cache):
        """Run the model on ``ids`` ([rows, n]); each row picks its next token from the last logits."""
        import torch

        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -ids.shape[1]:]
        with torch.inference_mode():
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                             **{self.cache_arg: cache})
        cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
        logits = out.logits[:, -1].to(dtype=torch.float32)
        return cache, self._tensor([state.step(logits[n:n + 1]) for n, state in enumerate(states)])

    def _leave(self) -> list[Row]:
        """Finished rows leave (cache rows included); columns no remaining row attends to are cut."""
        done = [state for state in self.states if state.done]
        if not done:
            return []
        for state in done:
            state.finish()
        keep = [n for n, state in enumerate(self.states) if not state.done]
        self.states = [self.states[n] for n in keep]
        if not keep:
            self.cache = self.mask = self.next_ids = None
        else:
            index = self._tensor(keep)
            self.cache.batch_select_indices(index)
            self.mask, self.next_ids = self.mask[index], self.next_ids[index]
            unused = int(self.mask.any(dim=0).int().argmax())  # leading columns that are padding for every row
            if unused and self.can_join:
                for layer in self.cache.layers:
                    layer.keys, layer.values = layer.keys[..., unused:, :], layer.values[..., unused:, :]
                self.mask = self.mask[:, unused:]
        return [state.row for state in done]

    @staticmethod
    def _joinable(cache) -> bool:
        """A cache whose every layer holds plain [rows, heads, length, dim] keys and values."""
        from transformers.cache_utils import DynamicLayer

        layers = getattr(cache, "layers", None)
        return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)

    def _stack(self, cache, mask, chosen):
        """The running rows' cache over the new rows', both left-padded to the longer one."""
        import torch
        import torch.nn.functional as F

        old, new = self.mask.shape[1], mask.shape[1]
        width = max(old, new)
        for mine, theirs in zip(self.cache.layers, cache.layers, strict=True):
            for name in ("keys", "values"):
                a, b = getattr(mine, name), getattr(theirs, name)
                a = F.pad(a, (0, 0, width - old, 0))  # the cache is one column shorter than the mask
                b = F.pad(b, (0, 0, width - new, 0))
                setattr(mine, name, torch.cat([a, b], dim=0))
        mask = torch.cat([F.pad(self.mask, (width - old, 0)), F.pad(mask, (width - new, 0))], dim=0)
        return self.cache, mask, torch.cat([self.next_ids, chosen])


class _State:
    """A row's processors, random generator, streamed text and stopping rules."""

    def __init__(self, model, tokenizer, row: Row, shared: dict):
        import torch

        self.row, self.tokenizer, self.start = row, tokenizer, time.perf_counter()
        self.processors = _processors(model, tokenizer, row, shared)
        self.generator = None
        if row.decoding.do_sample:
            self.generator = torch.Generator(device=model.device)
            if row.decoding.seed is None:
                self.generator.seed()
            else:
                self.generator.manual_seed(row.decoding.seed)
        self.tokens = list(row.input_ids)  # a tensor only for processors that read them
        self.decoder = IncrementalDecoder(tokenizer)
        self.sink = StopText(row.decoding.stop, row.emit)
        self.done = False
        self.was_cancelled = False

    def step(self, logits) -> int:
        """Pick this row's next token from its logits ([1, vocab]); stream its text; mark done."""
        import torch

        scores = self.processors(logits.new_tensor([self.tokens], dtype=torch.long), logits) if self.processors else logits
        if self.generator is not None:
            token = int(torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=self.generator)[0, 0])
        else:
            token = int(torch.argmax(scores, dim=-1)[0])
        self.tokens.append(token)
        row = self.row
        row.new_ids.append(token)
        self.sink.push(self.decoder.push([token]))
        self.was_cancelled = bool(row.cancelled and row.cancelled())
        self.done = (token == self.tokenizer.eos_token_id or len(row.new_ids) >= row.decoding.max_new_tokens
                     or self.sink.hit or self.was_cancelled)
        return token

    def finish(self) -> Reply:
        row, sink = self.row, self.sink
        sink.push(self.decoder.flush())
        sink.finish()
        reason = finish_reason(row.new_ids, row.decoding, self.tokenizer.eos_token_id, sink.hit, self.was_cancelled)
        row.reply = Reply("".join(row.pieces), reason, len(row.input_ids), len(row.new_ids),
                          time.perf_counter() - self.start, self.decoder.dropped)
        return row.reply


# Processors that keep no state and read nothing but the scores and the row's tokens: one list of
# them serves every request with the same settings (building one costs about a millisecond).
SHAREABLE = {"TemperatureLogitsWarper", "TopKLogitsWarper", "TopPLogitsWarper", "TypicalLogitsWarper",
             "MinPLogitsWarper", "RepetitionPenaltyLogitsProcessor", "NoRepeatNGramLogitsProcessor"}


def _processors(model, tokenizer, row: Row, shared: dict):
    """The logits processors ``generate`` builds for this request's settings (temperature, top-k/p,
    typical-p, min-p, repetition penalty, ...), from transformers' own builder so they match.

    ``shared`` holds the lists that other requests with the same settings can use as they are."""
    kwargs = row.decoding.generate_kwargs(tokenizer)
    for name in ("stop_strings", "tokenizer", "stopping_criteria", "max_new_tokens"):
        kwargs.pop(name, None)
    key = repr(sorted(kwargs.items()))
    if key in shared:
        return shared[key]
    config, _ = model._prepare_generation_config(None, **kwargs)
    model._prepare_special_tokens(config, True, device=model.device)
    import torch

    prompt = torch.tensor([row.input_ids], device=model.device)
    processors = model._get_logits_processor(generation_config=config, input_ids_seq_length=len(row.input_ids),
                                             encoder_input_ids=prompt, prefix_allowed_tokens_fn=None,
                                             logits_processor=None, device=model.device, model_kwargs={})
    if all(type(p).__name__ in SHAREABLE for p in processors):
        shared[key] = processors
    return processors
