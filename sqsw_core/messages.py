"""A message received from SQS, as queues, processors and handlers see it."""

from __future__ import annotations

from typing import Any

from sqsw_core.log_text import shorten

#: Message attributes sqsw writes on every job (the sqs-workers wire format).
CONTENT_TYPE_ATTR = "ContentType"
JOB_NAME_ATTR = "JobName"
JOB_CONTEXT_ATTR = "JobContext"


class Message:
    """One received SQS message.

    Attribute names follow the boto3 resource ``Message`` (``body``,
    ``message_id``, ``receipt_handle``, ``attributes``, ``message_attributes``)
    so code written for sqs-workers keeps working.
    """

    __slots__ = (
        "attributes",
        "body",
        "md5_of_body",
        "message_attributes",
        "message_id",
        "queue_name",
        "receipt_handle",
        "received_at",
    )

    def __init__(
        self,
        *,
        queue_name: str,
        message_id: str,
        receipt_handle: str,
        body: str,
        attributes: dict[str, str] | None = None,
        message_attributes: dict[str, dict[str, Any]] | None = None,
        md5_of_body: str | None = None,
        received_at: float = 0.0,
    ) -> None:
        self.queue_name = queue_name
        self.message_id = message_id
        self.receipt_handle = receipt_handle
        self.body = body
        self.attributes = attributes or {}
        self.message_attributes = message_attributes or {}
        self.md5_of_body = md5_of_body
        self.received_at = received_at

    @classmethod
    def from_sqs(cls, queue_name: str, raw: dict[str, Any], received_at: float = 0.0) -> Message:
        """Build from one entry of a ``ReceiveMessage`` response (the hot path)."""
        self = cls.__new__(cls)
        self.queue_name = queue_name
        self.message_id = raw["MessageId"]
        self.receipt_handle = raw["ReceiptHandle"]
        self.body = raw["Body"]
        self.attributes = raw.get("Attributes") or {}
        self.message_attributes = raw.get("MessageAttributes") or {}
        self.md5_of_body = raw.get("MD5OfBody")
        self.received_at = received_at
        return self

    @classmethod
    def from_rows(
        cls, queue_name: str, rows: list[tuple[Any, ...]], received_at: float = 0.0
    ) -> list[Message]:
        """Build from the rows of a session's ``receive_message_rows`` (see
        :meth:`sqsw_core.job_runner.JobRunner.receive`): ``(MessageId, ReceiptHandle,
        Body, MD5OfBody, Attributes, MessageAttributes)`` each."""
        messages = []
        new = cls.__new__
        for message_id, receipt_handle, body, md5_of_body, attributes, message_attributes in rows:
            self = new(cls)
            self.queue_name = queue_name
            self.message_id = message_id
            self.receipt_handle = receipt_handle
            self.body = body
            self.attributes = attributes or {}
            self.message_attributes = message_attributes or {}
            self.md5_of_body = md5_of_body
            self.received_at = received_at
            messages.append(self)
        return messages

    def string_attribute(self, name: str) -> str | None:
        """The value of a String (or Number) message attribute, or ``None``."""
        attr = self.message_attributes.get(name)
        if attr is None:
            return None
        value = attr.get("StringValue")
        return value if isinstance(value, str) else None

    @property
    def job_name(self) -> str | None:
        return self.string_attribute(JOB_NAME_ATTR)

    @property
    def content_type(self) -> str | None:
        return self.string_attribute(CONTENT_TYPE_ATTR)

    @property
    def receive_count(self) -> int:
        """How many times SQS delivered this message (1 on the first delivery)."""
        return int(self.attributes.get("ApproximateReceiveCount", "1"))

    @property
    def sent_timestamp(self) -> float | None:
        """When the message was sent, in seconds since the epoch."""
        value = self.attributes.get("SentTimestamp")
        return int(value) / 1000 if value is not None else None

    @property
    def group_id(self) -> str | None:
        return self.attributes.get("MessageGroupId")

    @property
    def deduplication_id(self) -> str | None:
        return self.attributes.get("MessageDeduplicationId")

    def __repr__(self) -> str:
        return (
            f"<Message {self.queue_name}/{self.message_id} job={shorten(self.job_name)!r} "
            f"receive_count={self.receive_count}>"
        )
