"""Values from messages as they appear in log lines: cut to a readable length.

A job name, attribute or error text comes from whoever sent the message; a
producer's bug (or an attacker) can make it megabytes long. Log lines show at
most :data:`MAX_LOGGED_CHARS` characters of it and say how much was cut.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqsw_core.backoff_policies import BackoffPolicy
    from sqsw_core.messages import Message
    from sqsw_core.queue_handle import QueueHandle

#: The longest value from a message that a log line shows whole.
MAX_LOGGED_CHARS = 200


def shorten(value: object, limit: int = MAX_LOGGED_CHARS) -> str:
    """``value`` as text, cut to ``limit`` characters with a note of the rest."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def log_extra(
    queue: QueueHandle, message: Message | None, policy: BackoffPolicy | None = None
) -> dict[str, Any]:
    """The ``extra`` of a log record about a job (the fields sqs-workers attaches):
    ``queue_name``, ``job_name``, ``message_id`` and ``backoff_policy`` (its ``repr``).

    Built only for records that are logged (failures, retries, held-back
    messages), never per succeeded job. ``message`` ``None``: a record about
    several messages (``message_id`` is ``None`` then).
    """
    job_name = message.job_name if message is not None else None
    return {
        "queue_name": queue.name,
        "job_name": shorten(job_name) if job_name is not None else None,
        "message_id": message.message_id if message is not None else None,
        "backoff_policy": _policy_text(policy or queue.backoff_policy),
    }


def _policy_text(policy: object) -> str:
    """``repr(policy)``, or its class name if that ``repr`` fails (a log call must not)."""
    try:
        return shorten(repr(policy))
    except Exception:
        return type(policy).__name__
