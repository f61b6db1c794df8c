"""One stored message and its state in its queue."""

from __future__ import annotations

from typing import Any

__all__ = ["DELAYED", "GONE", "INFLIGHT", "VISIBLE", "Message"]

#: waiting for its delay to pass
DELAYED = 0
#: can be received
VISIBLE = 1
#: received and not yet visible again
INFLIGHT = 2
#: deleted, expired, purged or moved away
GONE = 3


class Message:
    """A message as a queue stores it (immutable content, mutable delivery state)."""

    __slots__ = (
        "attributes",
        "body",
        "deadline",
        "dedup_id",
        "dlq_source_arn",
        "first_receive_ms",
        "group",
        "group_id",
        "handle",
        "md5_attributes",
        "md5_body",
        "message_id",
        "receive_count",
        "received_at",
        "sent_at",
        "sent_ms",
        "seq",
        "sequence_number",
        "size",
        "state",
        "system_attributes",
    )

    def __init__(
        self,
        seq: int,
        message_id: str,
        body: str,
        md5_body: str,
        size: int,
        sent_ms: int,
        sent_at: float,
        attributes: dict[str, dict[str, Any]] | None = None,
        md5_attributes: str | None = None,
        system_attributes: dict[str, dict[str, Any]] | None = None,
        group_id: str | None = None,
        dedup_id: str | None = None,
    ) -> None:
        self.seq = seq
        self.message_id = message_id
        self.body = body
        self.md5_body = md5_body
        self.size = size
        #: wall-clock send time in ms (``SentTimestamp``)
        self.sent_ms = sent_ms
        #: monotonic send time (retention period)
        self.sent_at = sent_at
        self.attributes = attributes
        self.md5_attributes = md5_attributes
        self.system_attributes = system_attributes
        self.group_id = group_id
        self.dedup_id = dedup_id
        self.sequence_number: str | None = None
        self.dlq_source_arn: str | None = None
        self.receive_count = 0
        self.first_receive_ms = 0
        #: monotonic time of the latest receive (12-hour visibility limit)
        self.received_at = 0.0
        self.state = VISIBLE
        #: when a DELAYED or INFLIGHT message becomes visible
        self.deadline = 0.0
        #: the FIFO message group this message belongs to
        self.group: Any = None
        #: standard queues: the latest receipt handle (a key of ``Queue.handles``)
        self.handle: str | None = None

    def __repr__(self) -> str:
        return f"Message({self.message_id!r}, state={self.state}, receives={self.receive_count})"
