"""The records of an SQS event, as Lambda delivers them, turned into sqsw messages.

Lambda's event source mapping writes each received message as a record with
camelCase keys (``messageId``, ``receiptHandle``, ``md5OfBody``...) and
message attributes as ``{"stringValue": ..., "dataType": ...}`` with binary
values base64-encoded. The worker runtime, codecs and processors read the
shape of a ``ReceiveMessage`` response instead (``StringValue``,
``BinaryValue`` as bytes, ``DataType``): :func:`message_from_record` converts
one record into a :class:`~sqsw_core.messages.Message` of that shape, so the
same decoding and processors run on Lambda as in a worker process.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

from sqsw_core.messages import Message

__all__ = ["BadRecordError", "QueueArn", "message_attributes_from_record", "message_from_record"]


class BadRecordError(ValueError):
    """A record of the event is not an SQS message as Lambda delivers it."""


class QueueArn:
    """The parts of an SQS queue ARN: ``arn:PARTITION:sqs:REGION:ACCOUNT:NAME``."""

    __slots__ = ("account", "arn", "name", "partition", "region")

    def __init__(self, arn: str) -> None:
        parts = arn.split(":") if isinstance(arn, str) else []
        if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs" or not parts[5]:
            raise BadRecordError(
                f"eventSourceARN {arn!r} is not an SQS queue ARN "
                "(arn:aws:sqs:REGION:ACCOUNT:QUEUE_NAME)"
            )
        self.arn = arn
        self.partition, self.region, self.account, self.name = (
            parts[1],
            parts[3],
            parts[4],
            parts[5],
        )

    def __repr__(self) -> str:
        return f"QueueArn({self.arn!r})"


def _decode_binary(name: str, value: Any) -> bytes:
    if not isinstance(value, str):
        raise BadRecordError(f"message attribute {name!r}: binary value is not base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRecordError(f"message attribute {name!r}: binary value is not valid base64")


def _attribute(name: str, raw: Any) -> dict[str, Any]:
    """One message attribute of a record, in ``ReceiveMessage``'s shape."""
    if not isinstance(raw, dict) or not isinstance(raw.get("dataType"), str):
        raise BadRecordError(f"message attribute {name!r} has no dataType")
    converted: dict[str, Any] = {"DataType": raw["dataType"]}
    string_value = raw.get("stringValue")
    if string_value is not None:
        if not isinstance(string_value, str):
            raise BadRecordError(f"message attribute {name!r}: stringValue is not a string")
        converted["StringValue"] = string_value
    binary_value = raw.get("binaryValue")
    if binary_value is not None:
        converted["BinaryValue"] = _decode_binary(name, binary_value)
    string_list = raw.get("stringListValues") or []
    if string_list:
        converted["StringListValues"] = [str(v) for v in string_list]
    binary_list = raw.get("binaryListValues") or []
    if binary_list:
        converted["BinaryListValues"] = [_decode_binary(name, v) for v in binary_list]
    return converted


def message_attributes_from_record(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A record's ``messageAttributes`` as ``ReceiveMessage`` gives them (binary: bytes)."""
    raw = record.get("messageAttributes") or {}
    if not isinstance(raw, dict):
        raise BadRecordError("messageAttributes is not an object")
    return {str(name): _attribute(str(name), value) for name, value in raw.items()}


def message_from_record(
    queue_name: str, record: dict[str, Any], received_at: float | None = None
) -> Message:
    """One Lambda SQS record as the :class:`Message` a worker would have received.

    Raises :class:`BadRecordError` (one line saying what is wrong) for a
    record that lacks what every SQS record has.
    """
    if not isinstance(record, dict):
        raise BadRecordError(f"the record is a {type(record).__name__}, not an object")
    for key in ("messageId", "receiptHandle", "body"):
        if not isinstance(record.get(key), str):
            raise BadRecordError(f"the record has no {key} string")
    attributes = record.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise BadRecordError("attributes is not an object")
    return Message(
        queue_name=queue_name,
        message_id=record["messageId"],
        receipt_handle=record["receiptHandle"],
        body=record["body"],
        attributes={str(k): str(v) for k, v in attributes.items()},
        message_attributes=message_attributes_from_record(record),
        md5_of_body=record.get("md5OfBody"),
        received_at=time.monotonic() if received_at is None else received_at,
    )
