"""Delays longer than SQS's 15-minute maximum, made of hops.

A job sent with ``_delay_seconds`` above one hop (900 s, the SQS maximum,
unless ``SQSEnv(max_delay_hop=...)``) goes out with the hop as its
``DelaySeconds`` and a String message attribute ``SqswDueAt``: its due time in
epoch milliseconds. A worker that receives it before that time sends a copy
(same body and attributes) delayed by the rest, at most one hop, then deletes
the original; such a message is neither run nor counted in the batch's
:class:`~sqsw_core.results.BatchProcessingResult`. Once due, it runs as usual.
"""

from __future__ import annotations

import math
import time
from typing import Any

from sqsw_core.exceptions import BadMessageError, ConfigurationError, quote
from sqsw_core.limits import MAX_DELAY_SECONDS, MAX_MESSAGE_ATTRIBUTES, MAX_RETENTION_SECONDS
from sqsw_core.messages import Message

#: The message attribute holding the due time (epoch milliseconds, as a String).
DUE_AT_ATTR = "SqswDueAt"
#: The longest hop: SQS's maximum ``DelaySeconds``.
MAX_HOP_SECONDS = MAX_DELAY_SECONDS
#: The longest delay sqsw accepts: 14 days, SQS's maximum retention.
MAX_LONG_DELAY_SECONDS = MAX_RETENTION_SECONDS


def check_hop(seconds: int) -> int:
    """Validate ``SQSEnv(max_delay_hop=...)``: whole seconds, 1 to 900."""
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise ConfigurationError(f"max_delay_hop must be an int, got {seconds!r}")
    if not 1 <= seconds <= MAX_HOP_SECONDS:
        raise ConfigurationError(
            f"max_delay_hop must be 1 to {MAX_HOP_SECONDS} seconds (the SQS maximum "
            f"DelaySeconds), got {seconds}"
        )
    return seconds


def defer(
    queue_name: str,
    is_fifo: bool,
    attributes: dict[str, dict[str, Any]],
    delay_seconds: float,
    hop: int,
) -> tuple[dict[str, dict[str, Any]], int]:
    """The attributes and first-hop delay of a message due in ``delay_seconds`` (> ``hop``)."""
    if delay_seconds > MAX_LONG_DELAY_SECONDS:
        raise ValueError(
            f"_delay_seconds={delay_seconds!r} for queue {queue_name!r}: sqsw delays jobs by "
            f"at most {MAX_LONG_DELAY_SECONDS} seconds (14 days, the longest SQS keeps a "
            "message); schedule jobs further ahead outside SQS"
        )
    if is_fifo:
        raise ValueError(
            f"_delay_seconds={delay_seconds!r} for queue {queue_name!r}: the queue is FIFO, "
            "and delays over one hop are made of per-message delays, which FIFO queues do "
            "not have; use a standard queue for delayed jobs"
        )
    if DUE_AT_ATTR not in attributes and len(attributes) >= MAX_MESSAGE_ATTRIBUTES:
        raise ValueError(
            f"a job delayed by {delay_seconds!r} s on queue {queue_name!r} needs the "
            f"{DUE_AT_ATTR} message attribute, but it already has {len(attributes)} and SQS "
            f"accepts at most {MAX_MESSAGE_ATTRIBUTES}"
        )
    due_at_ms = math.ceil((time.time() + delay_seconds) * 1000)
    due = {"DataType": "String", "StringValue": str(due_at_ms)}
    return {**attributes, DUE_AT_ATTR: due}, hop


#: How far past the longest delay a due time may lie (clocks of producers and
#: workers differ); a due time beyond that is a bad message, not a long wait.
DUE_AT_SLACK_SECONDS = 3600


def seconds_until_due(message: Message, now: float) -> float:
    """Seconds from ``now`` (epoch) until ``message`` is due; <= 0 when it is.

    Raises :class:`~sqsw_core.exceptions.BadMessageError` when the ``SqswDueAt``
    attribute is not a whole number of epoch milliseconds, or lies further
    ahead than sqsw ever delays a job (14 days, plus an hour for clock skew):
    such a message fails and is retried per the backoff policy, then
    dead-lettered, instead of running now or being re-sent forever.
    """
    attribute = message.message_attributes.get(DUE_AT_ATTR)
    if attribute is None:
        return 0.0
    value = attribute.get("StringValue")
    problem = None
    due_ms = 0
    if not isinstance(value, str):
        problem = f"has no string value ({quote(attribute)})"
    else:
        text = value.strip()
        digits = text[1:] if text[:1] == "-" else text
        # Bounded before int(): no multi-thousand-digit numbers are parsed.
        if not digits.isascii() or not digits.isdigit() or len(digits) > 20:
            problem = f"is {quote(value)!r}, not a due time in epoch milliseconds"
        else:
            due_ms = int(text)
            now_ms = int(now * 1000)
            limit_ms = (MAX_LONG_DELAY_SECONDS + DUE_AT_SLACK_SECONDS) * 1000
            if due_ms - now_ms > limit_ms:
                days = (due_ms - now_ms) / 86_400_000
                problem = (
                    f"is {value!r}, {days:,.0f} days ahead: more than the "
                    f"{MAX_LONG_DELAY_SECONDS // 86400} days sqsw delays a job"
                )
    if problem is not None:
        raise BadMessageError(
            f"message {message.message_id} on queue {message.queue_name!r} (job "
            f"{quote(message.job_name)!r}): its {DUE_AT_ATTR} attribute {problem}; "
            "it is retried per the backoff policy, then dead-lettered"
        )
    return (due_ms - now * 1000) / 1000


def next_hop(remaining: float, hop: int) -> int:
    """The delay of the next hop of a message due in ``remaining`` seconds (> 0)."""
    return min(hop, math.ceil(remaining))


def resend_entry(message: Message, delay: int) -> dict[str, Any]:
    """The ``SendMessage`` parameters of the copy of ``message`` sent ``delay`` s on."""
    entry: dict[str, Any] = {
        "MessageBody": message.body,
        "MessageAttributes": {
            name: sendable_attribute(attr) for name, attr in message.message_attributes.items()
        },
        "DelaySeconds": delay,
    }
    if message.group_id is not None:  # a fair queue's tenant
        entry["MessageGroupId"] = message.group_id
    return entry


def sendable_attribute(attribute: dict[str, Any]) -> dict[str, Any]:
    """A received message attribute as ``SendMessage`` takes it (no empty list fields)."""
    sendable = {"DataType": attribute["DataType"]}
    for key in ("StringValue", "BinaryValue"):
        if key in attribute:
            sendable[key] = attribute[key]
    return sendable
