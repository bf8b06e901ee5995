"""The generation worker: one thread runs ``model.generate`` for queued requests, one at a time.

HTTP handlers run on uvicorn's event loop; generation is blocking PyTorch work. Each request
becomes a `Job` in a bounded FIFO queue, and a single worker thread answers jobs in order,
passing each streamed piece back to its own request's event queue. One job at a time means one
request's tokens can never land in another's answer, and the sampling seed of a request is
honoured exactly (the RNG is not shared mid-generation).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from korlhf.chat import stream_reply
from korlhf.decoding import Decoding

log = logging.getLogger("korlhf.serve")


class QueueFull(Exception):
    """More requests are waiting than the server was told to hold (``max_queue``)."""


@dataclass
class Job:
    input_ids: list[int]
    decoding: Decoding
    on_event: Callable[[str, object], None]  # ("text", str) then ("done", Reply) or ("error", str)
    strip_leading: bool = True
    cancelled: threading.Event = field(default_factory=threading.Event)


class Engine:
    """Owns the model; answers jobs on its worker thread in the order they came."""

    def __init__(self, model, tokenizer, max_queue: int = 128):
        self.model, self.tokenizer = model, tokenizer
        self.jobs: queue.Queue[Job | None] = queue.Queue(maxsize=max_queue)
        self.busy = False
        self.stats = {"served": 0, "cancelled": 0, "failed": 0, "invalid_bytes_dropped": 0}
        self.thread = threading.Thread(target=self._work, name="korlhf-generate", daemon=True)
        self.thread.start()

    @property
    def waiting(self) -> int:
        return self.jobs.qsize()

    def submit(self, job: Job) -> None:
        try:
            self.jobs.put_nowait(job)
        except queue.Full:
            raise QueueFull(f"the server is busy: {self.jobs.maxsize} requests are already waiting "
                            "(korlhf serve --max_queue); retry shortly") from None

    def close(self) -> None:
        """Finish the job in progress, then stop the worker (waiting jobs are cancelled)."""
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.cancelled.set()
                job.on_event("error", "the server is shutting down")
        self.jobs.put(None)
        self.thread.join(timeout=30)

    def _work(self) -> None:
        while (job := self.jobs.get()) is not None:
            if job.cancelled.is_set():
                self.stats["cancelled"] += 1  # the client left while the job waited
                continue
            self.busy = True
            try:
                reply = stream_reply(self.model, self.tokenizer, job.input_ids, job.decoding,
                                     on_text=lambda piece, job=job: job.on_event("text", piece),
                                     cancelled=job.cancelled.is_set, strip_leading=job.strip_leading)
                self.stats["cancelled" if reply.finish_reason == "cancelled" else "served"] += 1
                if reply.dropped:
                    self.stats["invalid_bytes_dropped"] += reply.dropped
                    log.info("dropped %d invalid byte sequence(s) (U+FFFD) from an answer", reply.dropped)
                job.on_event("done", reply)
            except Exception as exc:  # one bad request must not kill the worker
                self.stats["failed"] += 1
                log.exception("generation failed")
                job.on_event("error", f"generation failed: {type(exc).__name__}: {exc}")
            finally:
                self.busy = False

    def open(self, input_ids: list[int], decoding: Decoding, strip_leading: bool = True,
             ) -> AsyncIterator[tuple[str, object]]:
        """Queue a job now (`QueueFull` if there is no room) and return its events for the caller's loop.

        Call from a coroutine. Leaving the iteration early (a client disconnects mid-stream) cancels
        the job: a waiting job is skipped, a running one stops at its next token.
        """
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[str, object]] = asyncio.Queue()

        def on_event(kind: str, value: object) -> None:
            try:
                loop.call_soon_threadsafe(events.put_nowait, (kind, value))
            except RuntimeError:  # the loop is closed: nobody is listening any more
                job.cancelled.set()

        job = Job(input_ids, decoding, on_event, strip_leading)
        self.submit(job)
        return _events(job, events)


async def _events(job: Job, events: asyncio.Queue) -> AsyncIterator[tuple[str, object]]:
    try:
        while True:
            kind, value = await events.get()
            yield kind, value
            if kind in ("done", "error"):
                return
    finally:
        job.cancelled.set()
