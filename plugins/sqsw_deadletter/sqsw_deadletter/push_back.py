"""The upstream copy of a dead letter: same body, same attributes, same FIFO group."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from sqsw_core.messages import Message
from sqsw_core.queue import DEFAULT_MESSAGE_GROUP_ID

if TYPE_CHECKING:
    from sqsw_core.queue import GenericQueue

__all__ = ["copy_attributes", "push_back_entry", "redrive_deduplication_id"]

#: SQS limits a deduplication id to 128 characters.
MAX_DEDUPLICATION_ID = 128
REDRIVE_MARK = ":redrive:"


def copy_attributes(message: Message) -> dict[str, dict[str, Any]]:
    """Every message attribute, in the form ``SendMessage`` accepts.

    Only ``DataType`` and the value are kept: ``StringListValues`` and
    ``BinaryListValues`` are reserved by SQS and some servers echo them empty.
    """
    attributes: dict[str, dict[str, Any]] = {}
    for name, attr in message.message_attributes.items():
        copy: dict[str, Any] = {"DataType": attr["DataType"]}
        if attr.get("StringValue") is not None:
            copy["StringValue"] = attr["StringValue"]
        if attr.get("BinaryValue") is not None:
            copy["BinaryValue"] = attr["BinaryValue"]
        attributes[name] = copy
    return attributes


def redrive_deduplication_id(message: Message) -> str:
    """The deduplication id of a FIFO push-back: ``<original>:redrive:<message id>``.

    Not the original id: SQS silently drops a message sent with a deduplication
    id it saw in the last 5 minutes, and a job that failed fast reaches the
    dead-letter queue well within that window. The id is stable for one dead
    letter, so if the same dead letter is pushed twice (its delete failed), SQS
    drops the second copy.
    """
    original = (message.deduplication_id or "").split(REDRIVE_MARK, 1)[0]
    dedup = f"{original}{REDRIVE_MARK}{message.message_id}"
    if len(dedup) > MAX_DEDUPLICATION_ID:
        dedup = "redrive-" + hashlib.sha256(dedup.encode("utf-8")).hexdigest()
    return dedup


def push_back_entry(
    message: Message,
    upstream: GenericQueue,
    delay_seconds: int,
    keep_deduplication_id: bool = False,
) -> dict[str, Any]:
    """The ``SendMessage`` parameters that put ``message`` back on ``upstream``."""
    entry: dict[str, Any] = {
        "MessageBody": message.body,
        "MessageAttributes": copy_attributes(message),
    }
    if upstream.is_fifo:
        # FIFO queues have no per-message delay.
        entry["MessageGroupId"] = message.group_id or DEFAULT_MESSAGE_GROUP_ID
        original = message.deduplication_id
        entry["MessageDeduplicationId"] = (
            original if keep_deduplication_id and original else redrive_deduplication_id(message)
        )
    else:
        entry["DelaySeconds"] = delay_seconds
        if message.group_id is not None:  # fair queues: keep the tenant
            entry["MessageGroupId"] = message.group_id
    return entry
