"""CloudWatch/EventBridge events and JSON message bodies.

A scheduled rule (or any EventBridge rule) that targets an SQS queue sends the
event envelope as the message body::

    {"version": "0", "id": "a9a10406-...", "detail-type": "Scheduled Event",
     "source": "aws.events", "account": "123456789012", "time": "2019-09-20T09:19:56Z",
     "region": "eu-west-1", "resources": ["arn:aws:events:...:rule/Playground"],
     "detail": {}}

:class:`CloudWatchEvent` is that envelope, typed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqsw_cloudwatch.exceptions import NotAnEventError, NotJSONError
from sqsw_core.exceptions import quote
from sqsw_core.log_text import shorten
from sqsw_core.messages import Message

__all__ = ["CloudWatchEvent", "json_body"]

#: Envelope keys every event carries (``resources`` and ``detail`` may be absent).
REQUIRED_KEYS = ("version", "id", "detail-type", "source", "account", "time", "region")


def _shown(value: Any) -> str:
    """A value from a message as an error quotes it: its start, enough to find it."""
    return shorten(repr(value), 60)


def json_body(message: Message) -> Any:
    """The message body parsed as JSON.

    Raises :class:`~sqsw_cloudwatch.exceptions.NotJSONError` (a ``JobError``:
    logged without a traceback, the message is retried) when it is not JSON.
    """
    try:
        return json.loads(message.body)
    except ValueError as exc:
        raise NotJSONError(
            f"message {message.message_id} on queue {message.queue_name!r} is not JSON "
            f"({quote(str(exc))}); body starts with {message.body[:60]!r}"
        ) from None


def parse_time(value: Any) -> datetime:
    """An ISO 8601 timestamp as a timezone-aware datetime (UTC when no zone is given)."""
    if not isinstance(value, str):
        raise NotAnEventError(f"'time' must be an ISO 8601 string, got {_shown(value)}")
    text = value.strip()
    if text.endswith(("Z", "z")):  # datetime.fromisoformat accepts "Z" only from 3.11
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise NotAnEventError(f"'time' is not an ISO 8601 timestamp: {_shown(value)}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def _string(data: dict[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise NotAnEventError(f"{key!r} must be a string, got {_shown(value)}")
    return value


@dataclass(frozen=True)
class CloudWatchEvent:
    """A CloudWatch Events / EventBridge event (``detail-type`` becomes ``detail_type``)."""

    version: str
    id: str
    detail_type: str
    source: str
    account: str
    time: datetime
    region: str
    resources: tuple[str, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def is_scheduled(self) -> bool:
        """True for the events of a schedule (cron or rate) rule."""
        return self.detail_type == "Scheduled Event" and self.source == "aws.events"

    @classmethod
    def from_dict(cls, data: Any) -> CloudWatchEvent:
        """Build from the decoded JSON envelope; raises ``NotAnEventError`` if it is not one."""
        if not isinstance(data, dict):
            raise NotAnEventError(f"an event is a JSON object, got {type(data).__name__}")
        missing = [key for key in REQUIRED_KEYS if key not in data]
        if missing:
            raise NotAnEventError(f"missing event field(s) {', '.join(map(repr, missing))}")
        resources = data.get("resources", [])
        if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
            raise NotAnEventError(f"'resources' must be a list of strings, got {_shown(resources)}")
        detail = data.get("detail", {})
        if not isinstance(detail, dict):
            raise NotAnEventError(f"'detail' must be a JSON object, got {_shown(detail)}")
        return cls(
            version=_string(data, "version"),
            id=_string(data, "id"),
            detail_type=_string(data, "detail-type"),
            source=_string(data, "source"),
            account=_string(data, "account"),
            time=parse_time(data["time"]),
            region=_string(data, "region"),
            resources=tuple(resources),
            detail=detail,
        )

    @classmethod
    def from_json(cls, text: str) -> CloudWatchEvent:
        """Parse an event from its JSON text."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise NotAnEventError(f"not JSON ({quote(str(exc))})") from None
        return cls.from_dict(data)

    @classmethod
    def from_message(cls, message: Message) -> CloudWatchEvent:
        """Parse the event carried by ``message``; the error names the message and queue."""
        try:
            return cls.from_json(message.body)
        except NotAnEventError as exc:
            raise NotAnEventError(
                f"message {message.message_id} on queue {message.queue_name!r} is not a "
                f"CloudWatch/EventBridge event: {exc}; body starts with {message.body[:60]!r}"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """The JSON envelope, as EventBridge writes it."""
        return {
            "version": self.version,
            "id": self.id,
            "detail-type": self.detail_type,
            "source": self.source,
            "account": self.account,
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "region": self.region,
            "resources": list(self.resources),
            "detail": self.detail,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())
