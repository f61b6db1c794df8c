"""Batch processors: one call of a job function for many messages of one job.

``@queue.batch_processor("index", max_batch=50, max_wait=0.5)`` registers a
function that takes a list of jobs (each a dict of keyword arguments). The
engine gathers messages of that job across receives until ``max_batch`` are
there or the first has waited ``max_wait`` seconds. The function reports
per-job failures by returning the indices that failed, or by raising
:class:`BatchJobsFailed`; only those jobs are retried, the rest are acked.
Any other exception fails the whole batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sqsw_core.exceptions import SQSError

if TYPE_CHECKING:
    from sqsw_core.context import JobContext
    from sqsw_core.queue import GenericQueue


class BatchJobsFailed(SQSError):
    """Raised by a batch processor: these jobs of the batch failed (by index).

    ``failed`` maps each failed index to its exception (or is an iterable of
    indices); the other jobs of the batch succeeded and are acked.
    """

    def __init__(self, failed: Mapping[int, BaseException | None] | Iterable[int]) -> None:
        self.failed: dict[int, BaseException | None] = (
            dict(failed) if isinstance(failed, Mapping) else dict.fromkeys(failed)
        )
        super().__init__(f"{len(self.failed)} job(s) of the batch failed: {sorted(self.failed)}")


class BatchProcessor:
    """Calls ``fn(jobs)`` with a list of decoded jobs of ``job_name``."""

    def __init__(
        self,
        queue: GenericQueue,
        fn: Callable[[list[dict[str, Any]]], Any],
        job_name: str,
        max_batch: int = 10,
        max_wait: float = 1.0,
        pass_context: bool = False,
        context_var: str = "context",
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait < 0:
            raise ValueError(f"max_wait must be >= 0, got {max_wait}")
        self.queue = queue
        self.fn = fn
        self.job_name = job_name
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.pass_context = pass_context
        self.context_var = context_var

    def run(self, jobs: list[tuple[dict[str, Any], JobContext]]) -> set[int]:
        """Call the function; the indices of the jobs that failed (empty: all ok).

        Raises when the whole batch failed.
        """
        if self.pass_context:
            arguments = [{**kwargs, self.context_var: context} for kwargs, context in jobs]
        else:
            arguments = [kwargs for kwargs, _ in jobs]
        try:
            result = self.fn(arguments)
        except BatchJobsFailed as failed:
            return {i for i in failed.failed if 0 <= i < len(jobs)}
        if result is None or result is True:
            return set()
        if isinstance(result, Iterable) and not isinstance(result, (str, bytes, Mapping)):
            return {int(i) for i in result if 0 <= int(i) < len(jobs)}
        raise TypeError(
            f"batch processor {self.queue.name}.{self.job_name} returned {result!r}: return "
            "None (all succeeded) or the indices of the jobs that failed"
        )

    def __repr__(self) -> str:
        return (
            f"<BatchProcessor {self.queue.name}.{self.job_name} max_batch={self.max_batch} "
            f"max_wait={self.max_wait}>"
        )
