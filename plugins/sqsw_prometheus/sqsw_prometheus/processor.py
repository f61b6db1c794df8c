"""Job outcomes and durations, measured by a processor around every job."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from sqsw_core.exceptions import JobTimeLimitExceeded, RetryJob
from sqsw_core.processors import HandlerCall, Processor, when_done

if TYPE_CHECKING:
    from sqsw_prometheus.instruments import Instruments

__all__ = ["MetricsProcessor"]


class MetricsProcessor(Processor):
    """Counts each job by outcome and observes its duration (``sqsw_jobs_total``,
    ``sqsw_job_duration_seconds``). Made for one :class:`Instruments` by :meth:`using`."""

    instruments: ClassVar[Instruments | None] = None

    @classmethod
    def using(cls, instruments: Instruments) -> type[MetricsProcessor]:
        """A subclass counting into ``instruments``."""
        return type(
            cls.__name__, (cls,), {"instruments": instruments, "__module__": cls.__module__}
        )

    def _series(self) -> tuple[Any, Any, Any, Any, Any]:
        """This processor's labelled series (made once): succeeded, failed, retried,
        duration, timed out."""
        series = self.__dict__.get("_sqsw_series")
        if series is None:
            instruments = self.instruments
            assert instruments is not None, "MetricsProcessor.using(instruments) makes a usable one"
            queue, job = self.queue.name, self.job_name
            series = self.__dict__["_sqsw_series"] = (
                instruments.jobs.labels(queue, job, "succeeded"),
                instruments.jobs.labels(queue, job, "failed"),
                instruments.jobs.labels(queue, job, "retried"),
                instruments.duration.labels(queue, job),
                instruments.jobs.labels(queue, job, "timed_out"),
            )
        return series

    def process(self, job_kwargs: dict[str, Any], job_context: Any = None) -> Any:
        series = self._series()
        start = time.perf_counter()
        try:
            result = super().process(job_kwargs, job_context)
        except BaseException as exc:
            self._observe(series, start, exc)
            raise
        # An async job ends when its coroutine does: observed then.
        return when_done(result, partial(self._observe, series, start))

    @staticmethod
    def _observe(
        series: tuple[Any, Any, Any, Any, Any], start: float, error: BaseException | None
    ) -> None:
        succeeded, failed, retried, duration, timed_out = series
        duration.observe(time.perf_counter() - start)
        if error is None:
            succeeded.inc()
        elif isinstance(error, RetryJob):
            retried.inc()
        elif isinstance(error, JobTimeLimitExceeded):
            timed_out.inc()  # an async job cancelled at its time limit
        else:
            failed.inc()

    @classmethod
    @contextmanager
    def handling(cls, call: HandlerCall) -> Iterator[HandlerCall]:
        """Around a raw queue's handler or a bulk job: one duration for the call, one
        outcome per message (those the handler reported failed count as failed)."""
        instruments = cls.instruments
        assert instruments is not None, "MetricsProcessor.using(instruments) makes a usable one"
        queue, job = call.queue.name, call.job_name or ""
        start = time.perf_counter()
        outcome = "failed"
        try:
            with super().handling(call):
                yield call
            outcome = "succeeded"
        except RetryJob:
            outcome = "retried"
            raise
        finally:
            instruments.duration.labels(queue, job).observe(time.perf_counter() - start)
            count = len(call.messages)
            failed = len(call.failed) if outcome == "succeeded" else 0
            if count - failed:
                instruments.jobs.labels(queue, job, outcome).inc(count - failed)
            if failed:
                instruments.jobs.labels(queue, job, "failed").inc(failed)
