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

import logging
import math
import time
from typing import TYPE_CHECKING, Any

from sqsw_core.exceptions import BadMessageError, ConfigurationError, quote
from sqsw_core.limits import MAX_DELAY_SECONDS, MAX_MESSAGE_ATTRIBUTES, MAX_RETENTION_SECONDS
from sqsw_core.log_text import shorten
from sqsw_core.messages import Message

if TYPE_CHECKING:
    from sqsw_core.queue import GenericQueue
    from sqsw_core.worker import Worker

logger = logging.getLogger("sqsw.long_delays")

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
    queue: GenericQueue, attributes: dict[str, dict[str, Any]], delay_seconds: float
) -> tuple[dict[str, dict[str, Any]], int]:
    """The attributes and first-hop delay of a message due in ``delay_seconds`` (> one hop)."""
    if delay_seconds > MAX_LONG_DELAY_SECONDS:
        raise ValueError(
            f"_delay_seconds={delay_seconds!r} for queue {queue.name!r}: sqsw delays jobs by "
            f"at most {MAX_LONG_DELAY_SECONDS} seconds (14 days, the longest SQS keeps a "
            "message); schedule jobs further ahead outside SQS"
        )
    if queue.is_fifo:
        raise ValueError(
            f"_delay_seconds={delay_seconds!r} for queue {queue.name!r}: the queue is FIFO, "
            "and delays over one hop are made of per-message delays, which FIFO queues do "
            "not have; use a standard queue for delayed jobs"
        )
    if DUE_AT_ATTR not in attributes and len(attributes) >= MAX_MESSAGE_ATTRIBUTES:
        raise ValueError(
            f"a job delayed by {delay_seconds!r} s on queue {queue.name!r} needs the "
            f"{DUE_AT_ATTR} message attribute, but it already has {len(attributes)} and SQS "
            f"accepts at most {MAX_MESSAGE_ATTRIBUTES}"
        )
    due_at_ms = math.ceil((time.time() + delay_seconds) * 1000)
    due = {"DataType": "String", "StringValue": str(due_at_ms)}
    return {**attributes, DUE_AT_ATTR: due}, queue.env.max_delay_hop


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


def hold_back_early(worker: Worker, messages: list[Message]) -> list[Message]:
    """The messages of a batch that are due; the others are sent on to their due time.

    Never raises: a message whose due time is bad (or that cannot be held
    back) is passed on as due, and the worker's ``process_message`` fails it
    alone, with the backoff delay; the rest of the batch runs.
    """
    if not any(DUE_AT_ATTR in m.message_attributes for m in messages):
        return messages
    now = time.time()
    due: list[Message] = []
    held_groups: set[str | None] = set()
    fifo = worker.queue.is_fifo
    for message in messages:
        try:
            if fifo and message.group_id in held_groups:
                _release(worker, message, 0)  # keep the group's order behind the held one
                continue
            if hold_back_if_early(worker, message, now):
                held_groups.add(message.group_id)
                continue
        except BadMessageError:
            pass  # process_message fails it and logs why
        except Exception:
            logger.exception(
                "Could not check the due time of message %s on %s; it is processed now",
                message.message_id,
                worker.queue.name,
            )
        due.append(message)
    return due


def hold_back_if_early(worker: Worker, message: Message, now: float | None = None) -> bool:
    """Hide ``message`` until its due time, without running it, if it is not due yet.

    On a standard queue a copy is sent delayed by the rest (at most one hop)
    and the original is deleted, so the receive count starts afresh at every
    hop. FIFO queues take no per-message delay (a copy would come straight
    back): there the message itself is hidden, keeping its place at the head
    of its group. Only foreign producers can put such a message on a FIFO
    queue; sqsw refuses to.

    Raises :class:`~sqsw_core.exceptions.BadMessageError` when the due time
    is bad (see :func:`seconds_until_due`): the caller fails the message.
    """
    remaining = seconds_until_due(message, time.time() if now is None else now)
    if remaining <= 0:
        return False
    queue = worker.queue
    delay = min(queue.env.max_delay_hop, math.ceil(remaining))
    logger.info(
        "Message %s (%s.%s) is due in %.1f s: hidden for another %d s",
        message.message_id,
        queue.name,
        shorten(message.job_name),
        remaining,
        delay,
    )
    if queue.is_fifo:
        _release(worker, message, delay)
        return True
    entry: dict[str, Any] = {
        "MessageBody": message.body,
        "MessageAttributes": {
            name: _sendable(attr) for name, attr in message.message_attributes.items()
        },
        "DelaySeconds": delay,
    }
    if message.group_id is not None:  # a fair queue's tenant
        entry["MessageGroupId"] = message.group_id
    try:
        queue.call("send_message", **entry)
    except Exception:
        logger.exception(
            "Could not send delayed message %s on %s on to its due time; it is retried later",
            message.message_id,
            queue.name,
        )
        retry_in = worker.retry_delay(message, None)
        if retry_in is not None:
            _release(worker, message, retry_in)
        elif worker.keeper is not None:  # the policy failed: hidden until its visibility timeout
            worker.keeper.forget(message)
        return True
    if worker.keeper is not None:
        worker.keeper.forget(message)
    worker.acker.ack(message)
    return True


def _release(worker: Worker, message: Message, visibility_timeout: int) -> None:
    """Give ``message`` back to the queue, visible again after ``visibility_timeout`` s."""
    if worker.keeper is not None:
        worker.keeper.forget(message)
    worker.acker.retry(message, visibility_timeout)


def _sendable(attribute: dict[str, Any]) -> dict[str, Any]:
    """A received message attribute as ``SendMessage`` takes it (no empty list fields)."""
    sendable = {"DataType": attribute["DataType"]}
    for key in ("StringValue", "BinaryValue"):
        if key in attribute:
            sendable[key] = attribute[key]
    return sendable
