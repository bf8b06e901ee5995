"""Request bodies of the OpenAI-compatible API, and errors in OpenAI's shape.

Unknown fields are rejected (as OpenAI does), so a misspelt ``temprature`` is a 400, not a silently
ignored setting. ``top_k``, ``min_p``, ``repetition_penalty`` and ``preset`` (a `korlhf.decoding`
preset) are korlhf extensions (the openai client sends them through ``extra_body``). Fields the server cannot honour (``n`` > 1, penalties,
log-probs) are accepted only at their neutral value and otherwise refused with a clear message.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ApiError(Exception):
    """An HTTP error answered as ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)  # e.g. "name", "refusal": harmless to ignore

    role: str
    content: str | list[TextPart | dict] | None = None

    def text(self, index: int) -> str:
        if self.content is None:
            raise ApiError(400, f"messages[{index}] has no content", f"messages[{index}].content")
        if isinstance(self.content, str):
            return self.content
        texts = []
        for part in self.content:
            if not isinstance(part, TextPart):
                kind = part.get("type", "?") if isinstance(part, dict) else type(part).__name__
                raise ApiError(400, f"messages[{index}].content: only text parts are supported, got type '{kind}'",
                               f"messages[{index}].content")
            texts.append(part.text)
        return "".join(texts)


class StreamOptions(_Strict):
    include_usage: bool = False


class Sampling(_Strict):
    """What both endpoints share: the model, sampling settings and streaming."""

    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0, lt=1)
    repetition_penalty: float | None = Field(default=None, gt=0)
    preset: str | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1)
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    user: str | None = None

    def unsupported(self) -> None:
        """Refuse values this server would otherwise silently ignore."""
        if self.n != 1:
            raise ApiError(400, f"n={self.n}: this server returns one choice per request; send n=1 "
                           "(or several requests)", "n")
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name):
                raise ApiError(400, f"{name} is not supported; use repetition_penalty (e.g. 1.1) to curb "
                               "repetition", name)
        if self.stream_options is not None and not self.stream:
            raise ApiError(400, "stream_options is only allowed with stream: true", "stream_options")

    def stops(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stops) > 4 or any(not s for s in stops):
            raise ApiError(400, "stop takes up to 4 non-empty strings", "stop")
        return stops


class ChatRequest(Sampling):
    messages: list[Message]
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool | None = None

    def unsupported(self) -> None:
        super().unsupported()
        if self.logprobs:
            raise ApiError(400, "logprobs are not supported by this server", "logprobs")


class CompletionRequest(Sampling):
    prompt: str | list[str]
    echo: bool = False
    suffix: str | None = None
    logprobs: int | None = None
    best_of: int | None = None

    def unsupported(self) -> None:
        super().unsupported()
        for name, neutral in (("echo", (False,)), ("suffix", (None,)), ("logprobs", (None,)), ("best_of", (None, 1))):
            if getattr(self, name) not in neutral:
                raise ApiError(400, f"{name} is not supported by this server", name)


_TYPE_LABEL = re.compile(r"^(str|int|float|bool|dict|list|none|[A-Z]\w*)(\[.*\])?$|^function-")


def validation_error(errors: list[dict]) -> ApiError:
    """The first pydantic error as an OpenAI-style 400, naming the parameter."""
    error = errors[0]
    loc = [part for part in error.get("loc", ()) if part != "body"]
    param = ""
    for part in loc:
        if isinstance(part, int):
            param += f"[{part}]"
        elif not _TYPE_LABEL.match(str(part)):  # pydantic names union branches ("str", "list[str]")
            param += f".{part}" if param else str(part)
    kind = error.get("type", "")
    if kind == "json_invalid":
        return ApiError(400, "the request body is not valid JSON: " + error.get("ctx", {}).get("error", kind))
    if kind == "extra_forbidden":
        return ApiError(400, f"Unrecognized request argument supplied: {param}", param)
    if kind == "missing":
        return ApiError(400, f"Missing required parameter: '{param}'.", param or None)
    if not loc:
        return ApiError(400, f"the request body must be a JSON object: {error.get('msg')}")
    value = error.get("input")
    return ApiError(400, f"Invalid value for '{param}': {value!r}. {error.get('msg')}.", param or None)
