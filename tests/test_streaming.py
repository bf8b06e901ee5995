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
