"""What running jobs produced: one job's outcome, a received batch's result, an
engine run's counters."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqsw_core.messages import Message


class Outcome:
    """How one received message ended: ``status`` is one of the constants below.

    ``retry_delay``: for a job that did not succeed, the seconds until SQS
    delivers it again (its FIFO group mates are delayed past it).
    """

    __slots__ = ("retry_delay", "status")

    SUCCEEDED = "succeeded"
    #: The job raised (or could not be decoded); retried after the backoff.
    FAILED = "failed"
    #: The job raised ``RetryJob``: not a failure, run again after the backoff.
    RETRIED = "retried"
    #: Not due yet (a long delay's ``SqswDueAt``): sent on, neither run nor counted.
    NOT_DUE = "not_due"
    #: An async job cancelled by a cold stop, whose message the stop released: not counted.
    RELEASED = "released"

    def __init__(self, status: str, retry_delay: int = 0) -> None:
        self.status = status
        self.retry_delay = retry_delay

    @property
    def ok(self) -> bool | None:
        """``True``: succeeded; ``False``: failed or retried; ``None``: not due yet."""
        status = self.status
        if status == Outcome.SUCCEEDED:
            return True
        return None if status in (Outcome.NOT_DUE, Outcome.RELEASED) else False

    def __repr__(self) -> str:
        return f"<Outcome {self.status} retry_delay={self.retry_delay}>"


#: The shared outcomes that carry no delay.
SUCCEEDED = Outcome(Outcome.SUCCEEDED)
NOT_DUE = Outcome(Outcome.NOT_DUE)
RELEASED = Outcome(Outcome.RELEASED)


class BatchProcessingResult:
    """Messages of one received batch that succeeded (acked) and failed (to be retried)."""

    __slots__ = ("failed", "queue_name", "succeeded")

    def __init__(
        self,
        queue_name: str,
        succeeded: list[Message] | None = None,
        failed: list[Message] | None = None,
    ) -> None:
        self.queue_name = queue_name
        self.succeeded: list[Message] = succeeded if succeeded is not None else []
        self.failed: list[Message] = failed if failed is not None else []

    def update_with_message(self, message: Message, success: bool) -> None:
        (self.succeeded if success else self.failed).append(message)

    def succeeded_count(self) -> int:
        return len(self.succeeded)

    def failed_count(self) -> int:
        return len(self.failed)

    def total_count(self) -> int:
        return len(self.succeeded) + len(self.failed)

    def __repr__(self) -> str:
        return (
            f"<BatchProcessingResult {self.queue_name} succeeded={len(self.succeeded)} "
            f"failed={len(self.failed)}>"
        )


@dataclass
class EngineStats:
    """Counters of one engine run, readable while it runs."""

    received: int = 0
    #: Received messages that SQS had delivered before (ApproximateReceiveCount > 1).
    redelivered: int = 0
    succeeded: int = 0
    #: Jobs that raised (or could not be decoded); SQS delivers them again after the backoff.
    failed: int = 0
    #: Jobs that raised ``RetryJob``: not failures, run again after the backoff.
    retried: int = 0
    released: int = 0
    extended: int = 0
    in_flight: int = 0
    #: Succeeded jobs whose delete SQS refused or never got: they may run again.
    failed_acks: int = 0
    started_at: float = field(default_factory=time.monotonic)

    #: The counters summed across engines (``in_flight`` is derived, ``started_at`` kept).
    COUNTERS = (
        "received",
        "redelivered",
        "succeeded",
        "failed",
        "retried",
        "released",
        "extended",
        "failed_acks",
    )

    @classmethod
    def total(cls, parts: Iterable[EngineStats], started_at: float | None = None) -> EngineStats:
        """The sum of several engines' counters (several queues or worker processes)."""
        parts = list(parts)
        total = cls(started_at=min((p.started_at for p in parts), default=time.monotonic()))
        if started_at is not None:
            total.started_at = started_at
        for name in cls.COUNTERS:
            setattr(total, name, sum(getattr(p, name) for p in parts))
        total.in_flight = sum(p.in_flight for p in parts)
        return total

    def count(self, outcome: Outcome) -> None:
        """Count one settled job (not-due messages are not counted)."""
        status = outcome.status
        if status == Outcome.SUCCEEDED:
            self.succeeded += 1
        elif status == Outcome.FAILED:
            self.failed += 1
        elif status == Outcome.RETRIED:
            self.retried += 1

    def __str__(self) -> str:
        elapsed = max(1e-9, time.monotonic() - self.started_at)
        done = self.succeeded + self.failed + self.retried
        return (
            f"received={self.received} redelivered={self.redelivered} "
            f"succeeded={self.succeeded} failed={self.failed} retried={self.retried} "
            f"released={self.released} extended={self.extended} in_flight={self.in_flight} "
            f"failed_acks={self.failed_acks} "
            f"({done / elapsed:.1f} jobs/s)"
        )
