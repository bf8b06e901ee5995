"""Dynamic batching (korlhf.serve.batch): each request's answer is the one it gets alone."""

import threading

import pytest

from korlhf.conversation import encode, load_model, stream_reply
from korlhf.decoding import Decoding
from korlhf.serve.batch import Batch, Row, batch_replies
from korlhf.serve.engine import Engine, Job

WORDS = ["사과", "바다", "서울", "겨울", "음악", "한글", "기차", "커피"]


@pytest.fixture(scope="module", params=["gpt2", "llama", "gpt_neox", "qwen2"])
def tiny(request, tiny_models, tiny_tokenizer, tmp_path_factory):
    from korlhf.tiny import save_tiny

    path = tiny_models.get(request.param) or save_tiny(tmp_path_factory.mktemp(request.param), None,
                                                         arch=request.param, tokenizer=tiny_tokenizer)
    return load_model(path, device="cpu")


def prompts(tokenizer, n=8) -> list[list[int]]:
    # Different lengths, so rows are really left-padded.
    return [encode(tokenizer, [{"role": "user", "content": f"{i}번: {WORDS[i % 8]}에 대해 " + "자세히 " * (i % 3)}])
            for i in range(n)]


SETTINGS = [  # one request's settings per row: greedy, seeded samplers, penalties, budgets, stop strings
    lambda i: Decoding(max_new_tokens=16),
    lambda i: Decoding.from_preset("sample", seed=i, max_new_tokens=16),
    lambda i: Decoding.from_preset("top-p", seed=i, top_p=0.8, temperature=0.7, repetition_penalty=1.3,
                                   max_new_tokens=4 + 2 * i),
    lambda i: Decoding.from_preset("top-k", seed=100 + i, top_k=5, max_new_tokens=12),
    lambda i: Decoding.from_preset("min-p", seed=i, min_p=0.1, max_new_tokens=12, stop=["다", "요"]),
]


def test_every_row_gets_the_answer_it_gets_alone(tiny):
    tokenizer, model = tiny
    ids = prompts(tokenizer)
    decodings = [SETTINGS[i % len(SETTINGS)](i) for i in range(len(ids))]  # mixed settings in one batch
    alone = [stream_reply(model, tokenizer, x, d) for x, d in zip(ids, decodings, strict=True)]
    streamed = [[] for _ in ids]
    rows = [Row(x, d, on_text=streamed[i].append) for i, (x, d) in enumerate(zip(ids, decodings, strict=True))]
    batched = batch_replies(model, tokenizer, rows)
    for i, (a, b) in enumerate(zip(alone, batched, strict=True)):
        assert (b.text, b.finish_reason) == (a.text, a.finish_reason), i
        assert "".join(streamed[i]) == b.text and b.prompt_tokens == len(ids[i])
        assert b.completion_tokens <= decodings[i].max_new_tokens
    assert len({r.text for r in batched}) > 4  # the comparison means something only if answers differ


def test_rows_that_join_a_running_batch_get_the_answers_they_get_alone(tiny):
    tokenizer, model = tiny
    ids = prompts(tokenizer, 7)
    decodings = [SETTINGS[i % len(SETTINGS)](i) for i in range(len(ids))]
    alone = [stream_reply(model, tokenizer, x, d) for x, d in zip(ids, decodings, strict=True)]
    rows = [Row(x, d) for x, d in zip(ids, decodings, strict=True)]
    batch, finished = Batch(model, tokenizer), []
    finished += batch.add(rows[:3])
    for _ in range(3):
        finished += batch.step()
    finished += batch.add(rows[3:5])  # they join rows three tokens in, with prompts of other lengths
    finished += batch.step()
    finished += batch.add(rows[5:])
    assert len(batch) > 2  # they really ran together
    while batch:
        finished += batch.step()
        if batch:  # the mask (and cache) is as wide as the longest running row, never wider
            assert batch.mask.shape[1] == max(len(s.row.input_ids) + len(s.row.new_ids) for s in batch.states)
    assert sorted(map(id, finished)) == sorted(map(id, rows))
    for i, (a, row) in enumerate(zip(alone, rows, strict=True)):
        assert (row.reply.text, row.reply.finish_reason) == (a.text, a.finish_reason), i
    assert batch.cache is None and batch.mask is None


def test_a_cancelled_row_stops_and_the_others_go_on(tiny):
    tokenizer, model = tiny
    ids = prompts(tokenizer, 3)
    gone = threading.Event()
    rows = [Row(x, Decoding(max_new_tokens=20)) for x in ids]
    rows[1].cancelled = gone.is_set
    rows[1].on_text = lambda piece: gone.set()  # the client leaves after its first piece
    replies = batch_replies(model, tokenizer, rows)
    assert replies[1].finish_reason == "cancelled" and replies[1].completion_tokens < 20
    for i in (0, 2):
        assert replies[i].text == stream_reply(model, tokenizer, ids[i], Decoding(max_new_tokens=20)).text


def test_engine_batches_what_waited(tiny):
    tokenizer, model = tiny
    ids = prompts(tokenizer, 6)
    events = [[] for _ in ids]
    done = threading.Semaphore(0)

    def listener(i):
        def on_event(kind, value):
            events[i].append((kind, value))
            if kind in ("done", "error"):
                done.release()
        return on_event

    engine = Engine(model, tokenizer, max_batch=4)
    hold = threading.Event()
    engine.submit(Job(ids[0], Decoding(max_new_tokens=1), lambda *a: hold.wait(10)))  # blocks: the rest queue
    jobs = [Job(x, Decoding(max_new_tokens=8), listener(i)) for i, x in enumerate(ids)]
    for job in jobs:
        engine.submit(job)
    hold.set()
    for _ in jobs:
        assert done.acquire(timeout=60)
    engine.close()
    assert engine.stats["largest_batch"] == 4 and engine.stats["batches"] >= 1
    for i, x in enumerate(ids):
        reply = events[i][-1][1]
        assert events[i][-1][0] == "done"
        assert reply.text == stream_reply(model, tokenizer, x, Decoding(max_new_tokens=8)).text
        assert "".join(v for k, v in events[i] if k == "text") == reply.text
