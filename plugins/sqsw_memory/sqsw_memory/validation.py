"""Input validation with SQS's error codes and messages.

Everything here raises :class:`~sqsw_memory.errors.SQSError`; regular
expressions are compiled once at import.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from sqsw_memory.errors import SQSError

__all__ = [
    "FIFO_DEFAULTS",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_ENTRIES",
    "STANDARD_DEFAULTS",
    "RedriveTarget",
    "check_batch_ids",
    "check_body",
    "check_fifo_id",
    "check_int",
    "check_message_attributes",
    "check_queue_name",
    "check_system_attributes",
    "normalize_queue_attributes",
    "parse_arn",
]

#: the most a batch (all bodies and attributes together) may carry
MAX_BATCH_BYTES = 1_048_576
MAX_BATCH_ENTRIES = 10

STANDARD_DEFAULTS: dict[str, str] = {
    "VisibilityTimeout": "30",
    "MaximumMessageSize": "1048576",
    "MessageRetentionPeriod": "345600",
    "DelaySeconds": "0",
    "ReceiveMessageWaitTimeSeconds": "0",
    "SqsManagedSseEnabled": "true",
}
FIFO_DEFAULTS: dict[str, str] = {
    **STANDARD_DEFAULTS,
    "FifoQueue": "true",
    "ContentBasedDeduplication": "false",
    "DeduplicationScope": "queue",
    "FifoThroughputLimit": "perQueue",
}

_INT_RANGES: dict[str, tuple[int, int]] = {
    "VisibilityTimeout": (0, 43200),
    "DelaySeconds": (0, 900),
    "MessageRetentionPeriod": (60, 1_209_600),
    "MaximumMessageSize": (1024, 1_048_576),
    "ReceiveMessageWaitTimeSeconds": (0, 20),
    "KmsDataKeyReusePeriodSeconds": (60, 86400),
}
_BOOLEANS = frozenset({"ContentBasedDeduplication", "SqsManagedSseEnabled"})
_FIFO_ONLY = frozenset({"ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit"})
_CHOICES: dict[str, frozenset[str]] = {
    "DeduplicationScope": frozenset({"messageGroup", "queue"}),
    "FifoThroughputLimit": frozenset({"perQueue", "perMessageGroupId"}),
}
_FREE_TEXT = frozenset({"KmsMasterKeyId"})

_QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")
_FIFO_NAME = re.compile(r"[A-Za-z0-9_-]{1,75}\.fifo")
_INVALID_CHARS = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ATTR_NAME = re.compile(r"[A-Za-z0-9_.\-\u00c0-\u017f]{1,255}")
_ATTR_TYPE = re.compile(r"(String|Number|Binary)(\..+)?", re.DOTALL)
_FIFO_ID = re.compile(r"[A-Za-z0-9!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]{1,128}")
_BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
_ARN = re.compile(r"arn:([a-z-]+):sqs:([a-z0-9-]+):([0-9]{12}):([A-Za-z0-9_.-]{1,80})")

_INVALID_CHARS_MESSAGE = (
    "Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | "
    "#x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF"
)
_NAME_MESSAGE = (
    "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length"
)
_FIFO_NAME_MESSAGE = (
    "The name of a FIFO queue can only include alphanumeric characters, hyphens, or "
    "underscores, must end with .fifo suffix and be 1 to 80 in length"
)


def _invalid(message: str) -> SQSError:
    return SQSError("InvalidParameterValue", message)


def check_queue_name(name: str, fifo: bool) -> None:
    """Queue names: 1-80 of ``[A-Za-z0-9_-]``; FIFO names end in ``.fifo`` (counted)."""
    if fifo:
        if not _FIFO_NAME.fullmatch(name):
            raise _invalid(_FIFO_NAME_MESSAGE)
    elif not _QUEUE_NAME.fullmatch(name):
        raise _invalid(_NAME_MESSAGE)


def check_int(name: str, value: int, low: int, high: int, reason: str | None = None) -> None:
    """An integer request parameter within ``[low, high]``."""
    if not low <= value <= high:
        why = reason or f"Must be between {low} and {high}, if provided."
        raise _invalid(f"Value {value} for parameter {name} is invalid. Reason: {why}")


def parse_arn(arn: str) -> tuple[str, str, str] | None:
    """``(region, account, name)`` of an SQS queue ARN, or None if it is not one."""
    match = _ARN.fullmatch(arn)
    if match is None:
        return None
    return match.group(2), match.group(3), match.group(4)


class RedriveTarget:
    """A parsed ``RedrivePolicy``: the DLQ's ARN and ``maxReceiveCount``."""

    __slots__ = ("arn", "max_receive_count")

    def __init__(self, arn: str, max_receive_count: int) -> None:
        self.arn = arn
        self.max_receive_count = max_receive_count

    def to_json(self) -> str:
        """The policy as ``GetQueueAttributes`` shows it."""
        doc = {"deadLetterTargetArn": self.arn, "maxReceiveCount": self.max_receive_count}
        return json.dumps(doc, separators=(",", ":"))


def _parse_redrive_policy(value: str) -> RedriveTarget:
    def bad(reason: str) -> SQSError:
        return _invalid(f"Value {value} for parameter RedrivePolicy is invalid. Reason: {reason}")

    try:
        doc = json.loads(value)
    except ValueError:
        raise SQSError(
            "InvalidAttributeValue",
            "Invalid value for the parameter RedrivePolicy. Reason: Redrive policy is not a "
            "valid JSON map.",
        )
    if not isinstance(doc, dict):
        raise bad("Redrive policy is not a valid JSON map.")
    for key in ("deadLetterTargetArn", "maxReceiveCount"):
        if key not in doc:
            raise bad(f"Redrive policy does not contain mandatory attribute: {key}.")
    extra = sorted(set(doc) - {"deadLetterTargetArn", "maxReceiveCount"})
    if extra:
        raise bad(
            f"Only following attributes are supported: [deadLetterTargetArn, "
            f"maxReceiveCount], got {extra[0]}."
        )
    arn = doc["deadLetterTargetArn"]
    if not isinstance(arn, str) or parse_arn(arn) is None:
        raise bad("Invalid value for deadLetterTargetArn.")
    count = doc["maxReceiveCount"]
    try:
        if isinstance(count, (bool, float)):
            raise ValueError
        number = int(count)
    except (TypeError, ValueError):
        number = 0
    if not 1 <= number <= 1000:
        raise bad(
            f"Invalid value for maxReceiveCount: {count}, valid values are from 1 to 1000 "
            "both inclusive."
        )
    return RedriveTarget(arn, number)


def _normalize_redrive_allow_policy(value: str) -> str:
    def bad(reason: str) -> SQSError:
        return _invalid(
            f"Value {value} for parameter RedriveAllowPolicy is invalid. Reason: {reason}"
        )

    try:
        doc = json.loads(value)
    except ValueError:
        raise bad(
            "Amazon SQS can't create the redrive allow policy, as it's in an unsupported format."
        )
    if not isinstance(doc, dict) or doc.get("redrivePermission") not in (
        "allowAll",
        "denyAll",
        "byQueue",
    ):
        raise bad(
            "Amazon SQS can't create the redrive allow policy, as it's in an unsupported format."
        )
    arns = doc.get("sourceQueueArns")
    if doc["redrivePermission"] == "byQueue":
        if not isinstance(arns, list) or not 1 <= len(arns) <= 10:
            raise bad(
                "Amazon SQS can't create the redrive allow policy. To specify one or more "
                "source queues, you must set redrivePermission to byQueue."
            )
    elif arns is not None:
        raise bad(
            "Amazon SQS can't create the redrive allow policy. To specify one or more "
            "source queues, you must set redrivePermission to byQueue."
        )
    return json.dumps(doc, separators=(",", ":"))


def normalize_queue_attributes(
    attributes: Mapping[str, str], fifo: bool
) -> tuple[dict[str, str], RedriveTarget | None]:
    """Validate settable queue attributes; return them normalized, plus a parsed RedrivePolicy.

    An empty ``RedrivePolicy``/``Policy``/``KmsMasterKeyId`` means "remove" and is
    kept as ``""`` for the caller to apply.
    """
    out: dict[str, str] = {}
    redrive: RedriveTarget | None = None
    for name, value in attributes.items():
        if name in _INT_RANGES:
            low, high = _INT_RANGES[name]
            try:
                number = int(value, 10)
            except ValueError:
                number = low - 1
            if not low <= number <= high:
                raise SQSError("InvalidAttributeValue", f"Invalid value for the parameter {name}.")
            out[name] = str(number)
        elif name == "FifoQueue":
            if not fifo:
                raise SQSError("InvalidAttributeName", f"Unknown Attribute {name}.")
            if value.lower() != "true":
                raise SQSError(
                    "InvalidAttributeValue",
                    "Invalid value for the parameter FifoQueue. Reason: Modifying queue type is "
                    "not supported.",
                )
            out[name] = "true"
        elif name in _FIFO_ONLY and not fifo:
            if name == "ContentBasedDeduplication":
                raise SQSError("InvalidAttributeName", f"Unknown Attribute {name}.")
            raise SQSError(
                "InvalidAttributeName",
                f"You can specify the {name} only when FifoQueue is set to true.",
            )
        elif name in _BOOLEANS:
            if value.lower() not in ("true", "false"):
                raise SQSError("InvalidAttributeValue", f"Invalid value for the parameter {name}.")
            out[name] = value.lower()
        elif name in _CHOICES:
            if value not in _CHOICES[name]:
                raise SQSError("InvalidAttributeValue", f"Invalid value for the parameter {name}.")
            out[name] = value
        elif name == "RedrivePolicy":
            if value == "":
                out[name] = ""
                continue
            redrive = _parse_redrive_policy(value)
            out[name] = redrive.to_json()
        elif name == "RedriveAllowPolicy":
            out[name] = "" if value == "" else _normalize_redrive_allow_policy(value)
        elif name == "Policy":
            if value != "":
                try:
                    json.loads(value)
                except ValueError:
                    raise SQSError(
                        "InvalidAttributeValue", "Invalid value for the parameter Policy."
                    )
            out[name] = value
        elif name in _FREE_TEXT:
            out[name] = value
        else:
            raise SQSError("InvalidAttributeName", f"Unknown Attribute {name}.")
    if out.get("KmsMasterKeyId") and out.get("SqsManagedSseEnabled") == "true":
        raise SQSError(
            "InvalidAttributeName",
            "You can use one type of server-side encryption (SSE) at one time. You can either "
            "enable KMS SSE or SQS SSE.",
        )
    return out, redrive


def check_body(body: str) -> bytes:
    """Check a message body; return it UTF-8 encoded."""
    if not body:
        raise SQSError("MissingParameter", "The request must contain the parameter MessageBody.")
    # printable ASCII (0x20-0x7e) is always valid: skip the search for the usual body
    if not (body.isascii() and body.isprintable()) and _INVALID_CHARS.search(body) is not None:
        raise SQSError("InvalidMessageContents", _INVALID_CHARS_MESSAGE)
    return body.encode("utf-8")


def check_message_attributes(
    attributes: Mapping[str, Any],
) -> tuple[dict[str, dict[str, Any]], int]:
    """Validate user message attributes; return a private copy and their size in bytes."""
    if len(attributes) > 10:
        raise _invalid(
            f"Number of message attributes [{len(attributes)}] exceeds the allowed maximum [10]."
        )
    copy: dict[str, dict[str, Any]] = {}
    size = 0
    for name, attr in attributes.items():
        if not _ATTR_NAME.fullmatch(name):
            if len(name) >= 256:
                raise _invalid("Message (user) attribute names must be shorter than 256 Bytes")
            raise _invalid(
                "Message (user) attributes name can only contain upper and lower score "
                "characters, digits, periods, hyphens and underscores. "
            )
        lowered = name.lower()
        if (
            lowered.startswith(("aws.", "amazon."))
            or name.startswith(".")
            or name.endswith(".")
            or ".." in name
        ):
            raise _invalid(
                "You can't use message attribute names beginning with 'AWS.' or 'Amazon.'. "
                "These strings are reserved for internal use. Additionally, they cannot start "
                "or end with '.'."
            )
        data_type = attr.get("DataType")
        if not data_type:
            raise _invalid(
                f"The message attribute '{name}' must contain non-empty message attribute type."
            )
        if len(data_type) >= 256:
            raise _invalid("Message (user) attribute types must be shorter than 256 Bytes")
        match = _ATTR_TYPE.fullmatch(data_type)
        if match is None:
            raise _invalid(
                f"The type of message (user) attribute '{name}' is invalid. You must use only "
                "the following supported type prefixes: Binary, Number, String."
            )
        kind = match.group(1)
        size += len(name.encode("utf-8")) + len(data_type.encode("utf-8"))
        if kind == "Binary":
            value = attr.get("BinaryValue")
            if isinstance(value, str):
                value = value.encode("utf-8")
            if not value:
                raise _invalid(
                    f"Message (user) attribute '{name}' must contain a non-empty value of type "
                    "'Binary'."
                )
            blob = bytes(value)
            copy[name] = {"DataType": data_type, "BinaryValue": blob}
            size += len(blob)
        else:
            text = attr.get("StringValue")
            if not text:
                raise _invalid(
                    f"Message (user) attribute '{name}' must contain a non-empty value of type "
                    f"'{kind}'."
                )
            if _INVALID_CHARS.search(text) is not None:
                raise _invalid(_INVALID_CHARS_MESSAGE)
            if kind == "Number":
                try:
                    number = Decimal(text)
                    valid = number.is_finite()
                except InvalidOperation:
                    valid = False
                if not valid:
                    raise _invalid(f"Could not cast message attribute '{name}' value to number.")
            copy[name] = {"DataType": data_type, "StringValue": text}
            size += len(text.encode("utf-8"))
    return copy, size


def check_system_attributes(attributes: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Validate ``MessageSystemAttributes`` (only ``AWSTraceHeader``, a String)."""
    copy: dict[str, dict[str, Any]] = {}
    for name, attr in attributes.items():
        if name != "AWSTraceHeader":
            raise _invalid(f"Message system attribute name '{name}' is invalid.")
        if attr.get("DataType") != "String" or not attr.get("StringValue"):
            raise _invalid(
                "Message system attribute 'AWSTraceHeader' must contain a non-empty value of "
                "type 'String'."
            )
        copy[name] = {"DataType": "String", "StringValue": attr["StringValue"]}
    return copy


def check_fifo_id(value: str, parameter: str) -> None:
    """``MessageGroupId`` / ``MessageDeduplicationId``: 1-128 alphanumerics or punctuation."""
    if not _FIFO_ID.fullmatch(value):
        raise _invalid(
            f"Value {value} for parameter {parameter} is invalid. Reason: {parameter} can only "
            "include alphanumeric and punctuation characters. 1 to 128 in length."
        )


def check_batch_ids(entries: list[Any], entry_name: str) -> None:
    """Batch-level checks every batch operation makes before looking at entries."""
    if not entries:
        raise SQSError(
            "EmptyBatchRequest",
            f"There should be at least one {entry_name} in the request.",
        )
    if len(entries) > MAX_BATCH_ENTRIES:
        raise SQSError(
            "TooManyEntriesInBatchRequest",
            f"Maximum number of entries per request are {MAX_BATCH_ENTRIES}. You have sent "
            f"{len(entries)}.",
        )
    seen: set[str] = set()
    for entry in entries:
        entry_id = entry["Id"]
        if not _BATCH_ID.fullmatch(entry_id):
            raise SQSError(
                "InvalidBatchEntryId",
                "A batch entry id can only contain alphanumeric characters, hyphens and "
                "underscores. It can be at most 80 letters long.",
            )
        if entry_id in seen:
            raise SQSError("BatchEntryIdsNotDistinct", f"Id {entry_id} repeated.")
        seen.add(entry_id)
