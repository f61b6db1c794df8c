"""Sending from asyncio code: the SQS calls run on threads, the event loop never waits.

``await task.delay_async(...)`` and ``await queue.add_job_async(...)`` encode the
job in the calling coroutine (so its context, ``sqs.context`` and tracing
spans, is the caller's) and make the blocking boto3 call on a thread of the
environment's :class:`AsyncSender`, with the caller's context variables.
``async with queue.add_batch_async():`` buffers the jobs of a block, shared by
the tasks started in it, and sends them 10 per ``SendMessageBatch`` call.

A cancelled ``delay_async`` cannot take back a send already on its way: the job
may still be enqueued. boto3 stays the SQS client: one retry layer (sqsw's),
the same errors as the synchronous calls.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from types import MappingProxyType
from typing import Any, TypeVar

from sqsw_core.limits import DEFAULT_MAX_MESSAGE_SIZE
from sqsw_core.sending import (
    BatchSender,
    SendBatch,
    batch_entries,
    check_size,
    message_size,
)

T = TypeVar("T")

#: The ``add_batch_async()`` blocks the current task is in: queue -> its batch. Tasks
#: started inside a block inherit it (context variables are copied into new tasks).
ASYNC_BATCHES: contextvars.ContextVar[Mapping[object, AsyncSendBatch]] = contextvars.ContextVar(
    "sqsw_async_batches", default=MappingProxyType({})
)

#: Threads sending for coroutines, per environment and process. Few: a botocore call
#: is mostly Python (about a millisecond of CPU per request), and every sending thread
#: competes with the event loop for the GIL; with 4, a loop sending 1,000 jobs at once
#: stays within a few tens of milliseconds of its schedule (benchmarks/async_enqueue.py).
#: Where requests mostly wait on the network (far from the SQS region), more threads
#: send more at once: ``sqs.async_sender = AsyncSender(threads=16)``.
SEND_THREADS = 4


class AsyncSender:
    """Runs blocking SQS calls on threads of its own, for coroutines (one per environment)."""

    def __init__(self, threads: int = SEND_THREADS) -> None:
        self.threads = threads
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._pid = 0

    def _pool(self) -> ThreadPoolExecutor:
        pid = os.getpid()
        with self._lock:  # a forked child starts a pool of its own (threads do not fork)
            if self._executor is None or self._pid != pid:
                self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="sqsw-send")
                self._pid = pid
            return self._executor

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a sending thread, with the calling task's context variables."""
        call = functools.partial(contextvars.copy_context().run, fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self._pool(), call)

    def close(self) -> None:
        """Stop the threads once the sends on their way are done."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)


class AsyncSendBatch:
    """Jobs buffered by ``queue.add_batch_async()``: sent 10 (or fewer, by size) per call.

    Tasks started inside the block share it. Refused entries raise
    :class:`~sqsw_core.exceptions.SQSBatchError` at the end of the block.
    """

    def __init__(
        self, queue: BatchSender, sender: AsyncSender, max_bytes: int = DEFAULT_MAX_MESSAGE_SIZE
    ) -> None:
        self.queue = queue
        self.sender = sender
        self.buffer = SendBatch(queue, max_bytes)
        self.closed = False

    @property
    def message_ids(self) -> list[str]:
        """The ids of the messages SQS accepted so far."""
        return self.buffer.message_ids

    async def add(self, entry: dict[str, Any], job_name: str | None) -> None:
        """Buffer one message; send a full batch (awaited here)."""
        if self.closed:
            raise RuntimeError(
                f"add_batch_async() block of queue {self.queue.name!r} has ended: await "
                "every delay_async()/add_job_async() of the block before it ends"
            )
        buffer = self.buffer
        size = message_size(entry)
        check_size(self.queue.name, job_name, size, buffer.max_bytes)
        if buffer.starts_new(size):
            await self.flush()
        if buffer.append(entry, job_name, size):
            await self.flush()

    async def flush(self) -> None:
        """Send what is buffered in one ``SendMessageBatch`` call."""
        buffer = self.buffer
        if buffer.entries:
            # Taken before the await: another task adding meanwhile starts a new chunk.
            chunk = buffer.take()
            response = await self.sender.run(self.queue.send_entries, batch_entries(chunk))
            buffer.record(chunk, response)

    async def close(self) -> None:
        """Send the rest; raise :class:`SQSBatchError` if any entry was refused."""
        self.closed = True
        await self.flush()
        self.buffer.raise_refused()
