from korlhf.streaming import IncrementalDecoder


def test_token_by_token_never_emits_replacement_char(tiny_tokenizer):
    text = "안녕하세요, 반갑습니다! 오늘은 불고기를 먹었어요. 😀"
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    # Byte-level BPE splits some syllables across tokens; the naive per-token decode breaks them.
    assert any("\ufffd" in tiny_tokenizer.decode([i]) for i in ids)
    dec = IncrementalDecoder(tiny_tokenizer)
    pieces = [dec.push(i) for i in ids] + [dec.flush()]
    assert all("\ufffd" not in p for p in pieces)
    assert "".join(pieces) == text


def test_invalid_byte_sequences_are_dropped_and_counted(tiny_tokenizer):
    # A sampled model can emit a lone continuation byte or a syllable's first bytes followed by a
    # new character: those can never decode, and must not reach the screen as U+FFFD.
    ids = tiny_tokenizer("안녕", add_special_tokens=False)["input_ids"]
    vocab = tiny_tokenizer.get_vocab()
    lone = [i for i in range(len(vocab)) if tiny_tokenizer.decode([i]) == "\ufffd"]
    assert lone  # byte tokens exist that decode to nothing valid on their own
    dec = IncrementalDecoder(tiny_tokenizer)
    pieces = [dec.push(i) for i in ids + [lone[0]] + ids] + [dec.push(lone[0]), dec.flush()]
    assert "\ufffd" in tiny_tokenizer.decode(ids + [lone[0]] + ids)
    assert all("\ufffd" not in p for p in pieces)
    assert "".join(pieces) == "안녕안녕" and dec.dropped >= 2
