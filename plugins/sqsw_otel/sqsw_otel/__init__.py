"""OpenTelemetry tracing and metrics for sqsw, registered as processor ``otel``.

``SQSEnv(processor="otel")`` gives every send call a ``send {queue}`` PRODUCER
span whose context travels in the messages (W3C ``traceparent``/``tracestate``
String message attributes), and every job a ``process {queue}`` CONSUMER span
continuing that trace, plus the messaging metrics of the OpenTelemetry semantic
conventions. Only ``opentelemetry-api`` is used: without an SDK every call is
a no-op.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from sqsw_core.exceptions import RetryJob
from sqsw_core.limits import MAX_MESSAGE_ATTRIBUTES
from sqsw_core.messages import Message
from sqsw_core.processors import HandlerCall, Processor
from sqsw_core.sending import message_size

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter, Histogram, MeterProvider
    from opentelemetry.trace import Span, Tracer, TracerProvider
    from opentelemetry.util.types import AttributeValue

    from sqsw_core.queue import GenericQueue

__all__ = [
    "BATCH_MESSAGE_COUNT",
    "DESTINATION_NAME",
    "ERROR_TYPE",
    "FAILED_COUNT",
    "JOB_NAME",
    "MESSAGE_ID",
    "MESSAGING_SYSTEM",
    "OPERATION_NAME",
    "OPERATION_TYPE",
    "QUEUE_URL",
    "RECEIVE_COUNT",
    "MessageAttributeSetter",
    "MessageGetter",
    "OtelProcessor",
]

__version__ = "0.1.0"

logger = logging.getLogger("sqsw.otel")

INSTRUMENTATION_NAME = "sqsw_otel"

# Attribute names of the OpenTelemetry semantic conventions (messaging, AWS SQS).
MESSAGING_SYSTEM = "messaging.system"
DESTINATION_NAME = "messaging.destination.name"
OPERATION_NAME = "messaging.operation.name"
OPERATION_TYPE = "messaging.operation.type"
MESSAGE_ID = "messaging.message.id"
BATCH_MESSAGE_COUNT = "messaging.batch.message_count"
QUEUE_URL = "aws.sqs.queue.url"
ERROR_TYPE = "error.type"
#: ``messaging.system`` value for SQS in the semantic conventions.
SYSTEM_AWS_SQS = "aws_sqs"
# sqsw's own attributes: the conventions define no SQS receive count nor job name.
JOB_NAME = "messaging.sqsw.job_name"
RECEIVE_COUNT = "messaging.sqsw.receive_count"
#: How many jobs of a batch processor's batch failed (without the handler raising), or
#: how many messages of a batch send SQS refused.
FAILED_COUNT = "messaging.sqsw.failed_count"
#: ``error.type`` of a batch span when some of its jobs failed.
BATCH_JOBS_FAILED = "sqsw_core.batch_jobs.BatchJobsFailed"
#: ``error.type`` of a batch send span when SQS refused some of its entries
#: (what ``add_batch()`` then raises).
BATCH_ENTRIES_REFUSED = "sqsw_core.exceptions.SQSBatchError"

#: The X-Ray propagator's header, read from the ``AWSTraceHeader`` system attribute.
XRAY_HEADER = "X-Amzn-Trace-Id"
AWS_TRACE_HEADER = "AWSTraceHeader"

#: Bucket boundaries (seconds) the semantic conventions advise for durations.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)


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


class _Telemetry:
    """The tracer and instruments of one (tracer provider, meter provider) pair."""

    def __init__(
        self, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None
    ) -> None:
        # Without explicit providers these are the API's proxies: they follow
        # the global providers even when those are set later.
        self.tracer: Tracer = trace.get_tracer(INSTRUMENTATION_NAME, __version__, tracer_provider)
        meter = metrics.get_meter(INSTRUMENTATION_NAME, __version__, meter_provider)
        description = "Duration of processing operation."
        try:
            self.process_duration: Histogram = meter.create_histogram(
                "messaging.process.duration",
                unit="s",
                description=description,
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
            )
        except TypeError:  # opentelemetry-api < 1.23 has no advisory
            self.process_duration = meter.create_histogram(
                "messaging.process.duration", unit="s", description=description
            )
        self.consumed: Counter = meter.create_counter(
            "messaging.client.consumed.messages",
            unit="{message}",
            description="Number of messages that were delivered to the application.",
        )
        self.sent: Counter = meter.create_counter(
            "messaging.client.sent.messages",
            unit="{message}",
            description="Number of messages producer attempted to send to the broker.",
        )


_telemetry: dict[tuple[Any, Any], _Telemetry] = {}
_telemetry_lock = threading.Lock()


def _error_type(exc: BaseException) -> str:
    """``error.type``: the exception's canonical class name (low cardinality)."""
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _fail(span: Span, exc: BaseException) -> str:
    """Mark ``span`` as failed by ``exc``; returns the ``error.type``."""
    error_type = _error_type(exc)
    span.set_attribute(ERROR_TYPE, error_type)
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    return error_type


def _set_queue_url(span: Span, queue: GenericQueue) -> None:
    """``aws.sqs.queue.url``, once the send call has looked it up (never a lookup here)."""
    if queue.queue_url is not None:
        span.set_attribute(QUEUE_URL, queue.queue_url)


def _inject(entries: list[dict[str, Any]], queue: GenericQueue, queue_name: str) -> None:
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


def _retrying(span: Span, retry: RetryJob) -> None:
    """An intentional retry is not a failure: status stays UNSET, an event says why."""
    policy = retry.backoff_policy
    span.add_event(
        "sqsw.retry",
        {} if policy is None else {"sqsw.backoff_policy": type(policy).__name__},
    )


@contextmanager
def _consuming(
    telemetry: _Telemetry,
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
    error_type: str | None = None
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
                error_type = _fail(span, exc)
                raise
    finally:
        if error_type is not None:
            metric_attributes = {**metric_attributes, ERROR_TYPE: error_type}
        telemetry.process_duration.record(time.perf_counter() - start, metric_attributes)
        telemetry.consumed.add(max(1, len(messages)), metric_attributes)


#: Until when (monotonic) the global providers are known to be the API's proxies.
_off_until = [0.0]


class OtelProcessor(Processor):
    """Traces and measures sends and jobs with the OpenTelemetry API.

    Spans and metrics go to the global providers unless a subclass made by
    :meth:`using` names its own. Compose with other processors by listing
    them: ``SQSEnv(processor=["otel", MyProcessor])`` (first = outermost).
    """

    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None

    @classmethod
    def using(
        cls,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> type[OtelProcessor]:
        """A subclass reporting to these providers instead of the global ones."""
        return type(
            cls.__name__,
            (cls,),
            {
                "tracer_provider": tracer_provider,
                "meter_provider": meter_provider,
                "__module__": cls.__module__,
            },
        )

    @classmethod
    def telemetry(cls) -> _Telemetry:
        """The tracer and instruments for this class's providers (made once)."""
        key = (cls.tracer_provider, cls.meter_provider)
        found = _telemetry.get(key)
        if found is None:
            with _telemetry_lock:
                found = _telemetry.get(key)
                if found is None:
                    found = _telemetry[key] = _Telemetry(*key)
        return found

    @classmethod
    def telemetry_off(cls) -> bool:
        """True while no SDK is configured: the API's proxy providers, no explicit ones.

        Re-checked at most once a second (the API's lookups read the
        environment), so an SDK configured later is picked up within a second;
        until then jobs and sends skip span and metric bookkeeping entirely.
        """
        if cls.tracer_provider is not None or cls.meter_provider is not None:
            return False
        now = time.monotonic()
        if now < _off_until[0]:
            return True
        off = (
            isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
            and type(metrics.get_meter_provider()).__name__ == "_ProxyMeterProvider"
        )
        if off:
            _off_until[0] = now + 1.0
        return off

    def _base_attributes(self) -> tuple[str, dict[str, AttributeValue], dict[str, AttributeValue]]:
        """Span name, span attributes and metric attributes shared by this processor's jobs."""
        cached: tuple[str, dict[str, AttributeValue], dict[str, AttributeValue]] | None
        cached = self.__dict__.get("_otel_base")
        if cached is None:
            destination = self.queue.get_sqs_queue_name()
            metric: dict[str, AttributeValue] = {
                MESSAGING_SYSTEM: SYSTEM_AWS_SQS,
                DESTINATION_NAME: destination,
                OPERATION_NAME: "process",
                JOB_NAME: self.job_name,
            }
            cached = (f"process {destination}", {**metric, OPERATION_TYPE: "process"}, metric)
            self.__dict__["_otel_base"] = cached
        return cached

    def process(self, job_kwargs: dict[str, Any], job_context: Any = None) -> Any:
        """Run the job inside a CONSUMER span continuing the producer's trace."""
        if self.telemetry_off():
            return super().process(job_kwargs, job_context)
        name, base, metric_attributes = self._base_attributes()
        message = self.message
        with _consuming(
            self.telemetry(),
            self.queue,
            name,
            base,
            metric_attributes,
            [message] if message is not None else [],
        ) as span:
            try:
                return super().process(job_kwargs, job_context)
            except RetryJob as retry:
                _retrying(span, retry)
                raise

    @classmethod
    @contextmanager
    def handling(cls, call: HandlerCall) -> Iterator[HandlerCall]:
        """A CONSUMER span around a raw queue's handler or a batch processor.

        One message: the span continues the producer's trace, as for jobs. A
        batch: one span linked to each message's producer context, with
        ``messaging.batch.message_count``; jobs the handler reported failed
        make its status ERROR (``error.type`` ``BatchJobsFailed``).
        """
        if cls.telemetry_off():
            with super().handling(call):
                yield call
            return
        queue = call.queue
        destination = queue.get_sqs_queue_name()
        metric_attributes: dict[str, AttributeValue] = {
            MESSAGING_SYSTEM: SYSTEM_AWS_SQS,
            DESTINATION_NAME: destination,
            OPERATION_NAME: "process",
        }
        if call.job_name is not None:
            metric_attributes[JOB_NAME] = call.job_name
        base = {**metric_attributes, OPERATION_TYPE: "process"}
        with _consuming(
            cls.telemetry(),
            queue,
            f"process {destination}",
            base,
            metric_attributes,
            call.messages,
        ) as span:
            try:
                with super().handling(call):
                    yield call
            except RetryJob as retry:
                _retrying(span, retry)
                raise
            if call.failed:
                span.set_attribute(ERROR_TYPE, BATCH_JOBS_FAILED)
                span.set_attribute(FAILED_COUNT, len(call.failed))
                span.set_status(
                    Status(
                        StatusCode.ERROR,
                        f"{len(call.failed)} of {len(call.messages)} jobs of the batch failed",
                    )
                )

    @classmethod
    @contextmanager
    def sending(
        cls, queue: GenericQueue, entries: list[dict[str, Any]]
    ) -> Iterator[list[dict[str, Any]]]:
        """Wrap one send call in a PRODUCER span whose context goes into every entry."""
        if cls.telemetry_off():
            with super().sending(queue, entries) as sent:
                yield sent
            return
        telemetry = cls.telemetry()
        destination = queue.get_sqs_queue_name()
        metric_attributes: dict[str, AttributeValue] = {
            MESSAGING_SYSTEM: SYSTEM_AWS_SQS,
            DESTINATION_NAME: destination,
            OPERATION_NAME: "send",
        }
        attributes: dict[str, AttributeValue] = {**metric_attributes, OPERATION_TYPE: "send"}
        if entries and "Id" in entries[0]:  # SendMessageBatch entries carry an Id
            attributes[BATCH_MESSAGE_COUNT] = len(entries)
        span = telemetry.tracer.start_span(
            f"send {destination}", kind=SpanKind.PRODUCER, attributes=attributes
        )
        count = len(entries)
        with trace.use_span(
            span, end_on_exit=True, record_exception=False, set_status_on_exception=False
        ):
            _inject(entries, queue, destination)
            try:
                with super().sending(queue, entries) as sent:
                    yield sent
            except Exception as exc:
                _set_queue_url(span, queue)
                error_type = _fail(span, exc)
                telemetry.sent.add(count, {**metric_attributes, ERROR_TYPE: error_type})
                raise
            _set_queue_url(span, queue)
            # Entries SQS refused one by one inside a batch call that succeeded.
            refused: list[dict[str, Any]] = getattr(entries, "failed", None) or []
            if refused:
                codes = sorted({str(f.get("Code")) for f in refused})
                span.set_attribute(ERROR_TYPE, BATCH_ENTRIES_REFUSED)
                span.set_attribute(FAILED_COUNT, len(refused))
                span.set_status(
                    Status(
                        StatusCode.ERROR,
                        f"SQS refused {len(refused)} of {count} messages: {', '.join(codes)}",
                    )
                )
                telemetry.sent.add(
                    len(refused), {**metric_attributes, ERROR_TYPE: BATCH_ENTRIES_REFUSED}
                )
                count -= len(refused)
        telemetry.sent.add(count, metric_attributes)
