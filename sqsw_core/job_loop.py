"""The event loop that runs ``async def`` jobs: one thread per worker process.

A job whose function is a coroutine function (or whose processor returns an
awaitable) runs as a task on this loop. The engine hands the coroutine over
and moves on, so one process holds as many coroutines in flight as its
``async_concurrency`` allows, each settled (ack or retry) when it ends;
``process_batch`` and the pytest plugin wait for each in turn.

The loop is started on first use and belongs to the process: a forked child
(``workers=N``) starts its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

#: The name of the loop's thread (jobs and logs see it).
THREAD_NAME = "sqsw-async-loop"


class JobLoop:
    """An asyncio event loop in a daemon thread of its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0

    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop (started now if needed, and again in a forked child)."""
        pid = os.getpid()
        with self._lock:
            if self._loop is None or self._pid != pid:
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                thread = threading.Thread(
                    target=self._run, args=(loop, ready), name=THREAD_NAME, daemon=True
                )
                thread.start()
                ready.wait()
                self._loop, self._thread, self._pid = loop, thread, pid
            return self._loop

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    def in_loop_thread(self) -> bool:
        """Whether the calling thread is this loop's."""
        return self._thread is threading.current_thread()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` as a task on the loop; its future (cancel it to cancel the task).
        The task starts with a copy of the calling thread's context variables (asyncio's
        call_soon_threadsafe copies them), so a Lambda invocation's context reaches it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for its result (not from the loop's thread)."""
        if self.in_loop_thread():
            coro.close()
            raise RuntimeError(
                "a job queue was processed from inside sqsw's job loop (an async job that "
                "calls process_batch?): run it from a thread of its own"
            )
        return self.submit(coro).result()


#: The process's job loop.
JOB_LOOP = JobLoop()
