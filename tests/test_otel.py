"""The ``otel`` processor (sqsw-otel): spans, propagation and metrics, on every backend.

The SDK's global providers can be set only once per process: a module fixture
sets them with in-memory exporters, and each test reads only its own queues'
telemetry (queue names carry the test's unique prefix).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from sqsw_core import RetryJob, SQSBatchError, SQSEnv, create_standard_queue
from sqsw_core.backoff_policies import ConstantBackoff
from sqsw_core.exceptions import SQSCallError
from sqsw_core.messages import Message
from sqsw_core.processors import Processor
from sqsw_core.queue import JobQueue
from sqsw_otel import MessageGetter, OtelProcessor
from tests.helpers import process_until_idle

ROOT = Path(__file__).resolve().parent.parent

EXPORTER = InMemorySpanExporter()
READER = InMemoryMetricReader()


@pytest.fixture(scope="module", autouse=True)
def _global_providers() -> None:
    """Install SDK providers as the global ones (once per process)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
        trace.set_tracer_provider(provider)
        from opentelemetry import metrics

        metrics.set_meter_provider(MeterProvider(metric_readers=[READER]))


@pytest.fixture(autouse=True)
def _clear_spans() -> Iterator[None]:
    EXPORTER.clear()
    yield
    EXPORTER.clear()


def spans(queue_name: str, kind: SpanKind | None = None) -> list[ReadableSpan]:
    """Finished spans about ``queue_name`` (an SQS name), oldest first."""
    return [
        s
        for s in EXPORTER.get_finished_spans()
        if s.attributes is not None
        and s.attributes.get("messaging.destination.name") == queue_name
        and (kind is None or s.kind == kind)
    ]


def metric_points(name: str, queue_name: str) -> list[Any]:
    """Data points of metric ``name`` for ``queue_name`` (cumulative since start)."""
    data = READER.get_metrics_data()
    points: list[Any] = []
    if data is None:
        return points
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    points.extend(
                        p
                        for p in metric.data.data_points
                        if (p.attributes or {}).get("messaging.destination.name") == queue_name
                    )
    return points


def make_queue(
    make_env: Callable[..., SQSEnv], processor: Any = "otel", name: str = "q"
) -> JobQueue:
    env = make_env(processor=processor, backoff_policy="immediate")
    create_standard_queue(env, name)
    queue = env.queue(name)
    assert isinstance(queue, JobQueue)
    return queue


def test_one_trace_from_producer_to_consumer(make_env: Callable[..., SQSEnv]) -> None:
    queue = make_queue(make_env)
    sqs_name = queue.get_sqs_queue_name()
    inner: list[trace.Span] = []

    @queue.processor("greet")
    def greet(name: str) -> None:
        with trace.get_tracer("app").start_as_current_span("inner") as span:
            inner.append(span)

    greet.delay(name="Ada")
    process_until_idle(queue)

    (send,) = spans(sqs_name, SpanKind.PRODUCER)
    (process,) = spans(sqs_name, SpanKind.CONSUMER)
    assert send.name == f"send {sqs_name}"
    assert process.name == f"process {sqs_name}"
    assert send.context is not None and process.context is not None
    # One trace: the consumer's parent is the producer span, which is also linked.
    assert process.context.trace_id == send.context.trace_id
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert [link.context.span_id for link in process.links] == [send.context.span_id]
    # The job's own spans nest under the consumer span.
    (inner_span,) = [s for s in EXPORTER.get_finished_spans() if s.name == "inner"]
    assert inner_span.parent is not None
    assert inner_span.parent.span_id == process.context.span_id

    assert dict(send.attributes or {}) == {
        "messaging.system": "aws_sqs",
        "messaging.destination.name": sqs_name,
        "messaging.operation.name": "send",
        "messaging.operation.type": "send",
        "aws.sqs.queue.url": queue.url,
    }
    attributes = dict(process.attributes or {})
    message_id = attributes.pop("messaging.message.id")
    assert isinstance(message_id, str) and message_id
    assert attributes == {
        "messaging.system": "aws_sqs",
        "messaging.destination.name": sqs_name,
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        "messaging.sqsw.job_name": "greet",
        "messaging.sqsw.receive_count": 1,
        "aws.sqs.queue.url": queue.url,
    }
    assert process.status.status_code is StatusCode.UNSET

    (duration,) = metric_points("messaging.process.duration", sqs_name)
    assert duration.count == 1 and duration.sum > 0
    assert dict(duration.attributes) == {
        "messaging.system": "aws_sqs",
        "messaging.destination.name": sqs_name,
        "messaging.operation.name": "process",
        "messaging.sqsw.job_name": "greet",
    }
    (consumed,) = metric_points("messaging.client.consumed.messages", sqs_name)
    assert consumed.value == 1
    (sent,) = metric_points("messaging.client.sent.messages", sqs_name)
    assert sent.value == 1
    assert sent.attributes["messaging.operation.name"] == "send"


def test_an_async_job_span_covers_its_awaits_and_parents_its_spans(
    make_env: Callable[..., SQSEnv],
) -> None:
    """An async job: the CONSUMER span lasts until the coroutine ends and the job's own
    spans, before and after an await, are its children; a failure marks it ERROR."""
    queue = make_queue(make_env)
    sqs_name = queue.get_sqs_queue_name()
    attempts: list[int] = []

    @queue.processor("fetch")
    async def fetch(n: int) -> None:
        attempts.append(n)
        run = attempts.count(n)
        with trace.get_tracer("app").start_as_current_span(f"before-{n}-{run}"):
            pass
        await asyncio.sleep(0.05)
        with trace.get_tracer("app").start_as_current_span(f"after-{n}-{run}"):
            pass
        if n == 2 and run == 1:
            raise ValueError("fetch 2 failed once")

    for n in (1, 2):
        fetch.delay(n=n)
    process_until_idle(queue)
    sends = {s.context.span_id for s in spans(sqs_name, SpanKind.PRODUCER) if s.context}
    processes = {s.context.span_id: s for s in spans(sqs_name, SpanKind.CONSUMER) if s.context}
    assert len(sends) == 2 and len(processes) == 3  # fetch 2 ran twice
    finished = {s.name: s for s in EXPORTER.get_finished_spans()}
    for n, run, status in (
        (1, 1, StatusCode.UNSET),
        (2, 1, StatusCode.ERROR),
        (2, 2, StatusCode.UNSET),
    ):
        before, after = finished[f"before-{n}-{run}"], finished[f"after-{n}-{run}"]
        assert before.parent is not None and after.parent is not None
        assert before.parent.span_id == after.parent.span_id  # one parent across the await
        process = processes[after.parent.span_id]
        assert process.parent is not None and process.parent.span_id in sends  # the producer
        assert process.end_time is not None and after.end_time is not None
        assert process.end_time >= after.end_time  # the span stayed open across the await
        assert process.status.status_code is status


def test_trace_context_travels_as_string_attributes(make_env: Callable[..., SQSEnv]) -> None:
    queue = make_queue(make_env)

    @queue.processor("job")
    def job() -> None:
        pass

    job.delay()
    (message,) = queue.get_raw_messages()
    (send,) = spans(queue.get_sqs_queue_name(), SpanKind.PRODUCER)
    assert send.context is not None
    traceparent = message.message_attributes["traceparent"]
    assert traceparent["DataType"] == "String"
    assert traceparent["StringValue"] == (
        f"00-{send.context.trace_id:032x}-{send.context.span_id:016x}-"
        f"{send.context.trace_flags:02x}"
    )
    # Without a trace state there is nothing to send for it.
    assert "tracestate" not in message.message_attributes


def test_resent_message_gets_the_new_context(make_env: Callable[..., SQSEnv]) -> None:
    """A message re-sent with its old trace attributes carries the new send's context."""
    queue = make_queue(make_env)
    old = {
        "traceparent": {"DataType": "String", "StringValue": f"00-{1:032x}-{2:016x}-01"},
        "tracestate": {"DataType": "String", "StringValue": "old=1"},
    }
    queue.send_entry({"MessageBody": "{}", "MessageAttributes": old})
    (message,) = queue.get_raw_messages(wait_seconds=1)
    (send,) = spans(queue.get_sqs_queue_name(), SpanKind.PRODUCER)
    assert send.context is not None
    assert sorted(message.message_attributes) == ["traceparent"]
    value = message.message_attributes["traceparent"]["StringValue"]
    assert value.split("-")[1:3] == [
        f"{send.context.trace_id:032x}",
        f"{send.context.span_id:016x}",
    ]
    # The caller's dict is untouched.
    assert old["traceparent"]["StringValue"].split("-")[1] == f"{1:032x}"
    assert old["tracestate"]["StringValue"] == "old=1"


def test_failing_job_is_an_error_span(make_env: Callable[..., SQSEnv]) -> None:
    queue = make_queue(make_env)

    @queue.processor("boom")
    def boom() -> None:
        raise ValueError("broken")

    boom.delay()
    assert queue.process_batch(wait_seconds=1).failed_count() == 1
    (process,) = spans(queue.get_sqs_queue_name(), SpanKind.CONSUMER)
    assert process.status.status_code is StatusCode.ERROR
    assert process.status.description == "ValueError: broken"
    assert (process.attributes or {})["error.type"] == "ValueError"
    (event,) = process.events
    assert event.name == "exception"
    assert (event.attributes or {})["exception.type"] == "ValueError"
    assert (event.attributes or {})["exception.message"] == "broken"
    (duration,) = metric_points("messaging.process.duration", queue.get_sqs_queue_name())
    assert duration.attributes["error.type"] == "ValueError"


def test_retry_job_is_not_an_error(make_env: Callable[..., SQSEnv]) -> None:
    queue = make_queue(make_env)

    @queue.processor("later")
    def later(policy: bool) -> None:
        raise RetryJob(ConstantBackoff(0) if policy else None)

    later.delay(policy=False)
    later.delay(policy=True)
    deadline = time.monotonic() + 30
    while queue.process_batch(wait_seconds=1).failed_count() < 2:
        assert time.monotonic() < deadline, "the two jobs never failed in one batch"
    processed = spans(queue.get_sqs_queue_name(), SpanKind.CONSUMER)
    assert len(processed) == 2
    for process in processed:
        assert process.status.status_code is StatusCode.UNSET
        assert "error.type" not in (process.attributes or {})
    events = sorted(
        [(e.name, dict(e.attributes or {})) for p in processed for e in p.events], key=str
    )
    assert events == [
        ("sqsw.retry", {"sqsw.backoff_policy": "ConstantBackoff"}),
        ("sqsw.retry", {}),
    ]


def test_raw_queue_messages_get_consumer_spans(make_env: Callable[..., SQSEnv]) -> None:
    env = make_env(processor="otel", backoff_policy="immediate")
    create_standard_queue(env, "cron")
    cron = env.queue("cron", "raw")
    sqs_name = cron.get_sqs_queue_name()
    bodies: list[str] = []

    @cron.raw_processor()
    def handle(message: Message) -> None:
        bodies.append(message.body)
        if message.body == "bad":
            raise ValueError("cannot handle bad")

    cron.add_raw_job("tick")
    process_until_idle(cron)
    (send,) = spans(sqs_name, SpanKind.PRODUCER)
    (process,) = spans(sqs_name, SpanKind.CONSUMER)
    assert send.context is not None and process.context is not None
    # The raw handler's span continues the producer's trace, as a job's does.
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert process.context.trace_id == send.context.trace_id
    attributes = dict(process.attributes or {})
    assert attributes["messaging.operation.type"] == "process"
    assert attributes["messaging.sqsw.receive_count"] == 1
    assert isinstance(attributes["messaging.message.id"], str)
    assert "messaging.sqsw.job_name" not in attributes
    assert process.status.status_code is StatusCode.UNSET

    EXPORTER.clear()
    cron.add_raw_job("bad")
    assert cron.process_batch(wait_seconds=1).failed_count() == 1
    (failed,) = spans(sqs_name, SpanKind.CONSUMER)
    assert failed.status.status_code is StatusCode.ERROR
    assert (failed.attributes or {})["error.type"] == "ValueError"
    assert bodies == ["tick", "bad"]


def test_bulk_processor_gets_one_span_linked_to_each_producer(
    make_env: Callable[..., SQSEnv],
) -> None:
    queue = make_queue(make_env)
    sqs_name = queue.get_sqs_queue_name()
    seen: list[int] = []

    @queue.bulk_processor("index", max_jobs=10, max_wait=0.2)
    def index(jobs: list[dict[str, Any]]) -> list[int]:
        seen.extend(job["n"] for job in jobs)
        # The second job of the first batch fails (reported, not raised).
        return [1] if len(seen) == len(jobs) else []

    for n in range(3):
        index.delay(n=n)  # three sends: three producer spans, three traces
    queue.process_batch(wait_seconds=1)
    producers = spans(sqs_name, SpanKind.PRODUCER)
    consumers = spans(sqs_name, SpanKind.CONSUMER)
    assert len(producers) == 3 and len(consumers) == 1
    (batch,) = consumers
    assert sorted(seen) == [0, 1, 2]
    # One span for the batch call, linked to every message's producer.
    assert sorted(link.context.span_id for link in batch.links) == sorted(
        p.context.span_id for p in producers if p.context is not None
    )
    attributes = dict(batch.attributes or {})
    assert attributes["messaging.batch.message_count"] == 3
    assert attributes["messaging.sqsw.job_name"] == "index"
    assert attributes["messaging.sqsw.failed_count"] == 1
    assert attributes["error.type"] == "sqsw_core.bulk_jobs.BulkJobsFailed"
    assert "messaging.message.id" not in attributes
    assert batch.status.status_code is StatusCode.ERROR
    (consumed,) = metric_points("messaging.client.consumed.messages", sqs_name)
    assert consumed.value == 3


def test_batch_send_span_counts_messages(make_env: Callable[..., SQSEnv]) -> None:
    queue = make_queue(make_env)
    sqs_name = queue.get_sqs_queue_name()
    done: list[int] = []

    @queue.processor("job")
    def job(i: int) -> None:
        done.append(i)

    with queue.add_batch():
        for i in range(12):
            job.delay(i=i)
    process_until_idle(queue)
    assert sorted(done) == list(range(12))

    sends = spans(sqs_name, SpanKind.PRODUCER)
    counts = [(s.attributes or {})["messaging.batch.message_count"] for s in sends]
    assert sorted(c for c in counts if isinstance(c, int)) == [2, 10]
    send_ids = {s.context.span_id for s in sends if s.context is not None}
    processed = spans(sqs_name, SpanKind.CONSUMER)
    assert len(processed) == 12
    assert {p.parent.span_id for p in processed if p.parent is not None} == send_ids
    (sent,) = metric_points("messaging.client.sent.messages", sqs_name)
    assert sent.value == 12


def test_refused_batch_entries_show_on_the_send_span(make_env: Callable[..., SQSEnv]) -> None:
    queue = make_queue(make_env)
    sqs_name = queue.get_sqs_queue_name()
    with pytest.raises(SQSBatchError), queue.add_batch():
        queue.add_job("fine", n=1)
        queue.add_raw_job("nul_body", "bad\x00body", "{}", "json")  # SQS refuses this entry
        queue.add_job("fine", n=2)
    (send,) = spans(sqs_name, SpanKind.PRODUCER)
    attributes = dict(send.attributes or {})
    assert attributes["messaging.batch.message_count"] == 3
    assert attributes["messaging.sqsw.failed_count"] == 1
    assert attributes["error.type"] == "sqsw_core.exceptions.SQSBatchError"
    assert send.status.status_code is StatusCode.ERROR
    assert send.status.description == "SQS refused 1 of 3 messages: InvalidMessageContents"
    points = metric_points("messaging.client.sent.messages", sqs_name)
    by_error = {p.attributes.get("error.type"): p.value for p in points}
    assert by_error == {None: 2, "sqsw_core.exceptions.SQSBatchError": 1}


def test_failed_send_is_an_error_span(make_env: Callable[..., SQSEnv]) -> None:
    queue = make_queue(make_env)
    # An entry SQS refuses (an unknown attribute data type), sent through the hook.
    entry = {
        "MessageBody": "{}",
        "MessageAttributes": {"JobName": {"DataType": "Bogus", "StringValue": "job"}},
    }
    with pytest.raises(SQSCallError):
        queue.send_entry(entry)
    (send,) = spans(queue.get_sqs_queue_name(), SpanKind.PRODUCER)
    assert send.status.status_code is StatusCode.ERROR
    assert (send.attributes or {})["error.type"] == "sqsw_core.exceptions.SQSCallError"
    assert [e.name for e in send.events] == ["exception"]
    (sent,) = metric_points("messaging.client.sent.messages", queue.get_sqs_queue_name())
    assert sent.attributes["error.type"] == "sqsw_core.exceptions.SQSCallError"


class Recorder(Processor):
    """The seed's one-argument custom processor."""

    seen: ClassVar[list[tuple[str, str, bool]]] = []

    def process(self, job_kwargs: dict[str, Any]) -> Any:  # type: ignore[override]
        in_span = trace.get_current_span().get_span_context().is_valid
        Recorder.seen.append((self.queue_name, self.job_name, in_span))
        return super().process(job_kwargs)


@pytest.mark.parametrize("otel_first", [True, False])
def test_composes_with_a_custom_processor(
    make_env: Callable[..., SQSEnv], otel_first: bool
) -> None:
    Recorder.seen = []
    order: list[Any] = ["otel", Recorder] if otel_first else [Recorder, "otel"]
    queue = make_queue(make_env, processor=order)
    ran: list[bool] = []

    @queue.processor("job")
    def job() -> None:
        ran.append(trace.get_current_span().get_span_context().is_valid)

    job.delay()
    process_until_idle(queue)
    assert ran == [True]  # the job always runs inside the consumer span
    # The custom processor runs inside the span only when otel is outermost.
    assert Recorder.seen == [("q", "job", otel_first)]
    assert len(spans(queue.get_sqs_queue_name(), SpanKind.CONSUMER)) == 1
    assert len(spans(queue.get_sqs_queue_name(), SpanKind.PRODUCER)) == 1


def test_explicit_providers(make_env: Callable[..., SQSEnv]) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    processor = OtelProcessor.using(
        tracer_provider=provider, meter_provider=MeterProvider(metric_readers=[reader])
    )
    queue = make_queue(make_env, processor=processor)

    @queue.processor("job")
    def job() -> None:
        pass

    job.delay()
    process_until_idle(queue)
    assert sorted(s.kind.name for s in exporter.get_finished_spans()) == ["CONSUMER", "PRODUCER"]
    assert spans(queue.get_sqs_queue_name()) == []  # nothing went to the global provider
    data = reader.get_metrics_data()
    assert data is not None
    names = {m.name for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics}
    assert names >= {"messaging.process.duration", "messaging.client.sent.messages"}


@pytest.mark.parametrize(("existing", "expected"), [(8, 2), (9, 1), (10, 0)])
def test_propagation_respects_the_ten_attribute_limit(
    make_env: Callable[..., SQSEnv],
    caplog: pytest.LogCaptureFixture,
    existing: int,
    expected: int,
) -> None:
    queue = make_queue(make_env)
    attributes = {f"A{i}": {"DataType": "String", "StringValue": str(i)} for i in range(existing)}
    parent = SpanContext(
        trace_id=0x1234,
        span_id=0x5678,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "x")]),
    )
    with (
        caplog.at_level(logging.DEBUG, logger="sqsw.otel"),
        trace.use_span(NonRecordingSpan(parent)),
    ):
        queue.send_entry({"MessageBody": "{}", "MessageAttributes": attributes})
    (message,) = queue.get_raw_messages(wait_seconds=1)
    added = sorted(set(message.message_attributes) - set(attributes))
    assert added == ["traceparent", "tracestate"][:expected]
    assert len(message.message_attributes) == min(existing + 2, 10)
    if "tracestate" in added:
        assert message.message_attributes["tracestate"]["StringValue"] == "vendor=x"
    skipped = [r for r in caplog.records if "Not propagating" in r.getMessage()]
    assert bool(skipped) == (expected < 2)


def test_propagation_respects_the_size_limit(make_env: Callable[..., SQSEnv]) -> None:
    env = make_env(processor="otel", max_message_size=1000)
    create_standard_queue(env, "q")
    queue = env.queue("q")
    attributes = {"JobName": {"DataType": "String", "StringValue": "job"}}
    # 996 bytes fit the 1000-byte limit; with a traceparent (72 bytes) they would not.
    queue.send_entry({"MessageBody": "x" * 980, "MessageAttributes": attributes})
    queue.send_entry({"MessageBody": "x" * 900, "MessageAttributes": attributes})
    messages = queue.get_raw_messages(wait_seconds=1, max_messages=2)
    deadline = time.monotonic() + 15
    while len(messages) < 2:
        assert time.monotonic() < deadline, f"received {len(messages)} of 2 messages"
        messages += queue.get_raw_messages(wait_seconds=1)
    got = sorted((len(m.body), "traceparent" in m.message_attributes) for m in messages)
    assert got == [(900, True), (980, False)]


class FakeXRayPropagator(TextMapPropagator):
    """Reads ``X-Amzn-Trace-Id`` like the AWS X-Ray propagator (just enough of it)."""

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        values = getter.get(carrier, "X-Amzn-Trace-Id")
        if not values:
            return context if context is not None else Context()
        fields = dict(part.split("=", 1) for part in values[0].split(";"))
        _, epoch, rest = fields["Root"].split("-")
        span_context = SpanContext(
            trace_id=int(epoch + rest, 16),
            span_id=int(fields["Parent"], 16),
            is_remote=True,
            trace_flags=TraceFlags(int(fields.get("Sampled", "0"))),
        )
        return trace.set_span_in_context(NonRecordingSpan(span_context), context)

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        pass

    @property
    def fields(self) -> set[str]:
        return {"X-Amzn-Trace-Id"}


XRAY_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def test_aws_trace_header_with_an_xray_propagator(make_env: Callable[..., SQSEnv]) -> None:
    queue = make_queue(make_env)

    @queue.processor("job")
    def job() -> None:
        pass

    def send_with_trace_header() -> None:
        entry = queue.build_entry(
            "{}",
            {
                "ContentType": {"DataType": "String", "StringValue": "json"},
                "JobName": {"DataType": "String", "StringValue": "job"},
                "JobContext": {"DataType": "String", "StringValue": "{}"},
            },
            None,
            None,
            None,
        )
        entry["MessageSystemAttributes"] = {
            "AWSTraceHeader": {"DataType": "String", "StringValue": XRAY_HEADER}
        }
        # Sent outside the hook, so the message carries only the X-Ray header.
        queue.call("send_message", **entry)

    # Default propagators: the header is ignored, the job runs in a new trace.
    send_with_trace_header()
    process_until_idle(queue)
    (process,) = spans(queue.get_sqs_queue_name(), SpanKind.CONSUMER)
    assert process.parent is None and not process.links

    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(FakeXRayPropagator())
    try:
        EXPORTER.clear()
        send_with_trace_header()
        process_until_idle(queue)
    finally:
        propagate.set_global_textmap(previous)
    (process,) = spans(queue.get_sqs_queue_name(), SpanKind.CONSUMER)
    assert process.context is not None and process.parent is not None
    assert process.context.trace_id == 0x5759E988BD862E3FE1BE46A994272793
    assert process.parent.span_id == 0x53995C3F42CD8AD8


def test_message_getter() -> None:
    message = Message(
        queue_name="q",
        message_id="m",
        receipt_handle="r",
        body="{}",
        attributes={"AWSTraceHeader": XRAY_HEADER},
        message_attributes={
            "traceparent": {"DataType": "String", "StringValue": "tp"},
            "Blob": {"DataType": "Binary", "BinaryValue": b"x"},
        },
    )
    getter = MessageGetter()
    assert getter.get(message, "traceparent") == ["tp"]
    assert getter.get(message, "Blob") is None
    assert getter.get(message, "x-amzn-trace-id") == [XRAY_HEADER]
    assert getter.get(message, "missing") is None
    assert getter.keys(message) == ["traceparent", "Blob", "X-Amzn-Trace-Id"]


NO_SDK_SCRIPT = """
import json, sys
from opentelemetry import trace
from sqsw_core import SQSEnv, create_standard_queue
from tests.conftest import make_session
from tests.helpers import process_until_idle

env = SQSEnv(make_session(sys.argv[1]), queue_prefix=sys.argv[2], processor="otel")
create_standard_queue(env, "q")
queue = env.queue("q")
ran = []

@queue.processor("job")
def job(i):
    ran.append(i)

try:
    job.delay(i=1)
    (message,) = queue.get_raw_messages(wait_seconds=1)
    attributes = sorted(message.message_attributes)
    queue.runner.process_message(message)
    queue.runner.acker.flush()
    process_until_idle(queue)
finally:
    env.sqs_client.delete_queue(QueueUrl=queue.url)
print(json.dumps({
    "ran": ran,
    "attributes": attributes,
    "provider": type(trace.get_tracer_provider()).__name__,
}))
"""


def test_jobs_run_without_an_sdk(backend: str, session: Any, queue_prefix: str) -> None:
    """A fresh process with only the API's no-op providers: jobs run, nothing is added."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OTEL_PYTHON_TRACER_PROVIDER", None)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(NO_SDK_SCRIPT), backend, queue_prefix],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {
        "ran": [1],
        "attributes": ["ContentType", "JobContext", "JobName"],
        "provider": "ProxyTracerProvider",
    }
