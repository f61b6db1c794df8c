"""Span bookkeeping shared by jobs, batches and sends: failures, retries, the CONSUMER span."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from sqsw_core.exceptions import RetryJob
from sqsw_core.messages import Message
from sqsw_otel.attributes import (
    BATCH_MESSAGE_COUNT,
    ERROR_TYPE,
    MESSAGE_ID,
    QUEUE_URL,
    RECEIVE_COUNT,
)
from sqsw_otel.propagation import MESSAGE_GETTER
from sqsw_otel.telemetry import Telemetry

if TYPE_CHECKING:
    from opentelemetry.trace import Span
    from opentelemetry.util.types import AttributeValue

    from sqsw_core.queue import GenericQueue

__all__ = ["consuming", "error_type", "fail", "retrying", "set_queue_url"]


def error_type(exc: BaseException) -> str:
    """``error.type``: the exception's canonical class name (low cardinality)."""
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def fail(span: Span, exc: BaseException) -> str:
    """Mark ``span`` as failed by ``exc``; returns the ``error.type``."""
    failure = error_type(exc)
    span.set_attribute(ERROR_TYPE, failure)
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    return failure


def set_queue_url(span: Span, queue: GenericQueue) -> None:
    """``aws.sqs.queue.url``, once the send call has looked it up (never a lookup here)."""
    if queue.queue_url is not None:
        span.set_attribute(QUEUE_URL, queue.queue_url)


def retrying(span: Span, retry: RetryJob) -> None:
    """An intentional retry is not a failure: status stays UNSET, an event says why."""
    policy = retry.backoff_policy
    span.add_event(
        "sqsw.retry",
        {} if policy is None else {"sqsw.backoff_policy": type(policy).__name__},
    )


@contextmanager
def consuming(
    telemetry: Telemetry,
    queue: GenericQueue,
    name: str,
    base: dict[str, AttributeValue],
    metric_attributes: dict[str, AttributeValue],
    messages: list[Message],
) -> Iterator[Span]:
    """A CONSUMER span, current inside, for handling ``messages``; records the metrics.

    One message: its producer's context is the parent and also a link (the
    conventions' "creation context" link), so one trace runs from producer to
    consumer. Several: the current context is the parent, with one link per
    message. An exception marks the span failed and passes through.
    """
    attributes = dict(base)
    current = otel_context.get_current()
    parent = current
    links: list[Link] = []
    if queue.queue_url is not None:
        attributes[QUEUE_URL] = queue.queue_url
    if len(messages) == 1:
        message = messages[0]
        attributes[MESSAGE_ID] = message.message_id
        attributes[RECEIVE_COUNT] = message.receive_count
    elif messages:
        attributes[BATCH_MESSAGE_COUNT] = len(messages)
    current_span = trace.get_current_span(current).get_span_context()
    for message in messages:
        extracted = propagate.extract(message, current, getter=MESSAGE_GETTER)
        if extracted is current:
            continue
        if len(messages) == 1:
            parent = extracted  # with any baggage the producer sent
        producer = trace.get_current_span(extracted).get_span_context()
        if producer.is_valid and producer is not current_span:
            links.append(Link(producer))
    span = telemetry.tracer.start_span(name, parent, SpanKind.CONSUMER, attributes, links or None)
    failure: str | None = None
    start = time.perf_counter()
    try:
        with trace.use_span(
            span, end_on_exit=True, record_exception=False, set_status_on_exception=False
        ):
            try:
                yield span
            except RetryJob:
                raise
            except Exception as exc:
                failure = fail(span, exc)
                raise
    finally:
        if failure is not None:
            metric_attributes = {**metric_attributes, ERROR_TYPE: failure}
        telemetry.process_duration.record(time.perf_counter() - start, metric_attributes)
        telemetry.consumed.add(max(1, len(messages)), metric_attributes)
