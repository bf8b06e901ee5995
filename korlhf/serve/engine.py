"""The generation worker: one thread answers queued requests, together while several are open.

HTTP handlers run on uvicorn's event loop; generation is blocking PyTorch work. Each request
becomes a `Job` in a bounded FIFO queue. A single worker thread keeps one `korlhf.serve.batch.Batch`
running (continuous batching): before each token it lets the jobs that waited join (up to
``max_batch`` running), and a finished job leaves at once. With ``max_batch`` 1 a job runs alone
in `korlhf.conversation.stream_reply` (``model.generate``). (Beam and contrastive search, which
cannot stream, never reach the engine: `DecodingFields.decoding` refuses them.)
Each streamed piece goes back to its own request's event queue; every request keeps its own
settings, stop strings, token budget and seed (a greedy or seeded answer is the same batched or alone).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import contextmanager
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
        self.outbox = Outbox()
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
        """Finish the jobs in progress, then stop the worker (waiting jobs are cancelled)."""
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
        from korlhf.serve.batch import Batch, Row, Unbatchable

        batch, running, stopping = None, {}, False  # running: each row in the batch -> its job
        while not (stopping and not running):
            room = self.max_batch - len(running) if self._join_now(running, batch) else 0
            new, stopping = self._take(block=not running, room=room, stopping=stopping)
            self.busy = bool(new or running)
            if self.max_batch == 1:
                for job in new:
                    self._alone(job)
                new = []
            rows = [Row(job.input_ids, job.decoding, on_text=lambda piece, job=job: job.on_event("text", piece),
                        cancelled=job.cancelled.is_set, strip_leading=job.strip_leading) for job in new]
            try:
                with self.outbox.held():
                    if rows:
                        batch = batch if batch is not None else Batch(self.model, self.tokenizer)
                        running.update(zip(rows, new, strict=True))
                        finished = batch.add(rows)
                        self.stats["batches"] += 1
                    else:
                        finished = batch.step() if running else []
            except Unbatchable as exc:  # raised before the new rows streamed anything; the batch is intact
                log.warning("batching is not available (%s); answering one request at a time", exc)
                self.max_batch = 1
                for row, job in zip(rows, new, strict=True):
                    running.pop(row, None)
                    self._alone(job)
                continue
            except Exception as exc:  # one bad request must not kill the worker
                self._failed(list(running.values()), exc)
                batch, self.busy = None, False  # its state may be half-updated: start a new one
                running.clear()
                continue
            self.stats["largest_batch"] = max(self.stats["largest_batch"], len(running))
            for row in finished:
                self._done(running.pop(row), row.reply)
            self.busy = bool(running)
        self.busy = False

    def _join_now(self, running: dict, batch) -> bool:
        """Whether the jobs waiting join the running batch before the next token.

        Joining costs one extra forward pass (the newcomers' prompts), about as much as a token for
        the whole batch on a small model; so newcomers wait until they are a quarter of the running
        rows, which keeps that cost to one forward pass per quarter-batch of answers.
        """
        if not running:
            return True
        if not batch.can_join:
            return False
        return self.jobs.qsize() * 4 >= len(running)

    def _take(self, block: bool, room: int, stopping: bool) -> tuple[list[Job], bool]:
        """The jobs that waited (up to ``room``; wait for one if ``block``), and whether to stop."""
        taken: list[Job] = []
        while not stopping and len(taken) < room:
            try:
                job = self.jobs.get() if block and not taken else self.jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                stopping = True
            elif job.cancelled.is_set():  # its client left while it waited
                self.stats["cancelled"] += 1
            else:
                taken.append(job)
        return taken, stopping

    def _alone(self, job: Job) -> None:
        try:
            reply = stream_reply(self.model, self.tokenizer, job.input_ids, job.decoding,
                                 on_text=lambda piece: job.on_event("text", piece),
                                 cancelled=job.cancelled.is_set, strip_leading=job.strip_leading)
        except Exception as exc:  # one bad request must not kill the worker
            self._failed([job], exc)
            return
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

    def open(self, input_ids: list[int], decoding: Decoding, strip_leading: bool = True, stream: bool = True,
             ) -> AsyncIterator[tuple[str, object]]:
        """Queue a job now (`QueueFull` if there is no room) and return its events for the caller's loop.

        Call from a coroutine. Leaving the iteration early (a client disconnects mid-stream) cancels
        the job: a waiting job is skipped, a running one stops at its next token. Without ``stream``
        only the end comes back (waking the loop for every piece would cost each token a thread switch).
        """
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[str, object]] = asyncio.Queue()

        def on_event(kind: str, value: object) -> None:
            if kind == "text" and not stream:
                return
            self.outbox.post(loop, events, (kind, value), job)

        job = Job(input_ids, decoding, on_event, strip_leading)
        self.submit(job)
        return _events(job, events)


class Outbox:
    """Events on their way from the worker thread to the event loops that wait for them.

    Each ``call_soon_threadsafe`` wakes a loop (a write to its pipe, a thread switch); with 16
    streamed requests, one per request and token was 16 wake-ups per decoding step. While the
    worker runs a step (`held`) events wait here and then go as one call per loop.
    """

    def __init__(self):
        self.lock, self.pending, self.holding = threading.Lock(), [], False

    def post(self, loop, events: asyncio.Queue, item: tuple[str, object], job: Job) -> None:
        with self.lock:
            self.pending.append((loop, events, item, job))
            if self.holding:
                return
        self.flush()

    @contextmanager
    def held(self):
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
            self.flush()

    def flush(self) -> None:
        with self.lock:
            pending, self.pending = self.pending, []
        by_loop: dict = {}
        for loop, events, item, job in pending:
            by_loop.setdefault(loop, []).append((events, item, job))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                for _, _, job in items:
                    job.cancelled.set()


def _deliver(items: list) -> None:
    for events, item, _ in items:
        events.put_nowait(item)


async def _events(job: Job, events: asyncio.Queue) -> AsyncIterator[tuple[str, object]]:
    try:
        while True:
            kind, value = await events.get()
            yield kind, value
            if kind in ("done", "error"):
                return
    finally:
        job.cancelled.set()
