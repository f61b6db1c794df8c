"""Server-side redrive: the SQS message move tasks, typed.

``StartMessageMoveTask`` makes SQS itself move a dead-letter queue's messages
(to their source queues, or to one destination), at an optional rate; no
worker runs. ``ListMessageMoveTasks`` reports progress, ``CancelMessageMoveTask``
stops it (messages already moved stay moved).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

__all__ = ["FINISHED_STATUSES", "RedriveTask"]

#: Task statuses after which nothing moves any more.
FINISHED_STATUSES = frozenset({"COMPLETED", "CANCELLED", "FAILED"})


def _timestamp(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(int(value) / 1000, tz=timezone.utc)


@dataclass(frozen=True)
class RedriveTask:
    """One redrive of a dead-letter queue and how far it got.

    ``server_side`` is false for a push-back run by this process instead (FIFO
    queues, or a filter): it has no ``task_handle`` and is finished on return.
    """

    status: str
    source_arn: str
    destination_arn: str | None = None
    task_handle: str | None = None
    max_messages_per_second: int | None = None
    moved: int = 0
    to_move: int | None = None
    failure_reason: str | None = None
    started_at: datetime | None = None
    server_side: bool = True

    @property
    def running(self) -> bool:
        return self.status == "RUNNING"

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @classmethod
    def from_sqs(cls, result: dict[str, Any]) -> RedriveTask:
        """From one entry of a ``ListMessageMoveTasks`` response."""
        rate = result.get("MaxNumberOfMessagesPerSecond")
        to_move = result.get("ApproximateNumberOfMessagesToMove")
        return cls(
            status=str(result.get("Status", "")),
            source_arn=str(result.get("SourceArn", "")),
            destination_arn=result.get("DestinationArn"),
            task_handle=result.get("TaskHandle"),
            max_messages_per_second=int(rate) if rate is not None else None,
            moved=int(result.get("ApproximateNumberOfMessagesMoved", 0)),
            to_move=int(to_move) if to_move is not None else None,
            failure_reason=result.get("FailureReason"),
            started_at=_timestamp(result.get("StartedTimestamp")),
        )
