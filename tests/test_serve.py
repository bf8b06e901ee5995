"""`korlhf serve`: the official openai client against the real server on loopback."""

import asyncio
import json
import re
import socket
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import httpx
import openai
import pytest
import torch

from korlhf.conversation import encode, load_model, stream_reply
from korlhf.decoding import Decoding
from korlhf.errors import KorlhfError
from korlhf.serve.server import Background, Config

NAME = "tiny-ko"


@pytest.fixture(scope="module")
def server(tiny_gpt2):
    # Server defaults: sampling with a fixed seed, so answers are varied text yet reproducible.
    srv = Background(Config(model=str(tiny_gpt2), model_name=NAME, port=0, preset="sample", seed=0, max_new_tokens=12))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def tiny(tiny_gpt2):
    return load_model(tiny_gpt2, device="cpu")


def alone(tiny, prompt: str, **settings) -> str:
    """The answer to one user message computed on its own, outside the server."""
    tokenizer, model = tiny
    decoding = Decoding.from_preset("sample", **{"seed": 0, "max_new_tokens": 12, **settings})
    return stream_reply(model, tokenizer, encode(tokenizer, [{"role": "user", "content": prompt}]), decoding).text


def ask(prompt: str) -> list[dict]:
    return [{"role": "user", "content": prompt}]


def test_models_and_health(server, client):
    assert [m.id for m in client.models.list().data] == [NAME]
    assert client.models.retrieve(NAME).owned_by == "korlhf"
    health = httpx.get(server.url + "/health").json()
    assert health["status"] == "ok" and health["model"] == NAME and health["context_length"] == 512


def test_chat_completion(client, tiny):
    reply = client.chat.completions.create(model=NAME, messages=ask("한국의 수도는 어디인가요?"), max_tokens=10, seed=3)
    choice = reply.choices[0]
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-") and reply.model == NAME
    assert choice.message.role == "assistant" and choice.finish_reason in ("stop", "length")
    assert choice.message.content == alone(tiny, "한국의 수도는 어디인가요?", max_new_tokens=10, seed=3)
    assert reply.usage.completion_tokens <= 10
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_chat_streaming(client, tiny):
    stream = client.chat.completions.create(model=NAME, messages=ask("김치찌개 끓이는 법"), stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # really streamed
    assert text == alone(tiny, "김치찌개 끓이는 법")
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish in (["stop"], ["length"])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens >= 1
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)


def test_raw_event_stream_ends_with_done(server):
    body = {"model": NAME, "messages": ask("안녕"), "stream": True, "max_tokens": 4}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: {") for e in events[:-1])
    assert json.loads(events[-2][6:])["choices"][0]["finish_reason"] in ("stop", "length")


def test_text_completion(client, tiny):
    tokenizer, model = tiny
    reply = client.completions.create(model=NAME, prompt="서울의 날씨는", max_tokens=8, temperature=0)
    ids = tokenizer("서울의 날씨는")["input_ids"]
    expected = stream_reply(model, tokenizer, ids, Decoding(max_new_tokens=8), strip_leading=False)
    assert reply.object == "text_completion" and reply.choices[0].text == expected.text
    streamed = client.completions.create(model=NAME, prompt="서울의 날씨는", max_tokens=8, temperature=0, stream=True)
    assert "".join(c.choices[0].text for c in streamed) == expected.text


BAD = [  # (keyword arguments for chat.completions.create, status, param, message)
    (dict(messages=[]), 400, "messages", "'messages' must contain at least one message"),
    (dict(model="gpt-4o"), 404, "model",
     "The model 'gpt-4o' does not exist. This server serves 'tiny-ko' (GET /v1/models lists it)"),
    (dict(max_tokens=5000), 400, "max_tokens",
     "max_tokens is 5000, above this server's limit of 1024 (korlhf serve --max_tokens_limit)"),
    (dict(max_tokens=600), 400, "messages",  # the prompt's token count depends on the tiny tokenizer's data
     re.compile(r"This model's maximum context length is 512 tokens\. However, you requested (\d+) tokens "
                r"\((\d+) in the messages, 600 in the completion\)\. Please reduce the length of the messages or "
                r"completion\.$")),
    (dict(messages=ask("가" * 3000)), 400, "messages", "This model's maximum context length is 512 tokens, and the "),
    (dict(temperature=3), 400, "temperature", "Invalid value for 'temperature': 3. Input should be less than or equal to 2."),
    (dict(top_p=0), 400, "top_p", "Invalid value for 'top_p': 0. Input should be greater than 0."),
    (dict(max_tokens=0), 400, "max_tokens", "Invalid value for 'max_tokens': 0. Input should be greater than or equal to 1."),
    (dict(extra_body={"temprature": 1}), 400, "temprature", "Unrecognized request argument supplied: temprature"),
    (dict(extra_body={"top_k": -1}), 400, "top_k", "Invalid value for 'top_k': -1. Input should be greater than or equal to 0."),
    (dict(extra_body={"preset": "beam"}), 400, "preset", "preset 'beam' cannot stream its answer token by token"),
    (dict(seed=-1), 400, "seed", "seed must be between 0 and 4294967295 (2**32 - 1)"),
    (dict(n=2), 400, "n", "n=2: this server returns one choice per request; send n=1 (or several requests)"),
    (dict(presence_penalty=0.5), 400, "presence_penalty",
     "presence_penalty is not supported; use repetition_penalty (e.g. 1.1) to curb repetition"),
    (dict(stop=["", "x"]), 400, "stop", "stop takes up to 4 non-empty strings"),
    (dict(messages=[{"role": "tool", "content": "x", "tool_call_id": "1"}]), 400, "messages[0].role",
     "messages[0].role 'tool' is not supported; use system, user or assistant"),
    (dict(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]), 400,
     "messages[0].content", "messages[0].content: only text parts are supported, got type 'image_url'"),
    (dict(messages=ask("질문") + [{"role": "assistant", "content": "답"}]), 400, "messages[1].role",
     "the last message must come from the user, got role 'assistant'"),
]


@pytest.mark.parametrize("kwargs,status,param,message", BAD, ids=[b[2] + "-" + str(i) for i, b in enumerate(BAD)])
def test_bad_requests_get_openai_errors(client, kwargs, status, param, message):
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(**{"model": NAME, "messages": ask("안녕하세요"), **kwargs})
    assert err.value.status_code == status
    assert err.value.body["type"] == "invalid_request_error" and err.value.body["param"] == param
    if isinstance(message, re.Pattern):
        found = message.match(err.value.body["message"])
        assert found and int(found[1]) == int(found[2]) + 600, err.value.body["message"]
    else:
        assert err.value.body["message"].startswith(message)


def test_malformed_bodies_and_routes(server):
    bad_json = httpx.post(server.url + "/v1/chat/completions", content=b"{model:", headers={"content-type": "application/json"})
    assert bad_json.status_code == 400
    assert bad_json.json()["error"]["message"].startswith("the request body is not valid JSON")
    nothing = httpx.get(server.url + "/v1/engines")
    assert nothing.status_code == 404 and nothing.json()["error"]["message"].startswith("GET /v1/engines: no such route")
    empty = httpx.post(server.url + "/v1/completions", json={"model": NAME, "prompt": ""})
    assert (empty.status_code, empty.json()["error"]["message"]) == (400, "'prompt' must not be empty")


def test_fifty_concurrent_requests_each_get_their_own_answer(server, tiny):
    prompts = [f"{i}번 질문: {word}에 대해 알려줘" for i, word in
               enumerate(["사과", "바다", "서울", "겨울", "음악", "한글", "기차", "커피", "우주", "김치"] * 5)]
    expected = [alone(tiny, p, seed=i) for i, p in enumerate(prompts)]
    assert len(set(expected)) > 40  # the check below means something only if the answers differ
    client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)

    async def one(i: int, prompt: str) -> str:
        if i % 2:
            stream = await client.chat.completions.create(model=NAME, messages=ask(prompt), seed=i, stream=True)
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        reply = await client.chat.completions.create(model=NAME, messages=ask(prompt), seed=i)
        return reply.choices[0].message.content

    async def everyone():
        try:
            return await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts)), return_exceptions=True)
        finally:
            await client.close()

    answers = asyncio.run(everyone())
    errors = [a for a in answers if isinstance(a, BaseException)]
    assert errors == []
    assert answers == expected  # batched with whoever else waited, yet each seeded answer is its own
    assert httpx.get(server.url + "/health").json()["largest_batch"] > 1


def test_a_client_that_leaves_mid_stream_stops_its_generation(server):
    before = httpx.get(server.url + "/health").json()["cancelled"]
    body = {"model": NAME, "messages": ask("아주 긴 이야기를 해 줘"), "stream": True, "max_tokens": 480}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body) as response:
        next(line for line in response.iter_lines() if '"content"' in line and '"role"' not in line)
    deadline = time.monotonic() + 20
    while (health := httpx.get(server.url + "/health").json())["busy"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert health["cancelled"] == before + 1 and not health["busy"]


def test_api_key(tiny_gpt2):
    srv = Background(Config(model=str(tiny_gpt2), model_name=NAME, port=0, api_key="s3cret-key", max_new_tokens=2))
    try:
        assert httpx.get(srv.url + "/health").status_code == 200  # health checks need no key
        missing = httpx.get(srv.url + "/v1/models")
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError) as err:
            openai.OpenAI(base_url=srv.url + "/v1", api_key="wrong", max_retries=0).models.list()
        assert err.value.body["message"] == "incorrect API key"
        good = openai.OpenAI(base_url=srv.url + "/v1", api_key="s3cret-key", max_retries=0)
        assert good.chat.completions.create(model=NAME, messages=ask("안녕")).choices[0].finish_reason
    finally:
        srv.stop()


class Blocking:
    """A model whose generate waits until released: the worker stays busy while requests queue."""

    device = torch.device("cpu")
    config = SimpleNamespace(max_position_embeddings=64)

    def __init__(self):
        self.release = threading.Event()

    def generate(self, input_ids, streamer, **kwargs):
        streamer.put(input_ids)
        self.release.wait(30)
        streamer.end()


def test_full_queue_answers_429(tiny_tokenizer):
    from korlhf.serve.api import create_app
    from korlhf.serve.engine import Engine

    cfg = Config(model="blocking", port=0, max_queue=1, max_new_tokens=2)
    model = Blocking()
    srv = Background(cfg, app=create_app(Engine(model, tiny_tokenizer, max_queue=1), cfg))
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0)
    try:
        results = []
        waiting = [threading.Thread(target=lambda: results.append(client.chat.completions.create(
            model="blocking", messages=ask("질문")))) for _ in range(2)]
        for thread, state in zip(waiting, [("busy", True), ("waiting", 1)], strict=True):
            thread.start()  # the first is generating, then the second waits in the queue
            deadline = time.monotonic() + 20
            while httpx.get(srv.url + "/health").json()[state[0]] != state[1] and time.monotonic() < deadline:
                time.sleep(0.02)
        with pytest.raises(openai.RateLimitError) as err:
            client.chat.completions.create(model="blocking", messages=ask("질문"))
        assert err.value.body["message"].startswith("the server is busy: 1 requests are already waiting")
        model.release.set()
        for thread in waiting:
            thread.join(10)
        assert len(results) == 2
    finally:
        model.release.set()
        srv.stop()


def test_api_key_must_fit_in_a_header():
    with pytest.raises(ValueError, match="the API key must be printable ASCII without spaces"):
        Config(model="x", api_key="비밀")


def test_missing_extra_names_the_install_command(monkeypatch):
    from korlhf.serve.server import require_serve_extra

    monkeypatch.setitem(sys.modules, "fastapi", None)
    with pytest.raises(KorlhfError) as err:
        require_serve_extra()
    assert str(err.value) == "korlhf serve needs FastAPI and uvicorn (fastapi is missing): pip install 'korlhf[serve]'"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_command(tiny_gpt2):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "korlhf", "serve", "--model", str(tiny_gpt2), "--port", str(port),
                             "--max_new_tokens", "4", "--log_level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() else "timeout"
            time.sleep(0.2)
        page = httpx.get(url + "/")
        assert page.status_code == 200 and "korlhf 채팅" in page.text
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        reply = client.chat.completions.create(model=str(tiny_gpt2), messages=ask("안녕하세요"))
        assert reply.usage.completion_tokens <= 4
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert f"web chat  {url}/" in out and "Traceback" not in out


def test_out_of_range_options_are_one_line_errors():
    proc = subprocess.run([sys.executable, "-m", "korlhf", "serve", "--model", "runs/x", "--port", "99999"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == "error: korlhf serve: --port must be between 0 and 65535 (0 = any free port); got 99999"
    cases = [({"port": -1}, "--port must be between 0 and 65535 (0 = any free port); got -1"),
             ({"max_queue": 0}, "--max_queue must be at least 1; got 0"),
             ({"max_tokens_limit": 0}, "--max_tokens_limit must be at least 1; got 0"),
             ({"max_new_tokens": 4096}, "--max_new_tokens 4096 is above --max_tokens_limit 1024: raise the limit or "
                                        "lower the default"),
             ({"log_level": "loud"}, "--log_level must be one of critical, error, warning, info, debug, trace; got "
                                     "'loud'"),
             ({"seed": 2**40}, "decoding settings: seed must be between 0 and 4294967295 (2**32 - 1)"),
             ({"max_new_tokens": 0}, "decoding settings: max_new_tokens must be at least 1")]
    for fields, message in cases:
        with pytest.raises((KorlhfError, ValueError)) as err:
            Config(model="runs/x", **fields)
        assert str(err.value) == message, fields
