"""Korean-safe incremental detokenization for streamed output.

A byte-level BPE token can end inside a Hangul syllable (3 UTF-8 bytes), so decoding tokens one
at a time prints U+FFFD. `IncrementalDecoder` decodes the whole pending run and holds back text
while it ends in an incomplete character. transformers' TextStreamer waits for spaces instead,
which stalls Korean output, so this small piece is ours. `StopText` cuts the text before a stop
string. Chat and serve stream through both.
"""

from __future__ import annotations

from collections.abc import Callable

REPLACEMENT = "\ufffd"


class IncrementalDecoder:
    """Feed token ids, get back only text that is complete, never U+FFFD.

    A tail that ends in an incomplete character is held back until its other bytes come; a byte
    sequence that can never be valid (sampled models emit them) is dropped and counted in
    ``dropped``, since a terminal or chat page must not show U+FFFD.

    >>> dec = IncrementalDecoder(tokenizer)
    >>> for token_id in ids: print(dec.push(token_id), end="")
    >>> print(dec.flush())
    """

    def __init__(self, tokenizer, skip_special_tokens: bool = True):
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self.ids: list[int] = []
        self.emitted = 0  # characters of decode(self.ids) already returned (or dropped)
        self.dropped = 0  # U+FFFD characters left out: invalid byte sequences

    def push(self, token_ids: int | list[int]) -> str:
        self.ids.extend([token_ids] if isinstance(token_ids, int) else token_ids)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=self.skip_special_tokens)
        if text.endswith(REPLACEMENT):
            return ""  # the last character is still incomplete: wait for its other bytes
        return self._take(text)

    def flush(self) -> str:
        """Whatever is left at the end of the stream (an incomplete tail is dropped)."""
        return self._take(self.tokenizer.decode(self.ids, skip_special_tokens=self.skip_special_tokens))

    def _take(self, text: str) -> str:
        new = text[self.emitted:]
        self.emitted = len(text)
        self.dropped += new.count(REPLACEMENT)
        return new.replace(REPLACEMENT, "")


class StopText:
    """Cuts the streamed text before the first stop string, holding back a tail that might begin one.

    Written here because transformers' ``stop_strings`` stop generation but leave the stop string
    in the output, and a streamed client must never see it.
    """

    def __init__(self, stops: list[str], emit: Callable[[str], None]):
        self.stops, self.emit = stops, emit
        self.text = ""  # everything decoded so far
        self.sent = 0  # characters of self.text passed to emit
        self.hit = False

    def push(self, piece: str) -> None:
        if self.hit or not piece:
            return
        start = max(0, self.sent - max((len(s) for s in self.stops), default=0))
        self.text += piece
        cuts = [i for i in (self.text.find(s, start) for s in self.stops) if i >= 0]
        if cuts:
            self.hit = True
            self.text = self.text[:min(cuts)]
            self._send(len(self.text))
            return
        hold = max((k for s in self.stops for k in range(1, len(s)) if self.text.endswith(s[:k])), default=0)
        self._send(len(self.text) - hold)

    def finish(self) -> None:
        if not self.hit:
            self._send(len(self.text))

    def _send(self, upto: int) -> None:
        if upto > self.sent:
            self.emit(self.text[self.sent:upto])
            self.sent = upto
