"""`korlhf serve`: a model behind an OpenAI-compatible HTTP API, with a Korean web chat page.

    korlhf serve --model runs/demo/sft                  # http://127.0.0.1:8000/ (web chat)
    curl http://127.0.0.1:8000/v1/chat/completions -H 'Content-Type: application/json' \\
         -d '{"model": "runs/demo/sft", "messages": [{"role": "user", "content": "안녕?"}]}'

Any OpenAI client works with ``base_url="http://127.0.0.1:8000/v1"``. Requests queue for one
generation worker (`korlhf.serve.engine`). It binds to 127.0.0.1 unless told otherwise; to expose
it, set ``--host 0.0.0.0`` together with an API key (``$KORLHF_API_KEY`` or ``--api_key``).
FastAPI and uvicorn are the optional extra ``korlhf[serve]``.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from korlhf.conversation import DecodingFields, ModelArgs
from korlhf.errors import KorlhfError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


@dataclass(kw_only=True)
class Config(DecodingFields, ModelArgs):
    """Decoding fields are the defaults for requests that leave them out."""

    host: str = field(default="127.0.0.1", metadata={"help": "address to bind; 0.0.0.0 exposes the server (set an API key)"})
    port: int = field(default=8000, metadata={"help": "TCP port (0 = any free port)"})
    model_name: str | None = field(default=None, metadata={
        "help": "the name clients send as \"model\"; default: --model as given"})
    api_key: str | None = field(default=None, metadata={
        "help": "require 'Authorization: Bearer KEY' on /v1; default: $KORLHF_API_KEY if set, else no key"})
    max_tokens_limit: int = field(default=1024, metadata={"help": "largest max_tokens a request may ask for"})
    max_queue: int = field(default=128, metadata={"help": "requests that may wait for the model; more get HTTP 429"})
    max_batch_size: int = field(default=16, metadata={
        "help": "most requests answered together (a new one joins the running batch between tokens); 1 = one at a time"})
    log_level: str = field(default="info", metadata={"help": "uvicorn log level: debug, info, warning, error"})

    def __post_init__(self):
        super().__post_init__()
        if self.api_key is None:
            self.api_key = os.environ.get("KORLHF_API_KEY") or None
        if self.model_name is None:
            self.model_name = self.model.rstrip("/") or self.model
        if self.api_key and not (self.api_key.isascii() and self.api_key.isprintable() and " " not in self.api_key):
            raise ValueError("the API key must be printable ASCII without spaces (HTTP headers carry nothing else)")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"--port must be between 0 and 65535 (0 = any free port); got {self.port}")
        for name in ("max_tokens_limit", "max_queue", "max_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1; got {getattr(self, name)}")
        if self.max_new_tokens > self.max_tokens_limit:
            raise ValueError(f"--max_new_tokens {self.max_new_tokens} is above --max_tokens_limit "
                             f"{self.max_tokens_limit}: raise the limit or lower the default")
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"--log_level must be one of {', '.join(LOG_LEVELS)}; got {self.log_level!r}")


def require_serve_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise KorlhfError(f"korlhf serve needs FastAPI and uvicorn ({exc.name} is missing): "
                          "pip install 'korlhf[serve]'") from None


def build(cfg: Config):
    """Load the model, start its generation worker and return the FastAPI app."""
    require_serve_extra()
    from korlhf.conversation import load_model
    from korlhf.serve.api import create_app
    from korlhf.serve.engine import Engine

    tokenizer, model = load_model(cfg.model, cfg.template, cfg.dtype, cfg.device, cfg.trust_remote_code)
    return create_app(Engine(model, tokenizer, cfg.max_queue, cfg.max_batch_size), cfg)


def main(cfg: Config) -> None:
    require_serve_extra()
    import uvicorn
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    with console.status(f"loading {cfg.model} ...", spinner="dots"):
        app = build(cfg)
    if cfg.host not in LOOPBACK and not cfg.api_key:
        console.print(f"[yellow]warning: listening on {cfg.host} without an API key; anyone who can reach this "
                      "machine can use the model. Set $KORLHF_API_KEY or --api_key.[/yellow]")
    base = f"http://{'127.0.0.1' if cfg.host in ('0.0.0.0', '::') else cfg.host}:{cfg.port}"
    console.print(f"[bold]{cfg.model_name}[/bold] on {app.state.engine.model.device}\n"
                  f"  web chat  {base}/\n  API       {base}/v1  (OpenAI-compatible; model=\"{cfg.model_name}\")"
                  + ("\n  API key   required (Authorization: Bearer ...)" if cfg.api_key else ""))
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level=cfg.log_level)


class Background:
    """A server running on a thread of this process: for notebooks and tests.

    >>> server = Background(Config(model="runs/demo/sft", port=0))
    >>> client = openai.OpenAI(base_url=server.url + "/v1", api_key="-")
    >>> server.stop()
    """

    def __init__(self, cfg: Config, app=None, timeout: float = 60.0):
        import time

        import uvicorn

        self.app = app or build(cfg)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host=cfg.host, port=cfg.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="korlhf-serve", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise KorlhfError(f"the server did not start on {cfg.host}:{cfg.port} (is the port in use?)")
            time.sleep(0.02)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)  # the app's lifespan closes the engine
