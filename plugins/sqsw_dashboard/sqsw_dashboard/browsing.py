"""The message browser: receive a queue's messages, describe them, release them at once.

Browsing receives each message (its receive count goes up by one) and holds
it hidden only while the scan goes on; all are made visible again before the
page is shown. Bodies are decoded through the environment's decoder, so a
pickle body is only unpickled when the dashboard accepts pickle (``--codec
pickle`` or ``--accept pickle``), and a signed message is verified with the
configured keys.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqsw_core.exceptions import ContentTypeRefusedError, DecodeError, PluginError
from sqsw_core.limits import MAX_BATCH_ENTRIES
from sqsw_core.messages import Message
from sqsw_core.sqs_calls import receive_messages
from sqsw_dashboard.describe import size_text
from sqsw_deadletter.selection import message_age

if TYPE_CHECKING:
    from sqsw_core.env import SQSEnv
    from sqsw_core.queue import GenericQueue

__all__ = ["BrowsedMessage", "describe_message", "hold_messages"]

#: Content type of the signing codec (sqsw-signing).
SIGNED = "signed"
#: Message attributes sqsw writes itself (shown apart from the user's).
SQSW_ATTRIBUTES = frozenset({"JobName", "ContentType", "JobContext"})


@dataclass
class BrowsedMessage:
    """What the browser shows of one message."""

    message_id: str
    job_name: str | None
    receive_count: int
    sent_at: str
    age: float | None
    size: str
    content_type: str
    arguments: str | None = None
    context: str | None = None
    #: ``verified``, ``invalid`` or ``None`` (not a signed message).
    signature: str | None = None
    #: Why the arguments are not shown.
    note: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)


#: The most characters of arguments or context a page shows per message.
SHOWN_CHARACTERS = 4000


def _pretty(value: Any) -> str:
    text = json.dumps(value, indent=1, sort_keys=True, default=repr, ensure_ascii=False)
    if len(text) > SHOWN_CHARACTERS:
        return f"{text[:SHOWN_CHARACTERS]}\n... ({len(text) - SHOWN_CHARACTERS} more characters)"
    return text


def _attributes(message: Message) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, attr in sorted(message.message_attributes.items()):
        if name in SQSW_ATTRIBUTES:
            continue
        value = attr.get("StringValue")
        out[name] = value if isinstance(value, str) else f"({attr.get('DataType', 'Binary')})"
    for name in ("MessageGroupId", "MessageDeduplicationId"):
        if name in message.attributes:
            out[name] = message.attributes[name]
    return out


def _decode(env: SQSEnv, message: Message, shown: BrowsedMessage) -> None:
    signed = shown.content_type == SIGNED
    try:
        kwargs, context = env.decode_job(message)
    except ContentTypeRefusedError:
        if signed:
            shown.note = "signed: no signing keys configured (--codec signed), so not verified"
        else:
            shown.note = (
                f"not decoded: the dashboard does not accept content type "
                f"{shown.content_type!r} (pickle bodies are decoded only with --accept pickle)"
            )
        return
    except (DecodeError, PluginError) as exc:
        if signed:
            shown.signature = "invalid"
        shown.note = str(exc)
        return
    if signed:
        shown.signature = "verified"
    shown.arguments = _pretty(kwargs)
    shown.context = _pretty(dict(context)) if context else None


def describe_message(env: SQSEnv, message: Message, now: float | None = None) -> BrowsedMessage:
    sent = message.sent_timestamp
    shown = BrowsedMessage(
        message_id=message.message_id,
        job_name=message.job_name,
        receive_count=message.receive_count,
        sent_at="-" if sent is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(sent)),
        age=message_age(message, now),
        size=size_text(len(message.body.encode("utf-8"))),
        content_type=message.content_type or env.codec.content_type,
        attributes=_attributes(message),
    )
    if message.job_name is None:
        shown.note = "not a job (no JobName attribute): raw body below"
        shown.arguments = message.body[:SHOWN_CHARACTERS]
        return shown
    _decode(env, message, shown)
    return shown


def hold_messages(
    queue: GenericQueue,
    limit: int,
    *,
    wait_seconds: float = 0,
    hold_seconds: int = 30,
    wanted: set[str] | None = None,
) -> list[Message]:
    """Receive up to ``limit`` distinct messages, hidden ``hold_seconds``; the caller
    releases or deletes them. With ``wanted``, stops once all those ids are held."""
    held: dict[str, Message] = {}
    while len(held) < limit:
        batch = min(MAX_BATCH_ENTRIES, limit - len(held))
        got = receive_messages(queue, wait_seconds, batch, visibility_timeout=hold_seconds)
        new = [m for m in got if m.message_id not in held]
        held.update((m.message_id, m) for m in got)
        if not new or (wanted is not None and wanted.issubset(held)):
            break
    return list(held.values())
