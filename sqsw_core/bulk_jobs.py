"""Bulk processors: one call of a job function for many messages of one job.

``@queue.bulk_processor("index", max_jobs=50, max_wait=0.5)`` registers a
function that takes a list of jobs (each a dict of keyword arguments). The
engine gathers messages of that job across receives until ``max_jobs`` are
there or the first has waited ``max_wait`` seconds. The function reports
per-job failures by returning the indices that failed, or by raising
:class:`BulkJobsFailed`; only those jobs are retried, the rest are acked.
Any other exception fails every job of the call, and so does a report sqsw cannot
read (:class:`~sqsw_core.exceptions.BulkReportError`).
"""

from __future__ import annotations

import inspect
import operator
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sqsw_core.exceptions import BulkReportError, SQSError, quote
from sqsw_core.job_loop import JOB_LOOP
from sqsw_core.processors import refuse_async, refuse_awaitable

if TYPE_CHECKING:
    from sqsw_core.context import JobContext
    from sqsw_core.queue import GenericQueue


class BulkJobsFailed(SQSError):
    """Raised by a bulk processor: these jobs of the batch failed (by index).

    ``failed`` maps each failed index to its exception (or is an iterable of
    indices); the other jobs of the batch succeeded and are acked.
    """

    def __init__(self, failed: Mapping[int, BaseException | None] | Iterable[int]) -> None:
        self.failed: dict[int, BaseException | None] = (
            dict(failed) if isinstance(failed, Mapping) else dict.fromkeys(failed)
        )
        super().__init__(f"{len(self.failed)} job(s) of the batch failed: {sorted(self.failed)}")


class BatchingConfiguration(ABC):
    """sqs-workers' batch reads: whether a queue's processors get a list of jobs.

    ``sqs.queue(name, batching_policy=BatchMessages(batch_size=N))`` makes every
    ``@queue.processor`` of that queue a bulk processor (see :class:`BulkProcessor`)
    of up to ``N`` jobs; ``NoBatching()`` (the default) runs one job per call.
    """

    @property
    @abstractmethod
    def batching_enabled(self) -> bool:
        """Whether processors get a list of jobs."""

    @property
    @abstractmethod
    def batch_size(self) -> int:
        """How many jobs one call gets at most."""

    #: Seconds the engine waits for more jobs after the first of a call (sqsw's).
    max_wait: float = 0.0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BatchingConfiguration):
            return NotImplemented
        mine = (type(self), self.batch_size, self.max_wait)
        return mine == (type(other), other.batch_size, other.max_wait)

    def __hash__(self) -> int:
        return hash((type(self), self.batch_size, self.max_wait))


class NoBatching(BatchingConfiguration):
    """One job per call of the job function (the default)."""

    @property
    def batching_enabled(self) -> bool:
        return False

    @property
    def batch_size(self) -> int:
        return 1

    def __repr__(self) -> str:
        return "NoBatching()"


class BatchMessages(BatchingConfiguration):
    """Processors get a list of up to ``batch_size`` jobs (dicts of keyword arguments).

    As in sqs-workers, an exception retries every job of the call and the return
    value is ignored; sqsw's ``BulkJobsFailed({index: error})`` retries only some.
    ``max_wait`` (sqsw only, default 0) lets the engine wait that long after the
    first job for more, to fill calls under light load.
    """

    def __init__(self, batch_size: int, *, max_wait: float = 0.0) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"BatchMessages(batch_size={batch_size!r}): give an int >= 1")
        if isinstance(max_wait, bool) or not isinstance(max_wait, int | float) or not max_wait >= 0:
            raise ValueError(f"BatchMessages(max_wait={max_wait!r}): give seconds >= 0")
        self.number_of_messages = batch_size
        self.max_wait = max_wait

    @property
    def batching_enabled(self) -> bool:
        return True

    @property
    def batch_size(self) -> int:
        return self.number_of_messages

    def __repr__(self) -> str:
        return f"BatchMessages(batch_size={self.number_of_messages!r})"


class BulkProcessor:
    """Calls ``fn(jobs)`` with a list of decoded jobs of ``job_name``."""

    def __init__(
        self,
        queue: GenericQueue,
        fn: Callable[[list[dict[str, Any]]], Any],
        job_name: str,
        max_jobs: int = 10,
        max_wait: float = 1.0,
        pass_context: bool = False,
        context_var: str = "context",
        *,
        ignore_result: bool = False,
    ) -> None:
        if max_jobs < 1:
            raise ValueError(f"max_jobs must be >= 1, got {max_jobs}")
        if max_wait < 0:
            raise ValueError(f"max_wait must be >= 0, got {max_wait}")
        refuse_async(fn, f"bulk job {job_name!r} on queue {queue.name!r}")
        self.queue = queue
        self.fn = fn
        self.job_name = job_name
        self.max_jobs = max_jobs
        self.max_wait = max_wait
        self.pass_context = pass_context
        self.context_var = context_var
        #: sqs-workers' batch processors: the return value says nothing (see BatchMessages).
        self.ignore_result = ignore_result

    def run(self, jobs: list[tuple[dict[str, Any], JobContext]]) -> set[int]:
        """Call the function; the indices of the jobs that failed (empty: all ok).

        Raises when every job failed, and :class:`BulkReportError` when
        the function's report of which jobs failed cannot be read: an index
        out of range, an item that is not an int (``True`` included), a
        ``BulkJobsFailed`` naming no job, or a return value that is neither
        ``None`` nor a list of indices. sqsw cannot tell which jobs of such a
        batch succeeded, so none of them is acked.
        """
        if self.pass_context:
            arguments = [{**kwargs, self.context_var: context} for kwargs, context in jobs]
        else:
            arguments = [kwargs for kwargs, _ in jobs]
        try:
            result = self.fn(arguments)
            if inspect.isawaitable(result):  # an async def bulk handler: run to its end
                result = JOB_LOOP.run(result)
        except BulkJobsFailed as failed:
            if not failed.failed:
                raise self._unclear(len(jobs), "raised BulkJobsFailed naming no job") from failed
            items = list(failed.failed)
            return self._indices(items, len(jobs), f"raised BulkJobsFailed({quote(items)})")
        if result is None or result is True or self.ignore_result:
            return set()
        refuse_awaitable(result, self.queue.name, self.job_name)
        if isinstance(result, (str, bytes, bytearray, Mapping)) or not isinstance(result, Iterable):
            raise self._unclear(len(jobs), f"returned {quote(repr(result))}")
        items = list(result)
        return self._indices(items, len(jobs), f"returned {quote(items)}")

    def _indices(self, items: list[Any], count: int, shown: str) -> set[int]:
        """``items`` as indices of failed jobs; :class:`BulkReportError` if any is unclear."""
        indices: set[int] = set()
        bad: list[Any] = []
        for item in items:
            index = None
            if not isinstance(item, bool):  # [True, False, ...] are flags, not indices
                try:
                    index = operator.index(item)
                except TypeError:
                    pass
            if index is None or not 0 <= index < count:
                bad.append(item)
            else:
                indices.add(index)
        if bad:
            raise self._unclear(count, f"{shown}, where {quote(bad)} are not job indices")
        return indices

    def _unclear(self, count: int, what: str) -> BulkReportError:
        return BulkReportError(
            f"bulk processor of job {quote(self.job_name)!r} on queue {self.queue.name!r} "
            f"{what} for a call with {count} job(s): return None (all succeeded) or the "
            f"indices of the jobs that failed (ints 0 to {count - 1}), or raise "
            "BulkJobsFailed({index: error}); sqsw cannot tell which jobs succeeded, so every "
            "job of the call is retried"
        )

    def __repr__(self) -> str:
        return (
            f"<BulkProcessor {self.queue.name}.{self.job_name} max_jobs={self.max_jobs} "
            f"max_wait={self.max_wait}>"
        )
