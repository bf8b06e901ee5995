"""A real chat-completions server on 127.0.0.1 for the labelling tests (stdlib only, no network).

`JudgeServer(policy)` answers ``POST /v1/chat/completions`` with ``policy(body)`` as the message
content. ``faults`` are served first, one per request, in order: ``429`` (with Retry-After),
``500``, ``timeout`` (answers after ``slow_s``), ``malformed`` (a body cut mid-JSON) and ``empty``
(content ""). Every request is logged as (request key, outcome, time); ``gate_after`` holds every
request after that many successful answers until ``release()`` (to kill a client mid-run).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from korlhf.label.cache import request_key
from korlhf.text import hangul_ratio

_A = re.compile(r"\[어시스턴트 A의 답변 시작\]\n(.*?)\n\[어시스턴트 A의 답변 끝\]", re.S)
_B = re.compile(r"\[어시스턴트 B의 답변 시작\]\n(.*?)\n\[어시스턴트 B의 답변 끝\]", re.S)
_ONE = re.compile(r"\[어시스턴트 답변 시작\]\n(.*?)\n\[어시스턴트 답변 끝\]", re.S)


def hangul_judge(body: dict) -> str:
    """Prefers the answer with more Hangul (pairwise), or scores 1 + 9 x Hangul share (pointwise).

    In the multi-turn layout of `korlhf eval judge` (``### 어시스턴트 A:``) the last answer counts.
    """
    user = body["messages"][-1]["content"]
    if "<|어시스턴트 A와 사용자의 대화 시작|>" in user:
        return _multi_turn(user)
    one = _ONE.search(user)
    if one:
        return f"한국어 답변인지 살펴보았습니다.\n점수: [[{1 + round(9 * hangul_ratio(one.group(1)))}]]"
    a, b = hangul_ratio(_A.search(user).group(1)), hangul_ratio(_B.search(user).group(1))
    verdict = "A" if a > b else "B" if b > a else "C"
    return f"A의 한글 비율은 {a:.2f}, B는 {b:.2f}입니다.\n[[{verdict}]]"


def _multi_turn(user: str) -> str:
    last = {who: re.findall(rf"### 어시스턴트 {who}:\n(.*?)\n\n", user, re.S)[-1]
            for who in "AB" if f"### 어시스턴트 {who}:" in user}
    if "B" not in last:
        return f"둘째 답변을 보았습니다. 점수: [[{1 + round(9 * hangul_ratio(last['A']))}]]"
    a, b = hangul_ratio(last["A"]), hangul_ratio(last["B"])
    return f"둘째 답변의 한글 비율: A {a:.2f}, B {b:.2f}.\n[[{'A' if a > b else 'B' if b > a else 'C'}]]"


def always_a(body: dict) -> str:
    return "첫 번째 답변이 더 좋아 보입니다. [[A]]"


class JudgeServer:
    def __init__(self, policy=hangul_judge, key: str | None = None, faults=(), retry_after: str = "1",
                 slow_s: float = 1.5, gate_after: int | None = None):
        self.policy, self.key, self.faults = policy, key, list(faults)
        self.retry_after, self.slow_s, self.gate_after = retry_after, slow_s, gate_after
        self.log: list[tuple[str, str, float]] = []  # (request key, outcome, time)
        self.lock = threading.Lock()
        self.gate = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def answered(self) -> Counter:
        """Successful answers per request key."""
        with self.lock:
            return Counter(k for k, outcome, _ in self.log if outcome == "ok")

    def outcomes(self) -> Counter:
        with self.lock:
            return Counter(outcome for _, outcome, _ in self.log)

    def release(self) -> None:
        self.gate.set()

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.release()
        self.server.shutdown()
        self.server.server_close()

    def _next(self, key: str) -> str:
        with self.lock:
            outcome = self.faults.pop(0) if self.faults else "ok"
            successes = sum(1 for _, o, _ in self.log if o == "ok")
            if outcome == "ok" and self.gate_after is not None and successes >= self.gate_after \
                    and not self.gate.is_set():
                outcome = "held"
            self.log.append((key, outcome, time.monotonic()))
            return outcome

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _send(self, status: int, body: bytes, headers: dict | None = None):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status: int, message: str, headers: dict | None = None):
                self._send(status, json.dumps({"error": {"message": message, "type": "test"}}).encode(), headers)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if not self.path.endswith("/chat/completions"):
                    return self._error(404, f"no route {self.path}")
                got = self.headers.get("Authorization", "")
                if server.key is not None and got != f"Bearer {server.key}":
                    # Like some real servers, echo the key back: the client must scrub it.
                    return self._error(401, f"Incorrect API key provided: {got.removeprefix('Bearer ')}")
                outcome = server._next(request_key(body))
                try:
                    self._answer(outcome, body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout) or was killed

            def _answer(self, outcome: str, body: dict):
                if outcome == "held":
                    server.gate.wait(30)
                    return self._error(503, "server was held")
                if outcome == "429":
                    return self._error(429, "rate limited", {"Retry-After": server.retry_after})
                if outcome == "500":
                    return self._error(500, "internal error")
                if outcome == "timeout":
                    time.sleep(server.slow_s)
                if outcome == "malformed":
                    return self._send(200, b'{"id": "cmpl-1", "object": "chat.completion", "choices": [{"ind')
                content = "" if outcome == "empty" else server.policy(body)
                reply = {"id": "cmpl-test", "object": "chat.completion", "created": int(time.time()),
                         "model": body["model"],
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": content}}],
                         "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}}
                self._send(200, json.dumps(reply, ensure_ascii=False).encode("utf-8"))

        return Handler


if __name__ == "__main__":  # python tests/judge_server.py [PORT]: the fake judge for the README's tour
    import sys

    server = JudgeServer(hangul_judge)
    server.server.server_close()
    server.server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 8765),
                                        server._handler())
    print(f"fake judge (prefers Hangul) at {server.base_url}", flush=True)
    server.server.serve_forever()
