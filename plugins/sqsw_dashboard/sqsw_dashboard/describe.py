"""A queue's attributes in words, and durations and sizes as people read them."""

from __future__ import annotations

import json
import time

from sqsw_dashboard.queue_listing import QueueInfo

__all__ = ["age_text", "attribute_lines", "duration", "size_text"]


def duration(seconds: float) -> str:
    """``45 s``, ``5 min``, ``2.5 h``, ``4 days``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def age_text(seconds: float | None, error: str | None) -> str:
    """The oldest-age cell: a duration, ``-`` (none waiting) or ``n/a`` (see the reason)."""
    if error is not None:
        return "n/a"
    return "-" if seconds is None else duration(seconds)


def size_text(size: int) -> str:
    """``120 B``, ``2.5 KiB``, ``1 MiB``."""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB".replace(".0 ", " ")
    return f"{size / 1024 / 1024:.1f} MiB".replace(".0 ", " ")


def _when(epoch_seconds: str | None) -> str | None:
    if not epoch_seconds:
        return None
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(int(epoch_seconds)))
    except ValueError:
        return None


def _redrive_lines(info: QueueInfo, dead_letter_name: str | None) -> list[str]:
    policy = info.redrive_policy
    lines: list[str] = []
    if policy:
        target = dead_letter_name or str(policy.get("deadLetterTargetArn", "?"))
        lines.append(
            f"A message received {policy.get('maxReceiveCount', '?')} times without being "
            f"deleted moves to the dead-letter queue {target}."
        )
    else:
        lines.append("No dead-letter queue: a failing message is retried until it expires.")
    if info.sources:
        lines.append(f"This is the dead-letter queue of: {', '.join(info.sources)}.")
    allow = info.attributes.get("RedriveAllowPolicy")
    if allow:
        try:
            permission = json.loads(allow).get("redrivePermission", "allowAll")
        except (ValueError, AttributeError):
            permission = "?"
        lines.append(f"Queues that may use it as their dead-letter queue: {permission}.")
    return lines


def _delay_line(delay: int) -> str:
    if not delay:
        return "New messages are delivered at once (no queue delay)."
    return f"New messages are delayed {duration(delay)} (delivery delay)."


def _wait_line(wait: int) -> str:
    if not wait:
        return "A receive with no wait of its own returns at once (no long polling)."
    return f"A receive waits up to {wait} s for messages (long polling)."


def attribute_lines(info: QueueInfo, dead_letter_name: str | None = None) -> list[str]:
    """One sentence per setting of the queue."""
    a = info.attributes
    lines = [
        ("FIFO queue" if info.fifo else "Standard queue")
        + (
            ", content-based deduplication."
            if a.get("ContentBasedDeduplication") == "true"
            else "."
        ),
        f"A received message stays hidden {duration(int(a.get('VisibilityTimeout', 30)))} "
        "(visibility timeout) before it is delivered again.",
        f"Messages are kept {duration(int(a.get('MessageRetentionPeriod', 345600)))} "
        "(retention period).",
        _delay_line(int(a.get("DelaySeconds", 0))),
        _wait_line(int(a.get("ReceiveMessageWaitTimeSeconds", 0))),
        f"Largest message: {size_text(int(a.get('MaximumMessageSize', 262144)))}.",
    ]
    lines += _redrive_lines(info, dead_letter_name)
    created, modified = _when(a.get("CreatedTimestamp")), _when(a.get("LastModifiedTimestamp"))
    if created:
        lines.append(f"Created {created}" + (f", last changed {modified}." if modified else "."))
    if a.get("SqsManagedSseEnabled") == "true" or a.get("KmsMasterKeyId"):
        lines.append("Messages are encrypted at rest.")
    return lines
