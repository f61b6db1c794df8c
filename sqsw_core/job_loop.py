"""The event loop that runs ``async def`` jobs: one thread per worker process.

A job whose function is a coroutine function (or whose processor returns an
awaitable) runs as a task on this loop. The engine hands the coroutine over
and moves on, so one process holds as many coroutines in flight as its
``async_concurrency`` allows, each settled (ack or retry) when it ends;
``process_batch``, bulk and raw handlers and the pytest plugin wait for each
in turn (:meth:`JobLoop.run`).

The engine starts its jobs with :meth:`JobLoop.start`, built for many jobs:
the jobs handed over while the loop is busy start together on its next turn
(one wake-up of the loop for all of them), each as a task of its own with no
future to chain, and each reports its end by one call of its ``ended``.

The loop is started on first use and belongs to the process: a forked child
(``workers=N``) starts its own. A job's ``KeyboardInterrupt`` or
``SystemExit`` is carried out of its task (asyncio would re-raise it out of
the loop itself, ending it): :func:`original` gives it back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import os
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

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


class LoopJob:
    """A job for :meth:`JobLoop.start`: ``awaitable`` runs as a task of its own; when it
    ends, ``error`` holds what it raised (``None``: it returned) and ``ended(self)`` is
    called on the loop's thread (keep it short). Nothing it raises, not even
    ``KeyboardInterrupt``, ``SystemExit`` or ``CancelledError``, leaves the task."""

    __slots__ = ("awaitable", "cancelled", "context", "ended", "error", "task")

    def __init__(self, awaitable: Awaitable[Any], ended: Callable[[Any], object]) -> None:
        self.awaitable: Awaitable[Any] | None = awaitable
        self.ended = ended
        self.error: BaseException | None = None
        self.context: contextvars.Context | None = None
        self.task: asyncio.Task[None] | None = None
        self.cancelled = False

    def close(self) -> None:
        """Drop a job that will not start (a coroutine is closed, so Python does not
        warn that it was never awaited)."""
        if inspect.iscoroutine(self.awaitable):
            self.awaitable.close()
        self.awaitable = None


async def _reported(job: LoopJob) -> None:
    """Await ``job``'s awaitable, then report its end (the task never raises)."""
    try:
        await job.awaitable  # type: ignore[misc]
    except BaseException as exc:  # the job's failure, told to ``ended``
        job.error = exc
    job.awaitable = None
    job.ended(job)


if sys.version_info >= (3, 11):

    def _create_task(loop: asyncio.AbstractEventLoop, job: LoopJob) -> asyncio.Task[None]:
        return loop.create_task(_reported(job), context=job.context)

else:

    def _create_task(loop: asyncio.AbstractEventLoop, job: LoopJob) -> asyncio.Task[None]:
        assert job.context is not None
        return job.context.run(loop.create_task, _reported(job))


class JobLoop:
    """An asyncio event loop in a daemon thread of its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0
        #: Jobs handed to :meth:`start` that the loop has not started yet.
        self._starting: list[LoopJob] = []
        self._starting_lock = threading.Lock()
        if hasattr(os, "register_at_fork"):  # POSIX
            os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        """In a forked child: what the parent handed its loop is the parent's."""
        self._starting = []
        self._starting_lock = threading.Lock()

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

    def start(self, job: LoopJob) -> None:
        """Start ``job`` on the loop, with a copy of the calling thread's context variables
        (as :meth:`submit`). Jobs handed over while the loop is busy start together."""
        job.context = contextvars.copy_context()
        with self._starting_lock:
            starting = self._starting
            starting.append(job)
            if len(starting) > 1:
                return  # the loop is told already
        self.loop().call_soon_threadsafe(self._start_waiting)

    def _start_waiting(self) -> None:
        """On the loop: start the jobs handed to :meth:`start` since last time."""
        with self._starting_lock:
            starting, self._starting = self._starting, []
        loop = self._loop
        assert loop is not None
        for job in starting:
            if job.cancelled:
                job.close()
            else:
                job.task = _create_task(loop, job)

    def cancel(self, jobs: Iterable[LoopJob]) -> None:
        """Cancel ``jobs`` (from any thread): a task that runs is cancelled on the loop's
        next turn, a job not started yet never starts. A cancelled job may still call
        its ``ended`` (it saw the cancellation, or ended first)."""
        jobs = list(jobs)
        if not jobs:
            return
        for job in jobs:
            job.cancelled = True
        self.loop().call_soon_threadsafe(_cancel_tasks, jobs)

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


def _cancel_tasks(jobs: list[LoopJob]) -> None:
    """On the loop: cancel the tasks of jobs that started (the others never will)."""
    for job in jobs:
        if job.task is not None:
            job.task.cancel()


#: The process's job loop.
JOB_LOOP = JobLoop()
