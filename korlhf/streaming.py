"""Korean-safe incremental detokenization for streamed output.

A byte-level BPE token can end inside a Hangul syllable (3 UTF-8 bytes), so decoding tokens one
at a time prints U+FFFD. `IncrementalDecoder` decodes the whole pending run and holds back text
while it ends in an incomplete character. transformers' TextStreamer waits for spaces instead,
which stalls Korean output, so this small piece is ours.
"""

from __future__ import annotations

REPLACEMENT = "\ufffd"


class IncrementalDecoder:
    """Feed token ids, get back only text that is complete.

    >>> dec = IncrementalDecoder(tokenizer)
    >>> for token_id in ids: print(dec.push(token_id), end="")
    >>> print(dec.flush())
    """

    def __init__(self, tokenizer, skip_special_tokens: bool = True):
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self.ids: list[int] = []
        self.emitted = 0  # characters of decode(self.ids) already returned

    def push(self, token_ids: int | list[int]) -> str:
        self.ids.extend([token_ids] if isinstance(token_ids, int) else token_ids)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=self.skip_special_tokens)
        if text.endswith(REPLACEMENT):
            return ""  # the last character is still incomplete: wait for its other bytes
        new = text[self.emitted:]
        self.emitted = len(text)
        return new

    def flush(self) -> str:
        """Whatever is left at the end of the stream (an incomplete tail is dropped)."""
        text = self.tokenizer.decode(self.ids, skip_special_tokens=self.skip_special_tokens)
        new = text[self.emitted:].rstrip(REPLACEMENT)
        self.emitted = len(text)
        return new
