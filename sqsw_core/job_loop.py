"""The event loop that runs ``async def`` jobs: one thread per worker process.

A job whose function is a coroutine function (or whose processor returns an
awaitable) runs as a task on this loop. The engine hands the coroutine over
and moves on, so one process holds as many coroutines in flight as its
``async_concurrency`` allows, each settled (ack or retry) when it ends;
``process_batch``, bulk and raw handlers and the pytest plugin wait for each
in turn (:meth:`JobLoop.run`).

The loop is started on first use and belongs to the process: a forked child
(``workers=N``) starts its own. A job's ``KeyboardInterrupt`` or
``SystemExit`` is carried out of its task (asyncio would re-raise it out of
the loop itself, ending it): :func:`original` gives it back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import os
import threading
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

#: The name of the loop's thread (jobs and logs see it).
THREAD_NAME = "sqsw-async-loop"


class _Interrupt(Exception):
    """A job's ``KeyboardInterrupt`` or ``SystemExit``, carried out of its task."""

    def __init__(self, interrupt: BaseException) -> None:
        super().__init__(repr(interrupt))
        self.interrupt = interrupt


async def _carried(job: Awaitable[T]) -> T:
    """A coroutine of any awaitable (the loop runs coroutines), its interrupts carried."""
    try:
        return await job
    except (KeyboardInterrupt, SystemExit) as exc:
        raise _Interrupt(exc) from None


def original(exc: BaseException) -> BaseException:
    """What a job raised, from what its future raised (an interrupt given back)."""
    return exc.interrupt if isinstance(exc, _Interrupt) else exc


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

    def submit(self, job: Awaitable[T]) -> concurrent.futures.Future[T]:
        """Run ``job`` as a task on the loop; its future (cancel it to cancel the task).
        The task starts with a copy of the calling thread's context variables (asyncio's
        call_soon_threadsafe copies them), so a Lambda invocation's context reaches it.
        What the future raises goes through :func:`original`."""
        return asyncio.run_coroutine_threadsafe(_carried(job), self.loop())

    def run(self, job: Awaitable[T]) -> T:
        """Run ``job`` on the loop and wait for its result, raising what it raised (not
        from the loop's own thread)."""
        if self.in_loop_thread():
            if inspect.iscoroutine(job):
                job.close()
            raise RuntimeError(
                "a job was run from inside sqsw's job loop (an async job that calls "
                "process_batch?): run it from a thread of its own"
            )
        try:
            return self.submit(job).result()
        except _Interrupt as carried:
            raise carried.interrupt from None


#: The process's job loop.
JOB_LOOP = JobLoop()
