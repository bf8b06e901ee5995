"""`korlhf generate`: prompt files, multi-turn context, output records, Korean-safe decoding."""

import json

import pytest

from korlhf.decoding import Decoding
from korlhf.errors import KorlhfError
from korlhf.generate import Config, decode_response, decoding_from, generate_conversations, main, read_prompts


def test_partial_decodes_never_cut_a_hangul_syllable(tiny_tokenizer):
    text = "한국어 문장은 절대로 글자 중간에서 잘리면 안 됩니다. 똠방각하! 😀"
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert any("\ufffd" in tiny_tokenizer.decode(ids[:n]) for n in range(len(ids)))  # the trap is real
    for n in range(len(ids) + 1):
        partial, reason, count = decode_response(tiny_tokenizer, ids[:n])
        assert "\ufffd" not in partial and text.startswith(partial.strip()), n
        assert (reason, count) == ("length", n)


def test_decode_stops_at_the_tokenizers_eos_and_at_stop_strings(tiny_tokenizer):
    ids = tiny_tokenizer("안녕하세요. 반갑습니다", add_special_tokens=False)["input_ids"]
    eos, pad = tiny_tokenizer.eos_token_id, tiny_tokenizer.pad_token_id
    assert decode_response(tiny_tokenizer, ids + [eos, pad, pad]) == ("안녕하세요. 반갑습니다", "eos", len(ids))
    assert decode_response(tiny_tokenizer, ids, stop=["반갑", "없음"]) == ("안녕하세요.", "stop", len(ids))


def test_read_prompts_in_every_shape(tmp_path):
    (tmp_path / "p.txt").write_text("\ufeff첫 질문\n\n두 번째 질문\n", encoding="utf-8")
    assert read_prompts(tmp_path / "p.txt") == [{"prompt": "첫 질문"}, {"prompt": "두 번째 질문"}]
    (tmp_path / "ppo.json").write_text("\ufeff" + json.dumps([{"prompt": "배열 속 질문"}], ensure_ascii=False), encoding="utf-8")
    assert read_prompts(tmp_path / "ppo.json") == [{"prompt": "배열 속 질문"}]
    rows = [{"question_id": 1, "category": "writing", "turns": ["글을 써줘", "더 짧게"]},
            {"id": "x", "messages": [{"role": "user", "content": "안녕"}]}]
    (tmp_path / "q.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    items = read_prompts(tmp_path / "q.jsonl", limit=2)
    assert items[0]["turns"] == ["글을 써줘", "더 짧게"] and items[1]["prompt"] == rows[1]["messages"]


def test_bad_prompt_record_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "좋아"}\n{"question": "키가 틀림"}\n', encoding="utf-8")
    with pytest.raises(KorlhfError) as err:
        read_prompts(path)
    assert str(err.value) == (f"{path}:2: needs a non-empty 'prompt' (a string or a message list) or MT-Bench "
                              "'turns' (keys present: question)")


def test_decoding_from_flags_overrides_the_preset():
    cfg = Config(model="m", prompts="p", preset="top-p", top_p=0.8, temperature=0.7, seed=None)
    decoding = decoding_from(cfg)
    assert (decoding.do_sample, decoding.top_p, decoding.temperature, decoding.seed) == (True, 0.8, 0.7, None)
    with pytest.raises(KorlhfError, match="decoding settings: unknown decoding preset 'fast'"):
        decoding_from(Config(model="m", prompts="p", preset="fast"))


def test_multi_turn_answers_see_their_own_earlier_answers(tiny_gpt2):
    from korlhf.models import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(tiny_gpt2)
    model = load_causal_lm(tiny_gpt2, tokenizer)
    convs = generate_conversations(model, tokenizer, [["여행 글을 써줘", "더 짧게 줄여줘"], ["한 턴만"]],
                                   Decoding.from_preset("top-k", max_new_tokens=4, num_return_sequences=2))
    assert [len(c) for c in convs] == [2, 1]
    first, second = convs[0]
    assert len(second.responses) == 2
    history = second.prompt  # sample 0's conversation so far
    assert [m["role"] for m in history] == ["user", "assistant", "user"]
    # The history holds the first answer as the next turn reads it: without U+FFFD (invalid bytes).
    assert history[1]["content"] == first.responses[0].replace("\ufffd", "")
    assert history[2]["content"] == "더 짧게 줄여줘"


def test_main_writes_answers_settings_counts_and_references(tmp_path, tiny_gpt2):
    prompts = tmp_path / "sft.jsonl"
    rows = [{"id": "a", "prompt": "김치찌개 끓이는 법", "response": "김치를 넣고 끓여요."},
            {"question_id": 7, "category": "roleplay", "turns": ["안녕", "다시 안녕"]}]
    prompts.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    out = tmp_path / "gen.jsonl"
    main(Config(model=str(tiny_gpt2), prompts=str(prompts), out=str(out), preset="beam", max_new_tokens=4,
                num_return_sequences=2))
    single, multi = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert single["id"] == "a" and single["reference"] == "김치를 넣고 끓여요." and "response" in single
    assert len(single["responses"]) == 2 and single["response"] == single["responses"][0]
    assert all(0 < n <= 4 for n in single["response_tokens"]) and single["prompt_tokens"] > 0
    assert single["settings"]["preset"] == "beam" and single["settings"]["num_beams"] == 4
    assert single["scores"][0] >= single["scores"][1] and single["time_s"] > 0
    assert multi["question_id"] == 7 and [len(c["turns"]) for c in multi["choices"]] == [2, 2]
    assert multi["response"] == multi["choices"][0]["turns"][-1]


def test_a_prompt_too_long_is_skipped_or_truncated_never_aborting_the_file(tmp_path, tiny_gpt2, capsys):
    long = " ".join(f"{i}번째 문장입니다" for i in range(300))  # far past the tiny model's 512 positions
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("\n".join(json.dumps({"prompt": p}, ensure_ascii=False) for p in ["안녕", long, "반가워"]),
                       encoding="utf-8")
    out = tmp_path / "gen.jsonl"
    main(Config(model=str(tiny_gpt2), prompts=str(prompts), out=str(out), max_new_tokens=4))
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r.get("too_long") for r in rows] == [None, "skipped", None]
    assert rows[1]["responses"] == [""] and rows[1]["finish_reasons"] == ["prompt_too_long"]
    assert rows[0]["response_tokens"][0] > 0 and rows[2]["response_tokens"][0] > 0
    assert "prompt 2: skipped" in capsys.readouterr().err
    main(Config(model=str(tiny_gpt2), prompts=str(prompts), out=str(out), max_new_tokens=4, too_long="truncate"))
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows[1]["too_long"].startswith("truncated from ") and rows[1]["prompt_tokens"] == 512 - 4
    with pytest.raises(KorlhfError, match=r"prompt 2 has \d+ tokens; with max_new_tokens=4 that exceeds the "
                                          r"model's 512 positions"):
        main(Config(model=str(tiny_gpt2), prompts=str(prompts), out=str(out), max_new_tokens=4, too_long="error"))


def test_replacement_characters_never_reach_the_next_turns_history(tiny_gpt2, monkeypatch):
    import korlhf.generate as gen_module
    from korlhf.models import load_causal_lm, load_tokenizer

    real = gen_module.generate

    def broken_first_turn(model, tokenizer, prompts, decoding=None, **kw):
        gens = real(model, tokenizer, prompts, decoding, **kw)
        if len(prompts[0]) == 1:  # turn 1: the model "emits" invalid bytes
            gens[0].responses = ["서울\ufffd입니다"]
        return gens

    monkeypatch.setattr(gen_module, "generate", broken_first_turn)
    tokenizer = load_tokenizer(tiny_gpt2)
    model = load_causal_lm(tiny_gpt2, tokenizer)
    [[first, second]] = generate_conversations(model, tokenizer, [["수도는?", "다시 말해줘"]],
                                               Decoding.from_preset("greedy", max_new_tokens=2))
    assert first.responses == ["서울\ufffd입니다"]  # the answer keeps what the model wrote
    assert second.prompt[1] == {"role": "assistant", "content": "서울입니다"}
