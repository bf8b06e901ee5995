"""Decoding presets do what they claim, checked against independent forward passes of the tiny model."""

import pytest
import torch

from korlhf.decoding import PRESETS, Decoding
from korlhf.generate import decode_response, generate
from korlhf.templates import render_prompt

PROMPTS = ["김치찌개 끓이는 법을 알려줘", "서울은 어느 나라의 수도인가요? 자세히 설명해 주세요"]


@pytest.fixture(scope="module")
def lm(tiny_gpt2):
    from korlhf.models import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(tiny_gpt2)
    return load_causal_lm(tiny_gpt2, tokenizer).eval(), tokenizer


def encode(tokenizer, prompt):
    return torch.tensor([tokenizer(render_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"]])


def next_logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits[0, -1]


def raw_generate(lm, prompt, decoding, **extra):
    model, tokenizer = lm
    ids = encode(tokenizer, prompt)
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **decoding.generate_kwargs(tokenizer),
                         **extra)
    sequences = out if isinstance(out, torch.Tensor) else out.sequences
    return ids, sequences, out


def log_prob(model, prompt_ids, new_ids):
    """Sum of log p(token | prefix) over ``new_ids``, from one forward pass."""
    full = torch.cat([prompt_ids[0], torch.tensor(new_ids)])[None]
    with torch.no_grad():
        logp = model(input_ids=full).logits[0].log_softmax(-1)
    start = prompt_ids.shape[1]
    return sum(logp[start - 1 + t, tok].item() for t, tok in enumerate(new_ids))


def test_greedy_is_the_argmax_path_and_deterministic(lm):
    model, tokenizer = lm
    decoding = Decoding.from_preset("greedy", max_new_tokens=6)
    ids = encode(tokenizer, PROMPTS[0])
    expected = []
    for _ in range(6):  # the argmax loop, written out
        token = int(next_logits(model, ids).argmax())
        expected.append(token)
        ids = torch.cat([ids, torch.tensor([[token]])], 1)
    first = generate(model, tokenizer, PROMPTS, decoding, batch_size=2)
    again = generate(model, tokenizer, PROMPTS, decoding, batch_size=1)
    assert first[0].response == decode_response(tokenizer, expected)[0]
    assert [g.responses for g in first] == [g.responses for g in again]  # left-padded batch == one at a time


def test_beam_returns_the_best_scoring_beam(lm):
    model, tokenizer = lm
    decoding = Decoding.from_preset("beam", max_new_tokens=5, num_return_sequences=4, length_penalty=0.0)
    prompt_ids, sequences, out = raw_generate(lm, PROMPTS[0], decoding, return_dict_in_generate=True,
                                              output_scores=True)
    new = sequences[:, prompt_ids.shape[1]:].tolist()
    recomputed = [log_prob(model, prompt_ids, seq) for seq in new]
    assert out.sequences_scores.tolist() == pytest.approx(recomputed, abs=1e-4)  # length_penalty 0: plain sums
    assert recomputed == sorted(recomputed, reverse=True)
    greedy_ids = raw_generate(lm, PROMPTS[0], Decoding(max_new_tokens=5))[1][0, prompt_ids.shape[1]:]
    assert recomputed[0] >= log_prob(model, prompt_ids, greedy_ids.tolist()) - 1e-5
    gens = generate(model, tokenizer, [PROMPTS[0]], decoding)
    assert gens[0].responses[0] == decode_response(tokenizer, new[0])[0]
    assert gens[0].scores == pytest.approx(recomputed, abs=1e-4)


def test_top_k_never_samples_outside_the_k_most_likely(lm):
    model, _ = lm
    decoding = Decoding.from_preset("top-k", top_k=3, temperature=5.0, max_new_tokens=4, num_return_sequences=8)
    prompt_ids, sequences, _ = raw_generate(lm, PROMPTS[1], decoding)
    start, picked = prompt_ids.shape[1], set()
    for row in sequences:
        for t in range(start, row.shape[0]):
            top3 = next_logits(model, row[None, :t]).topk(3).indices.tolist()
            assert int(row[t]) in top3
            picked.add((t, int(row[t])))
    assert len(picked) > 4  # it really sampled (8 samples did not all take one path)


def test_seed_reproduces_sampling(lm):
    model, tokenizer = lm
    first = generate(model, tokenizer, PROMPTS, Decoding.from_preset("top-p", max_new_tokens=6, seed=1,
                                                                       num_return_sequences=3))
    again = generate(model, tokenizer, PROMPTS, Decoding.from_preset("top-p", max_new_tokens=6, seed=1,
                                                                       num_return_sequences=3))
    other = generate(model, tokenizer, PROMPTS, Decoding.from_preset("top-p", max_new_tokens=6, seed=2,
                                                                       num_return_sequences=3))
    assert [g.responses for g in first] == [g.responses for g in again]
    assert [g.responses for g in first] != [g.responses for g in other]


def test_presets_override_the_models_own_generation_config(lm):
    model, tokenizer = lm
    model.generation_config.top_k = 1  # a checkpoint default that would turn sampling into greedy
    try:
        gens = generate(model, tokenizer, [PROMPTS[0]], Decoding.from_preset("sample", max_new_tokens=6,
                                                                              num_return_sequences=4))
    finally:
        model.generation_config.top_k = None
    assert len(set(gens[0].responses)) > 1
    kwargs = Decoding.from_preset("top-p").generate_kwargs(tokenizer)
    assert (kwargs["top_k"], kwargs["top_p"], kwargs["eos_token_id"]) == (0, 0.9, tokenizer.eos_token_id)


def test_every_preset_runs(lm):
    model, tokenizer = lm
    for name in PRESETS:
        k = 1 if name in ("greedy", "contrastive") else 2
        gens = generate(model, tokenizer, PROMPTS, Decoding.from_preset(name, max_new_tokens=3, num_return_sequences=k))
        assert all(len(g.responses) == k and g.response_tokens[0] <= 3 for g in gens), name


def test_contrastive_with_alpha_zero_is_greedy(lm):
    model, tokenizer = lm
    greedy = generate(model, tokenizer, PROMPTS, Decoding(max_new_tokens=5))
    contrastive = generate(model, tokenizer, PROMPTS, Decoding.from_preset("contrastive", penalty_alpha=1e-9,
                                                                            max_new_tokens=5))
    assert [g.response for g in contrastive] == [g.response for g in greedy]


def test_contrastive_step_matches_hand_computation(lm):
    model, tokenizer = lm
    alpha, k = 0.6, 4
    ids = encode(tokenizer, PROMPTS[1])
    probs = next_logits(model, ids).softmax(-1)
    top_p, top_ids = probs.topk(k)
    scores = []
    for p, v in zip(top_p.tolist(), top_ids.tolist(), strict=True):
        with torch.no_grad():
            hidden = model(input_ids=torch.cat([ids, torch.tensor([[v]])], 1), output_hidden_states=True).hidden_states[-1][0]
        penalty = torch.nn.functional.cosine_similarity(hidden[-1:], hidden[:-1], dim=-1).max().item()
        scores.append((1 - alpha) * p - alpha * penalty)
    expected = top_ids[int(torch.tensor(scores).argmax())].item()
    decoding = Decoding.from_preset("contrastive", penalty_alpha=alpha, top_k=k, max_new_tokens=1)
    _, sequences, _ = raw_generate(lm, PROMPTS[1], decoding)
    assert sequences[0, -1].item() == expected
    batched = generate(model, tokenizer, PROMPTS, dataclass_replace(decoding, max_new_tokens=4), batch_size=2)
    single = generate(model, tokenizer, PROMPTS, dataclass_replace(decoding, max_new_tokens=4), batch_size=1)
    assert [g.response for g in batched] == [g.response for g in single]  # padding is masked out


def dataclass_replace(obj, **changes):
    import dataclasses

    return dataclasses.replace(obj, **changes)


def test_stop_strings_end_the_answer(lm):
    model, tokenizer = lm
    for preset in ("greedy", "contrastive"):
        full = generate(model, tokenizer, [PROMPTS[1]], Decoding.from_preset(preset, max_new_tokens=8))[0].response
        stop = full[len(full) // 2:len(full) // 2 + 2]
        assert stop.strip(), full
        gen = generate(model, tokenizer, [PROMPTS[1]], Decoding.from_preset(preset, max_new_tokens=8, stop=[stop]))[0]
        assert gen.response == full[:full.index(stop)].strip()
        assert gen.finish_reasons == ["stop"] and gen.response_tokens[0] < 8


@pytest.mark.parametrize("kwargs, message", [
    ({"num_return_sequences": 3}, "num_return_sequences=3 needs sampling or at least that many beams"),
    ({"preset": "nucleus"}, "unknown decoding preset 'nucleus'"),
    ({"do_sample": True, "top_p": 0}, "top_p must be in (0, 1]"),
    ({"penalty_alpha": 0.5, "top_k": 1}, "contrastive search needs do_sample=false, num_beams=1 and top_k >= 2"),
])
def test_bad_settings_are_explained(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        Decoding(**kwargs)
