"""The engine's async jobs: coroutines in flight on the job loop, settled by a thread.

A job thread that starts an async job (``JobRunner.start_message``) hands its
coroutine to the job loop (:mod:`sqsw_core.job_loop`) and goes on to the next
job, so one process holds up to ``async_concurrency`` coroutines in flight
while ``concurrency`` threads run the sync ones. When a coroutine ends, the
loop passes it here; a settling thread of the engine settles its message
(ack, or retry after the backoff: SQS calls never run on the loop) and counts
it like a job thread's job. A job thread that started the
``async_concurrency``-th coroutine waits for one to end before it takes
another job. A cold stop cancels what is still running: the engine has
released those messages, so they are not settled.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from sqsw_core.job_loop import JOB_LOOP, LoopJob
from sqsw_core.job_threads import FAILED, JobThread
from sqsw_core.results import RELEASED, Outcome

if TYPE_CHECKING:
    from sqsw_core.engine import QueueEngine
    from sqsw_core.messages import Message

logger = logging.getLogger("sqsw.engine")

#: Coroutines in flight per engine when ``async_concurrency`` is not given.
DEFAULT_ASYNC_CONCURRENCY = 1000


class AsyncJob(LoopJob):
    """An async job of the engine on the job loop: its message beside it."""

    __slots__ = ("message",)

    def __init__(self, awaitable: Awaitable[Any], ended: Any, message: Message) -> None:
        super().__init__(awaitable, ended)
        self.message = message


class AsyncJobs:
    """The async jobs of one engine: started by job threads, settled by a thread of its own."""

    def __init__(self, engine: QueueEngine, limit: int) -> None:
        self.engine = engine
        self.limit = limit
        self._lock = threading.Lock()
        #: Job threads wait here while ``limit`` coroutines are in flight.
        self.room = threading.Condition(self._lock)
        #: The jobs in flight; whoever takes a job out of it (the settling thread
        #: when it ended, a cold stop's :meth:`cancel`) settles and counts it.
        self.running: set[AsyncJob] = set()
        self._cancelled = False
        self._ended: queue.SimpleQueue[AsyncJob | None] = queue.SimpleQueue()
        self._counter = JobThread(engine)  # counts settled jobs as a job thread does
        self._thread: threading.Thread | None = None

    def start_awaitable(self, message: Message, awaitable: Awaitable[Any]) -> Outcome | None:
        """Start the async job of ``message`` from a job thread: ``awaitable``, what
        ``JobRunner.start_message`` returned for it, goes on the job loop. ``None``: now in
        flight (settled and counted here when it ends); ``RELEASED``: a cold stop released
        the message already."""
        job = AsyncJob(awaitable, self._ended.put, message)
        running = self.running
        with self._lock:
            if self._cancelled:  # a cold stop released the message already
                job.close()
                return RELEASED
            if self._thread is None:
                self._start_thread()
            running.add(job)
            full = len(running) >= self.limit
        JOB_LOOP.start(job)
        if full:
            with self._lock:
                while len(running) >= self.limit and not self._cancelled:
                    self.room.wait()
        return None

    def _start_thread(self) -> None:
        self._thread = threading.Thread(
            target=self._settle_ended,
            name=f"sqsw-async-settle-{self.engine.queue.name}",
            daemon=True,
        )
        self._thread.start()

    def _settle_ended(self) -> None:
        """The settling thread: settle and count the coroutines that ended, all those
        that ended since it last looked at once."""
        get, empty = self._ended.get, self._ended.empty
        while True:
            ended = [get()]
            while not empty():
                ended.append(get())
            closing = None in ended
            with self._lock:
                mine = [job for job in ended if job in self.running]
                self.running.difference_update(mine)
                if mine:
                    self.room.notify(len(mine))
            for job in mine:
                self._settle(job)
            if closing:
                return

    def _settle(self, job: AsyncJob) -> None:
        """Settle and count one async job that ended."""
        message = job.message
        outcome = FAILED
        try:
            outcome = self.engine.runner.finish_async(message, job.error)
        except BaseException:  # finish_async never raises; if settling did, retry
            if self.engine.keeper.is_held(message):
                logger.exception("Settling async job %s failed", message.message_id)
                self.engine.settler.retry(message)
        finally:
            self._counter.done_one(message, outcome)

    def cancel(self) -> int:
        """Cancel the coroutines still running (a cold stop, which released their
        messages: they are counted, not settled); how many were."""
        with self._lock:
            self._cancelled = True
            jobs = list(self.running)
            self.running.clear()
            self.room.notify_all()
        JOB_LOOP.cancel(jobs)
        for job in jobs:
            self._counter.done_one(job.message, RELEASED)
        return len(jobs)

    def close(self) -> None:
        """Stop the settling thread once it has settled what ended before now."""
        if self._thread is not None:
            self._ended.put(None)
            self._thread.join(timeout=5)
