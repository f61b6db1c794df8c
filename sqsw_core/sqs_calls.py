"""The SQS calls on received messages: receive, delete, change visibility.

One implementation of each, for every part of sqsw and its plugins: the
job runner, the settler, the visibility heartbeat, the supervisor and the
dead-letter tools. Each takes a :class:`~sqsw_core.queue_handle.QueueHandle`
and at most 10 messages (SQS's batch limit; split longer lists with
:func:`sqsw_core.limits.chunks`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from sqsw_core.exceptions import QueueNotFoundError
from sqsw_core.limits import MAX_BATCH_ENTRIES
from sqsw_core.messages import Message

if TYPE_CHECKING:
    from sqsw_core.queue_handle import QueueHandle

logger = logging.getLogger("sqsw.sqs_calls")

#: Sends of a delete entry that SQS failed on its side (not the sender's fault).
DELETE_ENTRY_ATTEMPTS = 3

#: What a message left undeleted means, for the log, when a job succeeded.
ACK_LEFT = "the job succeeded: expect duplicates"


class ReceivedMessage(Protocol):
    """What a visibility change needs of a message: its id (for logs) and receipt handle."""

    @property
    def message_id(self) -> str: ...

    @property
    def receipt_handle(self) -> str: ...


def receive_messages(
    queue: QueueHandle,
    wait_seconds: float = 0,
    max_messages: int = MAX_BATCH_ENTRIES,
    visibility_timeout: int | None = None,
) -> list[Message]:
    """One ``ReceiveMessage`` call: up to ``max_messages`` (at most 10), with all attributes;
    hidden for ``visibility_timeout`` seconds if given, else the queue's timeout."""
    params: dict[str, Any] = {
        "MaxNumberOfMessages": max(1, min(max_messages, MAX_BATCH_ENTRIES)),
        "WaitTimeSeconds": int(wait_seconds),
        "AttributeNames": ["All"],
        "MessageAttributeNames": ["All"],
    }
    if visibility_timeout is not None:
        params["VisibilityTimeout"] = visibility_timeout
    response = queue.call("receive_message", **params)
    now = time.monotonic()
    name = queue.name
    return [Message.from_sqs(name, raw, now) for raw in response.get("Messages", ())]


def _call_failed(queue: QueueHandle, exc: Exception, what: str, count: int, after: str) -> None:
    logger.error(
        "Could not %s %d message(s) %s %s; %s: %s",
        what,
        count,
        "from" if what == "delete" else "on",
        queue.name,
        after,
        exc,
        exc_info=exc if not isinstance(exc, QueueNotFoundError) else None,
    )


def delete_messages(
    queue: QueueHandle, messages: Sequence[ReceivedMessage], if_left: str = ACK_LEFT
) -> int:
    """Delete up to 10 messages in one call; how many could not be deleted.

    Entries SQS failed on its own side (SenderFault false: InternalError,
    ServiceUnavailable...) are sent again, up to ``DELETE_ENTRY_ATTEMPTS``
    sends: each one not deleted would come back (for an ack: a succeeded job
    that would run a second time). What still fails is logged, with ``if_left``
    saying what a message left in the queue means.
    """
    failures = 0
    pending = list(messages)
    for attempt in range(1, DELETE_ENTRY_ATTEMPTS + 1):
        entries = [{"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(pending)]
        try:
            response = queue.call("delete_message_batch", Entries=entries)
        except Exception as exc:
            after = f"they will be delivered again after their visibility timeout ({if_left})"
            _call_failed(queue, exc, "delete", len(pending), after)
            return failures + len(pending)
        again: list[ReceivedMessage] = []
        for failed in response.get("Failed", []):
            message = pending[int(failed["Id"])]
            if not failed.get("SenderFault", True) and attempt < DELETE_ENTRY_ATTEMPTS:
                again.append(message)
                continue
            failures += 1
            logger.warning(
                "Could not delete message %s from %s: %s (%s); %s",
                message.message_id,
                queue.name,
                failed.get("Code"),
                failed.get("Message"),
                if_left,
            )
        if not again:
            break
        pending = again
    return failures


def change_visibility_batch(
    queue: QueueHandle, changes: Sequence[tuple[ReceivedMessage, int]]
) -> dict[int, dict[str, Any]]:
    """One ``ChangeMessageVisibilityBatch`` call; the entries SQS refused, by index.

    Raises what the call raises (callers that must not raise use
    :func:`change_visibility`).
    """
    entries = [
        {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": timeout}
        for i, (m, timeout) in enumerate(changes)
    ]
    response = queue.call("change_message_visibility_batch", Entries=entries)
    return {int(f["Id"]): f for f in response.get("Failed", [])}


def change_visibility(
    queue: QueueHandle,
    changes: Sequence[tuple[ReceivedMessage, int]],
    refused_level: int = logging.WARNING,
) -> int:
    """Set the visibility timeout of up to 10 held messages in one call; how many changed.

    Never raises. Failures are logged: the whole call at ERROR, entries SQS
    refused (a handle no longer valid, say) at ``refused_level``.
    """
    try:
        refused = change_visibility_batch(queue, changes)
    except Exception as exc:
        after = "they become visible again after the queue's visibility timeout"
        _call_failed(queue, exc, "change the visibility of", len(changes), after)
        return 0
    for index, failed in refused.items():
        log_refused(queue, changes[index][0], failed, "change the visibility of", refused_level)
    return len(changes) - len(refused)


def log_refused(
    queue: QueueHandle,
    message: ReceivedMessage,
    failed: dict[str, Any],
    what: str,
    level: int = logging.WARNING,
) -> None:
    """Log one batch entry SQS refused: ``Could not <what> message <id> on <queue>: ...``."""
    logger.log(
        level,
        "Could not %s message %s on %s: %s (%s)",
        what,
        message.message_id,
        queue.name,
        failed.get("Code"),
        failed.get("Message"),
    )
