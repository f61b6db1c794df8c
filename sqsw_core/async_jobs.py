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
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from sqsw_core.job_threads import FAILED, JobThread
from sqsw_core.results import Outcome

if TYPE_CHECKING:
    from sqsw_core.engine import QueueEngine
    from sqsw_core.messages import Message

logger = logging.getLogger("sqsw.engine")

#: Coroutines in flight per engine when ``async_concurrency`` is not given.
DEFAULT_ASYNC_CONCURRENCY = 1000


class AsyncJobs:
    """The async jobs of one engine: started by job threads, settled by a thread of its own."""

    def __init__(self, engine: QueueEngine, limit: int) -> None:
        self.engine = engine
        self.limit = limit
        self.scheduler = engine.scheduler
        #: Job threads wait here while ``limit`` coroutines are in flight.
        self.room = threading.Condition(self.scheduler.lock)
        self.running: dict[Future[Any], Message] = {}
        self._ended: queue.SimpleQueue[tuple[Message, Future[Any]] | None] = queue.SimpleQueue()
        self._counter = JobThread(engine)  # counts settled jobs as a job thread does
        self._thread: threading.Thread | None = None

    def start(self, job_thread: JobThread, message: Message) -> Outcome | None:
        """Start ``message``'s job from ``job_thread``: the outcome of a sync job (run and
        settled, for the job thread to count), or ``None`` for an async job now in flight
        (settled and counted here when it ends)."""
        started = job_thread.runner.start_message(message, lambda f: self._ended.put((message, f)))
        if not isinstance(started, Future):
            return started[0]
        scheduler = self.scheduler
        with scheduler.lock:
            if not started.done():
                self.running[started] = message
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._settle_ended,
                    name=f"sqsw-async-settle-{self.engine.queue.name}",
                    daemon=True,
                )
                self._thread.start()
            while len(self.running) >= self.limit and self.engine.stop_requests < 2:
                self.room.wait()
        return None

    def _settle_ended(self) -> None:
        """The settling thread: settle and count each coroutine that ended, in turn."""
        runner = self.engine.runner
        while (item := self._ended.get()) is not None:
            message, future = item
            outcome = FAILED
            try:
                outcome = runner.finish_async(message, future)
            except BaseException:  # finish_async never raises; if settling did, retry
                if self.engine.keeper.is_held(message):
                    logger.exception("Settling async job %s failed", message.message_id)
                    self.engine.settler.retry(message)
            finally:
                self._counter.done_one(message, outcome)
                with self.scheduler.lock:
                    self.running.pop(future, None)
                    self.room.notify()

    def cancel(self) -> int:
        """Cancel the coroutines still running (a cold stop); how many were."""
        with self.scheduler.lock:
            futures = list(self.running)
            self.room.notify_all()
        return sum(1 for f in futures if f.cancel())

    def close(self) -> None:
        """Stop the settling thread once it has settled what ended before now."""
        if self._thread is not None:
            self._ended.put(None)
            self._thread.join(timeout=5)
