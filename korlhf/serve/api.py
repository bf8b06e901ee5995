"""The HTTP routes: OpenAI's chat and text completions (plain and streamed), models, health, the page.

Streams are server-sent events in OpenAI's chunk format, ending with ``data: [DONE]``, so the
official ``openai`` client and tools built on it work unchanged. Every error is a JSON body
``{"error": {"message", "type", "param", "code"}}`` with a 4xx status when the request is at fault.
"""

from __future__ import annotations

import hmac
import json
import time
import uuid
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from korlhf.conversation import Reply, context_length, encode
from korlhf.decoding import Decoding
from korlhf.errors import KorlhfError
from korlhf.serve.engine import Engine, QueueFull
from korlhf.serve.schemas import ApiError, ChatRequest, CompletionRequest, Sampling, validation_error

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
ROUTES = "POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health, GET /"


def create_app(engine: Engine, cfg) -> FastAPI:
    """``cfg`` is a `korlhf.serve.server.Config`: model name, request defaults, limits, API key."""

    @asynccontextmanager
    async def lifespan(app):
        yield
        engine.close()

    app = FastAPI(title="korlhf", summary="OpenAI-compatible API for a korlhf model", lifespan=lifespan,
                  docs_url=None, redoc_url=None)  # the docs pages load their scripts from a CDN
    app.state.engine, app.state.cfg = engine, cfg
    app.state.context = context_length(engine.model, engine.tokenizer)
    app.state.created = int(time.time())
    _error_handlers(app)
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(_auth(cfg.api_key))])

    @v1.get("/models")
    async def models():
        return {"object": "list", "data": [_model_card(app)]}

    @v1.get("/models/{name:path}")
    async def model(name: str):
        _check_model(cfg, name)
        return _model_card(app)

    @v1.post("/chat/completions")
    async def chat_completions(req: ChatRequest):
        _check_model(cfg, req.model)
        req.unsupported()
        ids = _render(engine.tokenizer, _messages(req, cfg.system))
        requested = req.max_completion_tokens or req.max_tokens
        decoding = _decoding(app, req, len(ids), requested, "messages")
        return await _respond(app, "chat", req, ids, decoding, strip_leading=True)

    @v1.post("/completions")
    async def completions(req: CompletionRequest):
        _check_model(cfg, req.model)
        req.unsupported()
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        if len(prompts) != 1:
            raise ApiError(400, f"send one prompt per request (got {len(prompts)})", "prompt")
        if not prompts[0]:
            raise ApiError(400, "'prompt' must not be empty", "prompt")
        ids = engine.tokenizer(prompts[0], verbose=False)["input_ids"]  # raw text: the tokenizer's own BOS, no template
        decoding = _decoding(app, req, len(ids), req.max_tokens, "prompt")
        return await _respond(app, "text", req, ids, decoding, strip_leading=False)

    app.include_router(v1)

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": cfg.model_name, "device": str(engine.model.device),
                "context_length": app.state.context, "busy": engine.busy, "waiting": engine.waiting, **engine.stats}

    page = resources.files("korlhf.serve").joinpath("index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        return HTMLResponse(page)

    return app


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        return JSONResponse(validation_error(list(exc.errors())).body(), status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        message = str(exc.detail)
        if exc.status_code in (404, 405):
            message = f"{request.method} {request.url.path}: no such route. This server has: {ROUTES}"
        error = ApiError(exc.status_code, message, code="not_found" if exc.status_code == 404 else None)
        return JSONResponse(error.body(), status_code=exc.status_code)


def _auth(api_key: str | None):
    async def check(request: Request) -> None:
        if not api_key:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise ApiError(401, "no API key given: send the header 'Authorization: Bearer KEY' (the key korlhf "
                           "serve was started with, --api_key or $KORLHF_API_KEY)", code="invalid_api_key")
        if not hmac.compare_digest(given.strip().encode(), api_key.encode()):
            raise ApiError(401, "incorrect API key", code="invalid_api_key")

    return check


def _model_card(app: FastAPI) -> dict:
    return {"id": app.state.cfg.model_name, "object": "model", "created": app.state.created, "owned_by": "korlhf"}


def _check_model(cfg, name: str | None) -> None:
    if name is not None and name != cfg.model_name:
        raise ApiError(404, f"The model '{name}' does not exist. This server serves '{cfg.model_name}' "
                       "(GET /v1/models lists it)", "model", "model_not_found")


def _messages(req: ChatRequest, system: str | None) -> list[dict]:
    if not req.messages:
        raise ApiError(400, "'messages' must contain at least one message", "messages")
    messages = []
    for i, message in enumerate(req.messages):
        if message.role not in ROLES:
            raise ApiError(400, f"messages[{i}].role '{message.role}' is not supported; use system, user or "
                           "assistant", f"messages[{i}].role")
        messages.append({"role": ROLES[message.role], "content": message.text(i)})
    if messages[-1]["role"] != "user":
        raise ApiError(400, f"the last message must come from the user, got role '{req.messages[-1].role}'",
                       f"messages[{len(messages) - 1}].role")
    if system and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system})
    return messages


def _render(tokenizer, messages: list[dict]) -> list[int]:
    try:
        return encode(tokenizer, messages)
    except Exception as exc:  # jinja raises for histories the template does not accept
        raise ApiError(400, f"the model's chat template could not render these messages: {exc}", "messages") from None


def _decoding(app: FastAPI, req: Sampling, prompt_tokens: int, requested: int | None, what: str) -> Decoding:
    """The request's settings over the server's defaults, checked against the model's limits."""
    cfg, context = app.state.cfg, app.state.context
    if requested is not None and requested > cfg.max_tokens_limit:
        raise ApiError(400, f"max_tokens is {requested}, above this server's limit of {cfg.max_tokens_limit} "
                       "(korlhf serve --max_tokens_limit)", "max_tokens")
    room = context - prompt_tokens
    if requested is not None and requested > room:
        raise ApiError(400, f"This model's maximum context length is {context} tokens. However, you requested "
                       f"{prompt_tokens + requested} tokens ({prompt_tokens} in the {what}, {requested} in the "
                       f"completion). Please reduce the length of the {what} or completion.", what,
                       "context_length_exceeded")
    if room < 1:
        raise ApiError(400, f"This model's maximum context length is {context} tokens, and the {what} alone "
                       f"take {prompt_tokens}. Please shorten the {what}.", what, "context_length_exceeded")
    changes = {name: value for name in ("preset", "temperature", "top_p", "top_k", "min_p", "repetition_penalty", "seed")
               if (value := getattr(req, name)) is not None}
    changes["max_new_tokens"] = requested or min(cfg.max_new_tokens, room)
    if req.stop is not None:
        changes["stop"] = req.stops()
    try:
        return cfg.decoding(**changes)
    except KorlhfError as exc:
        message = str(exc).removeprefix("decoding settings: ")
        param = next((name for name in [*changes, "max_tokens"] if message.startswith(name)), None)
        raise ApiError(400, message, "max_tokens" if param == "max_new_tokens" else param) from None


async def _respond(app: FastAPI, kind: str, req: Sampling, ids: list[int], decoding: Decoding, strip_leading: bool):
    engine: Engine = app.state.engine
    try:
        events = engine.open(ids, decoding, strip_leading, stream=bool(req.stream))
    except QueueFull as exc:
        raise ApiError(429, str(exc), code="server_busy", kind="rate_limit_error") from None
    meta = {"id": ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex[:24], "created": int(time.time()),
            "model": app.state.cfg.model_name}
    if req.stream:
        usage = bool(req.stream_options and req.stream_options.include_usage)
        return StreamingResponse(_sse(events, kind, meta, usage), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    async for event, value in events:
        if event == "error":
            raise ApiError(500, str(value), kind="server_error")
        if event == "done":
            reply: Reply = value
    choice = {"index": 0, "logprobs": None, "finish_reason": _finish(reply)}
    if kind == "chat":
        choice["message"] = {"role": "assistant", "content": reply.text}
    else:
        choice["text"] = reply.text
    return {**meta, "object": "chat.completion" if kind == "chat" else "text_completion", "choices": [choice],
            "usage": _usage(reply)}


async def _sse(events, kind: str, meta: dict, include_usage: bool):
    """OpenAI's chunk stream: a role chunk (chat), text chunks, a finish chunk, usage if asked, [DONE]."""

    def chunk(choices: list, usage: dict | None = None) -> str:
        body = {**meta, "object": "chat.completion.chunk" if kind == "chat" else "text_completion", "choices": choices}
        if include_usage:
            body["usage"] = usage
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    def choice(text: str | None, finish: str | None = None, role: bool = False) -> list:
        if kind == "text":
            return [{"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}]
        delta = {"role": "assistant", "content": ""} if role else {} if text is None else {"content": text}
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    if kind == "chat":
        yield chunk(choice(None, role=True))
    async for event, value in events:
        if event == "text":
            yield chunk(choice(value))
        elif event == "done":
            yield chunk(choice(None, _finish(value)))
            if include_usage:
                yield chunk([], _usage(value))
        else:
            yield f"data: {json.dumps(ApiError(500, str(value), kind='server_error').body())}\n\n"
    yield "data: [DONE]\n\n"


def _finish(reply: Reply) -> str:
    return "length" if reply.finish_reason == "length" else "stop"


def _usage(reply: Reply) -> dict:
    return {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens}
