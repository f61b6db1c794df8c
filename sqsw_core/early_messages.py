"""Messages received before their due time (long delays): sent on, neither run nor counted.

The due time and the next hop come from :mod:`sqsw_core.long_delays`; this
module does the SQS side. On a standard queue a copy is sent delayed by the
rest (at most one hop) and the original is acked, so the receive count starts
afresh at every hop. FIFO queues take no per-message delay (a copy would come
straight back): there the message itself is hidden, keeping its place at the
head of its group. Only foreign producers can put such a message on a FIFO
queue; sqsw refuses to.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from sqsw_core.exceptions import BadMessageError
from sqsw_core.log_text import log_extra, shorten
from sqsw_core.long_delays import DUE_AT_ATTR, next_hop, resend_entry, seconds_until_due
from sqsw_core.settling import retry_delay

if TYPE_CHECKING:
    from sqsw_core.messages import Message
    from sqsw_core.settling import Settler

logger = logging.getLogger("sqsw.long_delays")


def hold_back_early(settler: Settler, messages: list[Message]) -> list[Message]:
    """The messages of a batch that are due; the others are sent on to their due time.

    Never raises: a message whose due time is bad (or that cannot be held
    back) is passed on as due, and the job runner fails it alone, with the
    backoff delay; the rest of the batch runs.
    """
    for m in messages:  # a loop, not any(<generator>): this runs for every batch
        if DUE_AT_ATTR in m.message_attributes:
            break
    else:
        return messages
    now = time.time()
    due: list[Message] = []
    held_groups: set[str | None] = set()
    fifo = settler.queue.is_fifo
    for message in messages:
        try:
            if fifo and message.group_id in held_groups:
                settler.delay(message, 0)  # keep the group's order behind the held one
                continue
            if hold_back_if_early(settler, message, now):
                held_groups.add(message.group_id)
                continue
        except BadMessageError:
            pass  # the job runner fails it and logs why
        except Exception:
            logger.exception(
                "Could not check the due time of message %s on %s; it is processed now",
                message.message_id,
                settler.queue.name,
                extra=log_extra(settler.queue, message),
            )
        due.append(message)
    return due


def hold_back_if_early(settler: Settler, message: Message, now: float | None = None) -> bool:
    """Hide ``message`` until its due time, without running it, if it is not due yet.

    Raises :class:`~sqsw_core.exceptions.BadMessageError` when the due time
    is bad (see :func:`~sqsw_core.long_delays.seconds_until_due`): the caller
    fails the message.
    """
    remaining = seconds_until_due(message, time.time() if now is None else now)
    if remaining <= 0:
        return False
    queue = settler.queue
    delay = next_hop(remaining, queue.max_delay_hop)
    logger.info(
        "Message %s (%s.%s) is due in %.1f s: hidden for another %d s",
        message.message_id,
        queue.name,
        shorten(message.job_name),
        remaining,
        delay,
        extra=log_extra(queue, message),
    )
    if queue.is_fifo:
        settler.delay(message, delay)
        return True
    try:
        queue.call("send_message", **resend_entry(message, delay))
    except Exception:
        logger.exception(
            "Could not send delayed message %s on %s on to its due time; it is retried later",
            message.message_id,
            queue.name,
            extra=log_extra(queue, message),
        )
        retry_in = retry_delay(queue, message, None)
        if retry_in is not None:
            settler.delay(message, retry_in)
        else:  # the policy failed: hidden until its visibility timeout
            settler.forget(message)
        return True
    settler.ack(message)
    return True
