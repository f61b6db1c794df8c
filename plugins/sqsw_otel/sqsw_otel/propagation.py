"""Trace context in SQS messages: reading it from received ones, writing it into sent ones.

Propagation fields travel as String message attributes (W3C ``traceparent``/
``tracestate`` with the default propagator); the X-Ray header is also read from
the ``AWSTraceHeader`` system attribute.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate
from opentelemetry.propagators.textmap import Getter, Setter

from sqsw_core.limits import MAX_MESSAGE_ATTRIBUTES
from sqsw_core.messages import Message
from sqsw_core.sending import message_size

if TYPE_CHECKING:
    from sqsw_core.queue import GenericQueue

__all__ = [
    "AWS_TRACE_HEADER",
    "MESSAGE_ATTRIBUTE_SETTER",
    "MESSAGE_GETTER",
    "XRAY_HEADER",
    "MessageAttributeSetter",
    "MessageGetter",
    "inject",
]

logger = logging.getLogger("sqsw.otel")

#: The X-Ray propagator's header, read from the ``AWSTraceHeader`` system attribute.
XRAY_HEADER = "X-Amzn-Trace-Id"
AWS_TRACE_HEADER = "AWSTraceHeader"


class MessageGetter(Getter[Message]):
    """Reads propagation fields from a received message's String attributes.

    ``X-Amzn-Trace-Id`` (the X-Ray propagator's key) is read from the
    ``AWSTraceHeader`` system attribute SQS sets for X-Ray traced producers.
    """

    def get(self, carrier: Message, key: str) -> list[str] | None:
        attribute = carrier.message_attributes.get(key)
        if attribute is not None:
            value = attribute.get("StringValue")
            return [value] if isinstance(value, str) else None
        if key.lower() == "x-amzn-trace-id":
            header = carrier.attributes.get(AWS_TRACE_HEADER)
            return [header] if header else None
        return None

    def keys(self, carrier: Message) -> list[str]:
        keys = list(carrier.message_attributes)
        if AWS_TRACE_HEADER in carrier.attributes:
            keys.append(XRAY_HEADER)
        return keys


class MessageAttributeSetter(Setter[dict[str, dict[str, str]]]):
    """Writes propagation fields as SQS String message attributes."""

    def set(self, carrier: dict[str, dict[str, str]], key: str, value: str) -> None:
        carrier[key] = {"DataType": "String", "StringValue": value}


MESSAGE_GETTER = MessageGetter()
MESSAGE_ATTRIBUTE_SETTER = MessageAttributeSetter()


def inject(entries: list[dict[str, Any]], queue: GenericQueue, queue_name: str) -> None:
    """Write the current trace context into each entry's message attributes.

    Fields are skipped (debug log) where they would take a message past the 10
    attributes SQS allows, or a message or the whole call past the size limit.
    """
    fields: dict[str, dict[str, str]] = {}
    propagate.inject(fields, setter=MESSAGE_ATTRIBUTE_SETTER)
    if not fields:  # no valid span (no SDK, nothing to propagate)
        return
    # Fields of the propagator not written now (a re-sent message's old tracestate) go.
    stale = propagate.get_global_textmap().fields - fields.keys()
    limit = queue.env.max_message_size
    sizes = [message_size(entry) for entry in entries]
    total = sum(sizes)
    for entry, size in zip(entries, sizes, strict=True):
        # A copy: the caller's dict may be shared (a re-sent message's attributes).
        attributes = dict(entry.get("MessageAttributes") or {})
        for key in stale.intersection(attributes):
            del attributes[key]
        room = MAX_MESSAGE_ATTRIBUTES - len(attributes)
        added: dict[str, dict[str, str]] = {}
        skipped = []
        for key, value in fields.items():
            if key in attributes or room > 0:
                room -= key not in attributes
                added[key] = dict(value)
            else:
                skipped.append(key)
        cost = message_size({"MessageBody": "", "MessageAttributes": added})
        if size + cost > limit or total + cost > limit:
            logger.debug(
                "Not propagating the trace context to a message on %s: it would exceed "
                "the %d-byte size limit",
                queue_name,
                limit,
            )
            continue
        total += cost
        attributes.update(added)
        entry["MessageAttributes"] = attributes
        if skipped:
            logger.debug(
                "Not propagating %s to a message on %s: it already has the %d message "
                "attributes SQS allows",
                ", ".join(skipped),
                queue_name,
                MAX_MESSAGE_ATTRIBUTES,
            )
