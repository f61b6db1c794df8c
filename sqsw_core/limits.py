"""The limits of SQS that sqsw works within, in one place, and batching by them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Final, TypeVar

T = TypeVar("T")

#: Entries per batch call (SendMessageBatch, DeleteMessageBatch,
#: ChangeMessageVisibilityBatch) and messages per ReceiveMessage.
MAX_BATCH_ENTRIES: Final = 10
#: Message attributes per message.
MAX_MESSAGE_ATTRIBUTES: Final = 10
#: The largest message, and the largest batch, SQS accepts today (1 MiB).
DEFAULT_MAX_MESSAGE_SIZE: Final = 1_048_576
#: The longest per-message delay (``DelaySeconds``): 15 minutes.
MAX_DELAY_SECONDS: Final = 900
#: The longest visibility timeout: 12 hours.
MAX_VISIBILITY_TIMEOUT: Final = 43_200
#: The longest long poll (``WaitTimeSeconds``).
MAX_WAIT_SECONDS: Final = 20
#: How long a queue may keep a message (``MessageRetentionPeriod``): 1 minute to 14 days.
MIN_RETENTION_SECONDS: Final = 60
MAX_RETENTION_SECONDS: Final = 14 * 24 * 3600

#: Seconds a long poll may outlast its WaitTimeSeconds: SQS servers answer up to
#: about a second late. A stop waits this much beyond the wait for receives in
#: progress; a dead worker process's messages are released this much after its
#: last long poll could have ended.
POLL_END_SLACK: Final = 3.0


def chunks(items: Sequence[T], size: int = MAX_BATCH_ENTRIES) -> Iterator[list[T]]:
    """``items`` in consecutive lists of at most ``size`` (one batch call each)."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
