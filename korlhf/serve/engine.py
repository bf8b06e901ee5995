"""The generation worker: one thread answers queued requests, in batches when several wait.

HTTP handlers run on uvicorn's event loop; generation is blocking PyTorch work. Each request
becomes a `Job` in a bounded FIFO queue, and a single worker thread takes the first job with
every job waiting behind it (up to ``max_batch``): a job alone runs `korlhf.conversation.stream_reply`,
several run together in `korlhf.serve.batch` (dynamic batching: requests that arrive while a
batch runs form the next one). Each streamed piece goes back to its own request's event queue;
every request keeps its own settings, stop strings, token budget and seed (a greedy or seeded
answer is the same batched or alone).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from korlhf.conversation import Reply, stream_reply
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

    def __init__(self, model, tokenizer, max_queue: int = 128, max_batch: int = 16):
        self.model, self.tokenizer, self.max_batch = model, tokenizer, max_batch
        self.jobs: queue.Queue[Job | None] = queue.Queue(maxsize=max_queue)
        self.busy = False
        self.stats = {"served": 0, "cancelled": 0, "failed": 0, "invalid_bytes_dropped": 0, "batches": 0,
                      "largest_batch": 0}
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
        stopping = False
        while not stopping and (job := self.jobs.get()) is not None:
            batch = [job]
            while len(batch) < self.max_batch:  # everyone who waited while the last batch ran
                try:
                    more = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.append(more)
            live = [j for j in batch if not j.cancelled.is_set()]
            self.stats["cancelled"] += len(batch) - len(live)  # clients that left while their job waited
            if not live:
                continue
            self.busy = True
            try:
                self._together(live) if len(live) > 1 else self._alone(live[0])
            finally:
                self.busy = False

    def _alone(self, job: Job) -> None:
        try:
            reply = stream_reply(self.model, self.tokenizer, job.input_ids, job.decoding,
                                 on_text=lambda piece: job.on_event("text", piece),
                                 cancelled=job.cancelled.is_set, strip_leading=job.strip_leading)
        except Exception as exc:  # one bad request must not kill the worker
            self._failed([job], exc)
            return
        self._done(job, reply)

    def _together(self, jobs: list[Job]) -> None:
        from korlhf.serve.batch import Row, Unbatchable, batch_replies

        rows = [Row(j.input_ids, j.decoding, on_text=lambda piece, j=j: j.on_event("text", piece),
                    cancelled=j.cancelled.is_set, strip_leading=j.strip_leading) for j in jobs]
        try:
            replies = batch_replies(self.model, self.tokenizer, rows)
        except Unbatchable as exc:  # nothing was streamed: answer them one by one instead
            log.warning("batching is not available (%s); answering one request at a time", exc)
            self.max_batch = 1
            for job in jobs:
                self._alone(job)
            return
        except Exception as exc:
            self._failed(jobs, exc)
            return
        self.stats["batches"] += 1
        self.stats["largest_batch"] = max(self.stats["largest_batch"], len(jobs))
        for job, reply in zip(jobs, replies, strict=True):
            self._done(job, reply)

    def _done(self, job: Job, reply: Reply) -> None:
        self.stats["cancelled" if reply.finish_reason == "cancelled" else "served"] += 1
        if reply.dropped:
            self.stats["invalid_bytes_dropped"] += reply.dropped
            log.info("dropped %d invalid byte sequence(s) (U+FFFD) from an answer", reply.dropped)
        job.on_event("done", reply)

    def _failed(self, jobs: list[Job], exc: Exception) -> None:
        self.stats["failed"] += len(jobs)
        log.exception("generation failed")
        for job in jobs:
            job.on_event("error", f"generation failed: {type(exc).__name__}: {exc}")

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
