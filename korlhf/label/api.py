"""The ``api`` judge: an LLM behind any OpenAI-compatible chat-completions endpoint.

Calls go through the official ``openai`` client (``base_url`` points it at OpenAI, vLLM, ollama, ...)
with its own retries switched off: we retry here, because the client's backoff delays are fixed
constants (tests and rate-limited accounts need others), and because an answer can also fail
*after* a 200 response (a malformed body, empty content, no verdict marker), which the client does
not retry. Policy:

- 429, 5xx, timeouts, connection errors and malformed bodies: retried up to ``max_retries`` times,
  waiting ``backoff_base * 2**attempt`` seconds (with jitter, at most ``backoff_max``), or what the
  server's ``Retry-After`` / ``retry-after-ms`` header asks (also capped at ``backoff_max``);
- an answer without a verdict: asked again up to ``parse_retries`` times, then recorded as failed;
- 401/403/404 (wrong key, no access, unknown model): stop the run with a clear error;
- other 4xx (e.g. a prompt too long for the judge): that request fails, the run goes on;
- before any work is queued the endpoint is probed once (`check_endpoint`), so a server that is
  not running or a host without network fails at once instead of after minutes of backoff; and
  ``2 x concurrency`` (at least 3) requests in a row given up on stop the run (the endpoint died).

Requests run on a thread pool of ``concurrency`` workers; every parsed answer is written to the
`JudgeCache` at once. The API key is read from an environment variable, handed to the client and
otherwise only used to scrub it from any message we print or store.
"""

from __future__ import annotations

import email.utils
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from korlhf.errors import KorlhfError
from korlhf.label.cache import JudgeCache, request_key


@dataclass
class Request:
    """One judge question. ``parse`` turns the judge's text into a verdict (None = unparseable)."""

    body: dict
    parse: Callable[[str | None], object]
    key: str = ""

    def __post_init__(self):
        self.key = self.key or request_key(self.body)


@dataclass
class Answer:
    verdict: object = None  # "A" / "B" / "tie" (pairwise) or a float score (pointwise); None if failed
    content: str | None = None
    cached: bool = False
    error: str | None = None


@dataclass
class Counters:
    """Requests, retries, tokens and cost of one run; thread-safe through ``add``/``count``."""

    price_input: float = 0.0  # USD per 1M prompt tokens
    price_output: float = 0.0  # USD per 1M completion tokens
    requests: int = 0
    cached: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0
    retries: Counter = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    def retry(self, reason: str) -> None:
        with self._lock:
            self.retries[reason] += 1

    def add_usage(self, usage: dict, cached: bool) -> None:
        prefix = "cached_" if cached else ""
        with self._lock:
            for name in ("prompt_tokens", "completion_tokens"):
                setattr(self, prefix + name, getattr(self, prefix + name) + int(usage.get(name) or 0))

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.price_input + completion_tokens * self.price_output) / 1e6

    def to_dict(self) -> dict:
        return {"requests": self.requests, "cache_hits": self.cached, "failed": self.failed,
                "retries": dict(self.retries), "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "cost_usd": round(self.cost(self.prompt_tokens, self.completion_tokens), 6),
                "saved_by_cache": {"prompt_tokens": self.cached_prompt_tokens,
                                   "completion_tokens": self.cached_completion_tokens,
                                   "cost_usd": round(self.cost(self.cached_prompt_tokens,
                                                               self.cached_completion_tokens), 6)}}


class _Retry(Exception):
    def __init__(self, reason: str, wait: float | None = None):
        super().__init__(reason)
        self.reason, self.wait = reason, wait


class _Fail(Exception):
    pass


class ApiJudge:
    """Asks chat-completions requests with retries, a cache and a concurrency limit (see module doc)."""

    def __init__(self, cfg, cache: JudgeCache):
        self.cfg, self.cache = cfg, cache
        self.counters = Counters(price_input=cfg.price_input, price_output=cfg.price_output)
        self._secret = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
        self.client = _make_client(cfg, self._secret)
        self._warned: set[str] = set()
        self._given_up_in_row = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()  # set when the run stops: requests in flight give up at once

    def body(self, messages: list[dict]) -> dict:
        return {"model": self.cfg.judge_model, "messages": messages, "temperature": self.cfg.judge_temperature,
                "max_tokens": self.cfg.judge_max_tokens}

    def redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret and len(self._secret) >= 4 else text

    def ask_all(self, requests: list[Request], progress: bool = True) -> dict[str, Answer]:
        """Answer every distinct request (by key): cached ones at once, the rest on the thread pool."""
        from tqdm.auto import tqdm

        unique = {r.key: r for r in requests}
        answers: dict[str, Answer] = {}
        todo = []
        for key, request in unique.items():
            answer = self._from_cache(request)
            if answer is None:
                todo.append(request)
            else:
                answers[key] = answer
        if not todo:
            return answers
        check_endpoint(self.cfg.base_url, self.cfg.timeout)
        bar = tqdm(total=len(todo), desc=f"judge {self.cfg.judge_model}", unit="req", disable=not progress)
        pool = ThreadPoolExecutor(max_workers=max(1, self.cfg.concurrency))
        try:
            futures = {pool.submit(self.ask, r): r.key for r in todo}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    answers[futures[future]] = future.result()  # a fatal error (bad key) raises here
                    bar.update(1)
                retries = sum(self.counters.retries.values())
                if self.counters.failed or retries:
                    bar.set_postfix_str(f"{self.counters.failed} failed, {retries} retries", refresh=False)
        except BaseException:  # a bad key or Ctrl-C: drop what has not started; answers so far are cached
            self._stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            bar.close()
        pool.shutdown()
        return answers

    def _from_cache(self, request: Request) -> Answer | None:
        entry = self.cache.get(request.key)
        if entry is None:
            return None
        verdict = request.parse(entry.get("content"))
        if verdict is None:  # stored by a template/parser that read it differently: ask again
            return None
        self.counters.count("cached")
        self.counters.add_usage(entry.get("usage") or {}, cached=True)
        return Answer(verdict=verdict, content=entry["content"], cached=True)

    def ask(self, request: Request) -> Answer:
        """One request with retries (transient errors) and re-asks (no verdict); never raises but fatal errors."""
        cfg = self.cfg
        attempt = unparsed = 0
        while True:
            try:
                content, usage = self._call(request.body)
            except _Retry as exc:
                if attempt >= cfg.max_retries:
                    return self._give_up(f"gave up after {attempt + 1} tries: {exc.reason}")
                self.counters.retry(exc.reason.split(":")[0])
                self._warn(exc.reason.split(":")[0], f"{exc.reason}; retrying (at most {cfg.max_retries} "
                                                      "times per request)")
                if self._stop.wait(self._delay(attempt, exc.wait)):
                    return Answer(error="stopped")
                attempt += 1
                continue
            except _Fail as exc:
                self.counters.count("failed")
                self._warn("failed", f"a request failed: {exc}")
                return Answer(error=str(exc))
            verdict = request.parse(content)
            if verdict is None:
                if unparsed < cfg.parse_retries:
                    unparsed += 1
                    self.counters.retry("no verdict" if content else "empty content")
                    continue
                self.counters.count("failed")
                shown = (content or "").strip().replace("\n", " ")[:200]
                error = f"no verdict in the judge's answer after {unparsed + 1} tries: {shown!r}"
                self._warn("no verdict", f"a request failed: {error}")
                return Answer(content=content, error=error)
            self.cache.put(request.key, {"model": request.body["model"], "content": content, "usage": usage})
            with self._lock:
                self._given_up_in_row = 0
            return Answer(verdict=verdict, content=content)

    def _give_up(self, error: str) -> Answer:
        """A request failed on transient errors: counted, warned once, and the run stopped when
        too many in a row fail (the endpoint went away: backing off on every item would take hours)."""
        self.counters.count("failed")
        self._warn("gave up", f"a request failed: {error}")
        limit = max(3, 2 * self.cfg.concurrency)
        with self._lock:
            self._given_up_in_row += 1
            stop = self._given_up_in_row >= limit
        if stop:
            raise KorlhfError(f"the judge endpoint {self.cfg.base_url} failed {limit} requests in a row (last: "
                              f"{error}); stopped. Answers so far are cached: run the same command again once the "
                              "endpoint works (or raise --max_retries / --timeout)")
        return Answer(error=error)

    def _warn(self, kind: str, message: str) -> None:
        """One visible line per kind of trouble (not one per request), above the progress bar."""
        from tqdm.auto import tqdm

        with self._lock:
            if kind in self._warned:
                return
            self._warned.add(kind)
        tqdm.write(f"judge {self.cfg.base_url}: {message}", file=sys.stderr)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        cfg = self.cfg
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, cfg.backoff_max)
        return min(cfg.backoff_base * 2 ** attempt, cfg.backoff_max) * random.uniform(0.5, 1.0)

    def _call(self, body: dict) -> tuple[str | None, dict]:
        """One HTTP request. Raises _Retry (transient), _Fail (this request) or KorlhfError (the run)."""
        import openai

        self.counters.count("requests")
        try:
            completion = self.client.chat.completions.create(**body)
        except openai.APITimeoutError:
            raise _Retry("timeout") from None
        except openai.APIConnectionError as exc:
            raise _Retry(f"connection error: {self.redact(str(exc))}") from None
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from None
        except (openai.APIResponseValidationError, ValueError) as exc:  # a body that is not JSON
            raise _Retry(f"malformed response: {self.redact(str(exc))[:200]}") from None
        try:
            message = completion.choices[0].message
            usage = completion.usage.model_dump() if completion.usage is not None else {}
        except (AttributeError, IndexError, TypeError):
            raise _Retry("malformed response: no choices[0].message") from None
        self.counters.add_usage(usage, cached=False)
        return message.content, {k: usage.get(k) for k in ("prompt_tokens", "completion_tokens")}

    def _status_error(self, exc) -> Exception:
        status = exc.status_code
        detail = self.redact(str(getattr(exc, "message", exc)))[:300]
        if status == 429 or status >= 500 or status in (408, 409):
            return _Retry(f"HTTP {status}", _retry_after(exc.response.headers))
        if status in (401, 403):
            return KorlhfError(f"the judge endpoint {self.cfg.base_url} refused the API key from "
                               f"${self.cfg.api_key_env} (HTTP {status}: {detail}); check the key and its access")
        if status == 404:
            return KorlhfError(f"the judge endpoint {self.cfg.base_url} answered 404 for model "
                               f"{self.cfg.judge_model!r} ({detail}); check base_url (it usually ends in /v1) "
                               "and judge_model")
        return _Fail(f"HTTP {status}: {detail}")


def check_endpoint(base_url: str, timeout: float) -> None:
    """Raise a KorlhfError at once when nothing answers at ``base_url``.

    Any HTTP answer to ``GET base_url/models`` (even 401 or 404) proves a server is there; only a
    failed connection is fatal. httpx reads proxy settings from the environment as the openai
    client does, so the probe takes the same route as the requests.
    """
    import httpx

    wait = min(timeout, 10.0)
    try:
        httpx.get(base_url.rstrip("/") + "/models", timeout=wait)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise KorlhfError(f"base_url {base_url!r} is not a usable URL ({exc}); write it as "
                          "http://HOST:PORT/v1 (vLLM, ollama) or https://api.openai.com/v1") from None
    except httpx.ConnectTimeout:
        raise KorlhfError(f"cannot reach the judge endpoint {base_url}: no connection within {wait:g}s; is the "
                          "host up, the port open (firewall) and base_url right?") from None
    except httpx.ConnectError as exc:
        text = str(exc)
        if "refused" in text.lower():
            hint = ("connection refused; is the server running (ollama: `ollama serve`, vLLM: `vllm serve MODEL`) "
                    "and is the port in base_url right?")
        elif "name" in text.lower() or "unreachable" in text.lower():
            hint = f"{text}; is the network up and the host name in base_url right?"
        else:
            hint = f"{text}; check base_url and that the server is running"
        raise KorlhfError(f"cannot reach the judge endpoint {base_url}: {hint}") from None
    except httpx.TransportError:
        pass  # connected, but no quick answer to GET /models: the real requests will tell


def _retry_after(headers) -> float | None:
    """Seconds asked by ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date); None if absent."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return float(value) / scale
        except ValueError:
            parsed = email.utils.parsedate_tz(value)
            if parsed is not None:
                return max(0.0, email.utils.mktime_tz(parsed) - time.time())
    return None


def _make_client(cfg, key: str | None):
    try:
        import openai
    except ImportError:
        raise KorlhfError("the api judge needs the openai package: pip install 'korlhf[api]'") from None
    if cfg.api_key_env and not key:
        raise KorlhfError(f"the api judge reads its key from the environment variable {cfg.api_key_env}, which "
                          f"is not set: export {cfg.api_key_env}=..., or set api_key_env to '' for a server "
                          "that needs no key (ollama, a local vLLM)")
    # Servers that need no key still get a placeholder: the client refuses to start without one.
    return openai.OpenAI(base_url=cfg.base_url, api_key=key or "no-key", timeout=cfg.timeout, max_retries=0)
