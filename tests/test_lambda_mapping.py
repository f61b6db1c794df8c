"""sqsw-lambda's handler driven as Lambda drives it, on the in-memory SQS and on LocalStack.

``sqsw_lambda.testing.EventSourceMapping`` does what an SQS event source
mapping with ``ReportBatchItemFailures`` does: receive (all attributes),
build the event as AWS documents it, invoke the handler, delete the records
it did not report as failed. Each test then checks what a user sees: which
jobs ran, how often and when, and what SQS holds afterwards.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from sqsw_core import RetryJob, SQSEnv, create_fifo_queue, create_standard_queue
from sqsw_core.backoff_policies import ConstantBackoff
from sqsw_core.messages import CONTENT_TYPE_ATTR, JOB_NAME_ATTR
from sqsw_lambda import handler, lambda_context
from sqsw_lambda.testing import EventSourceMapping
from sqsw_otel import OtelProcessor
from sqsw_signing import SigningCodec
from tests.helpers import (
    dead_letter_depth,
    expect_counts,
    on_memory,
    queue_with_dead_letters,
    receive_counts,
)

#: Failed jobs come back after this backoff (s), well under the queue's 30 s visibility
#: timeout: a retry seen within RETRY_WITHIN proves the handler applied the backoff.
BACKOFF = 1
RETRY_WITHIN = 12.0


def _mapping(env: SQSEnv, queue: Any, function: Callable[..., Any]) -> EventSourceMapping:
    return EventSourceMapping(env.sqs_client, queue.url, function)


def _checked(fn: Callable[[dict[str, Any], Any], Any]) -> tuple[Callable[..., Any], list[Any]]:
    """``fn`` recording whatever it raised (the handler must never raise)."""
    raised: list[Any] = []

    def invoke(event: dict[str, Any], context: Any) -> Any:
        try:
            return fn(event, context)
        except BaseException as exc:
            raised.append(exc)
            raise

    return invoke, raised


def _send_poison(queue: Any, count: int) -> None:
    """Messages no processor can run: a body that is not JSON, a job nobody registered."""
    for i in range(count):
        job = "job" if i % 2 == 0 else "nobody_registered_this"
        queue.env.sqs_client.send_message(
            QueueUrl=queue.url,
            MessageBody="{not json" if job == "job" else '{"n": -1}',
            MessageAttributes={
                JOB_NAME_ATTR: {"DataType": "String", "StringValue": job},
                CONTENT_TYPE_ATTR: {"DataType": "String", "StringValue": "json"},
            },
        )


def test_500_jobs_10_percent_failing_nothing_lost_backoff_applied_poison_reported(
    make_env: Callable[..., SQSEnv],
) -> None:
    sqs = make_env(backoff_policy=ConstantBackoff(BACKOFF))
    queue, dead = queue_with_dead_letters(sqs, "work", max_receives=2, visibility_timeout=30)
    runs: dict[int, list[float]] = defaultdict(list)
    succeeded: Counter[int] = Counter()
    lock = threading.Lock()

    @queue.processor("job")
    def job(n: int) -> None:
        with lock:
            runs[n].append(time.monotonic())
            first = len(runs[n]) == 1
        if n % 10 == 0 and first:
            raise RuntimeError(f"job {n} fails on its first delivery")
        with lock:
            succeeded[n] += 1

    with queue.add_batch():
        for n in range(500):
            job.delay(n=n)
    _send_poison(queue, 4)

    function, raised = _checked(handler(sqs))
    mapping = _mapping(sqs, queue, function)
    mapping.run(lambda: len(succeeded) == 500, timeout=60, pollers=1 if on_memory(sqs) else 3)
    # The poison messages: failed twice (backoff 1 s each), then SQS moves them.
    mapping.run(lambda: dead_letter_depth(dead) == 4, timeout=20)

    assert raised == [] and mapping.bad_responses == []
    assert succeeded == Counter(range(500)), "every job succeeded exactly once"
    failing = [n for n in range(500) if n % 10 == 0]
    assert {n for n, times in runs.items() if len(times) == 2} == set(failing)
    assert all(len(runs[n]) == 1 for n in range(500) if n % 10)
    gaps = [runs[n][1] - runs[n][0] for n in failing]
    assert min(gaps) >= BACKOFF - 0.3, f"a retry came before its backoff: {min(gaps):.2f} s"
    assert max(gaps) < RETRY_WITHIN, f"a retry waited {max(gaps):.1f} s: backoff not applied"
    expect_counts(queue, (0, 0, 0), "after the run", dead=dead)
    assert sorted(receive_counts(dead).values()) == [2, 2, 2, 2]  # received twice on work


def test_fifo_order_held_through_failures_and_a_poison_record(
    make_env: Callable[..., SQSEnv],
) -> None:
    sqs = make_env(backoff_policy=ConstantBackoff(BACKOFF))
    create_fifo_queue(sqs, "orders_dead.fifo", content_based_deduplication=True)
    create_fifo_queue(
        sqs,
        "orders.fifo",
        content_based_deduplication=True,
        visibility_timeout=30,
        # Records after a failure go back unrun, and each such receive counts: AWS advises
        # a maxReceiveCount of at least 5 for queues read by an event source mapping; 10 here,
        # as many batches here begin with a failure.
        redrive_policy=sqs.redrive_policy("orders_dead.fifo", 10),
    )
    queue = sqs.queue("orders.fifo")
    groups, per_group = 8, 15
    done: dict[str, list[int]] = defaultdict(list)
    attempts: Counter[tuple[str, int]] = Counter()
    lock = threading.Lock()

    @queue.processor("step")
    def step(group: str, n: int) -> None:
        with lock:
            attempts[group, n] += 1
            first = attempts[group, n] == 1
        if n % 10 == 3 and first:
            raise RuntimeError(f"{group}/{n} fails once")
        with lock:
            done[group].append(n)

    with queue.add_batch():
        for n in range(per_group):
            for g in range(groups):
                step.delay(group=f"g{g}", n=n, _group_id=f"g{g}")
    # A poison record in a group of its own. (Messages SQS returns with a failing one of
    # their group are received, unrun, as often as it is: they would reach the dead-letter
    # queue with it.)
    sqs.sqs_client.send_message(
        QueueUrl=queue.url,
        MessageBody="{not json",
        MessageGroupId="poison",
        MessageAttributes={JOB_NAME_ATTR: {"DataType": "String", "StringValue": "step"}},
    )
    function, raised = _checked(handler(sqs))
    mapping = _mapping(sqs, queue, function)
    expected = per_group * groups
    mapping.run(lambda: sum(len(v) for v in done.values()) == expected, timeout=60)

    assert raised == [] and mapping.bad_responses == []
    for g in range(groups):
        assert done[f"g{g}"] == list(range(per_group)), f"group g{g} out of order"
    # n = 3 and 13 of every group failed once, then ran again in their place.
    assert sorted(k for k, v in attempts.items() if v == 2) == sorted(
        (f"g{g}", n) for g in range(groups) for n in (3, 13)
    )
    dead = sqs.queue("orders_dead.fifo")
    mapping.run(lambda: dead_letter_depth(dead) == 1, timeout=20)
    expect_counts(queue, (0, 0, 0), "after the run", dead=dead)


def test_jobs_see_their_context_and_the_lambda_context_raw_queues_run_too(
    make_env: Callable[..., SQSEnv],
) -> None:
    sqs = make_env()
    create_standard_queue(sqs, "ctx")
    create_standard_queue(sqs, "events")
    queue, raw = sqs.queue("ctx"), sqs.queue("events", "raw")
    seen: list[tuple[Any, ...]] = []

    @queue.processor("greet", pass_context=True)
    def greet(name: str, context: Any) -> None:
        invocation = lambda_context()
        seen.append((name, dict(context), invocation.aws_request_id, invocation.function_name))

    @raw.raw_processor()
    def on_event(message: Any) -> None:
        seen.append(("raw", message.body, message.message_attributes["source"]["StringValue"]))

    with sqs.context(user="ada"):
        greet.delay(name="world")
    raw.add_raw_job("hello", message_attributes={"source": "billing"})
    function, raised = _checked(handler(sqs))
    _mapping(sqs, queue, function).run(lambda: len(seen) == 1, timeout=10)
    _mapping(sqs, raw, function).run(lambda: len(seen) == 2, timeout=10)
    assert raised == []
    assert seen == [
        ("world", {"user": "ada"}, "req-1", "sqsw-test-function"),
        ("raw", "hello", "billing"),
    ]
    assert lambda_context() is None  # outside an invocation
    expect_counts(queue, (0, 0, 0))
    expect_counts(raw, (0, 0, 0))


def test_async_jobs_run_through_the_handler_with_the_lambda_context(
    make_env: Callable[..., SQSEnv],
) -> None:
    sqs = make_env(backoff_policy=ConstantBackoff(BACKOFF))
    create_standard_queue(sqs, "io")
    queue = sqs.queue("io")
    seen: list[tuple[int, str]] = []
    attempts: dict[int, int] = {}

    @queue.processor("fetch")
    async def fetch(n: int) -> None:
        await asyncio.sleep(0.01)
        attempts[n] = attempts.get(n, 0) + 1
        if n == 3 and attempts[n] == 1:
            raise ConnectionError("fetch 3 failed once")
        seen.append((n, lambda_context().aws_request_id))

    with queue.add_batch():
        for n in range(6):
            fetch.delay(n=n)
    function, raised = _checked(handler(sqs))
    _mapping(sqs, queue, function).run(lambda: len(seen) == 6, timeout=15)
    assert raised == []
    assert sorted(n for n, _ in seen) == list(range(6))
    assert all(request.startswith("req-") for _, request in seen)
    assert attempts[3] == 2
    expect_counts(queue, (0, 0, 0))


def test_bulk_jobs_run_in_calls_of_max_jobs_and_only_the_failed_ones_come_back(
    make_env: Callable[..., SQSEnv],
) -> None:
    sqs = make_env(backoff_policy=ConstantBackoff(BACKOFF))
    create_standard_queue(sqs, "bulk", visibility_timeout=30)
    queue = sqs.queue("bulk")
    calls: list[list[int]] = []
    indexed: Counter[int] = Counter()

    @queue.bulk_processor("index", max_jobs=4)
    def index(jobs: list[dict[str, Any]]) -> list[int]:
        numbers = [job["n"] for job in jobs]
        calls.append(numbers)
        fail_now = 7 in numbers and sum(call.count(7) for call in calls) == 1
        indexed.update(n for n in numbers if not (fail_now and n == 7))
        return [numbers.index(7)] if fail_now else []

    with queue.add_batch():
        for n in range(10):
            index.delay(n=n)
    mapping = EventSourceMapping(sqs.sqs_client, queue.url, handler(sqs), batch_size=10)
    mapping.run(lambda: len(indexed) == 10, timeout=20)
    assert all(len(call) <= 4 for call in calls)
    assert indexed == Counter(range(10))
    assert sum(call.count(7) for call in calls) == 2  # only 7 came back
    expect_counts(queue, (0, 0, 0))


def test_long_delays_hop_through_the_handler_and_run_when_due(
    make_env: Callable[..., SQSEnv],
) -> None:
    sqs = make_env(max_delay_hop=1)
    create_standard_queue(sqs, "later")
    queue = sqs.queue("later")
    ran: list[float] = []

    @queue.processor("remind")
    def remind() -> None:
        ran.append(time.time())

    sent = time.time()
    remind.delay(_delay_seconds=3)
    mapping = _mapping(sqs, queue, handler(sqs))
    mapping.run(lambda: bool(ran), timeout=15)
    assert len(ran) == 1 and ran[0] - sent >= 2.9
    assert mapping.invocations >= 2  # held back at least once, then run
    expect_counts(queue, (0, 0, 0))


def test_retry_job_and_undecodable_codecs_are_reported_not_raised(
    make_env: Callable[..., SQSEnv],
) -> None:
    sqs = make_env(backoff_policy=ConstantBackoff(BACKOFF))
    producer = make_env(codec="pickle")
    queue, dead = queue_with_dead_letters(sqs, "mixed", max_receives=2, visibility_timeout=30)
    tries: Counter[str] = Counter()

    @queue.processor("again")
    def again(key: str) -> None:
        tries[key] += 1
        if tries[key] == 1:
            raise RetryJob()

    again.delay(key="a")
    # A pickled job: refused by a worker that did not choose pickle (accept list).
    producer.queue("mixed").add_job("again", key="pickled")
    function, raised = _checked(handler(sqs))
    mapping = _mapping(sqs, queue, function)
    mapping.run(lambda: tries["a"] == 2 and dead_letter_depth(dead) == 1, timeout=20)
    assert raised == [] and tries == {"a": 2}
    expect_counts(queue, (0, 0, 0), dead=dead)


def test_the_consumer_span_continues_the_producers_trace(
    make_env: Callable[..., SQSEnv],
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    sqs = make_env(processor=OtelProcessor.using(tracer_provider=provider))
    create_standard_queue(sqs, "traced")
    queue = sqs.queue("traced")
    request_ids: list[str] = []

    @queue.processor("greet")
    def greet(name: str) -> None:
        request_ids.append(lambda_context().aws_request_id)

    greet.delay(name="Ada")
    mapping = _mapping(sqs, queue, handler(sqs))
    mapping.run(lambda: bool(request_ids), timeout=10)
    (send,) = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.PRODUCER]
    (process,) = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CONSUMER]
    assert send.context is not None and process.context is not None
    assert process.context.trace_id == send.context.trace_id
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert request_ids == ["req-1"]
    expect_counts(queue, (0, 0, 0))


def test_signed_jobs_run_and_a_tampered_one_is_reported(
    make_env: Callable[..., SQSEnv],
) -> None:
    signed = SigningCodec(key="k" * 32, key_id="2026")
    sqs = make_env(codec=signed, backoff_policy=ConstantBackoff(BACKOFF))
    queue, dead = queue_with_dead_letters(sqs, "signed", max_receives=1, visibility_timeout=30)
    paid: list[int] = []

    @queue.processor("pay")
    def pay(cents: int) -> None:
        paid.append(cents)

    pay.delay(cents=100)
    body, context = signed.encode_job("pay", {"cents": 100}, {})
    queue.add_raw_job("pay", body.replace("100", "999"), context, "signed")
    function, raised = _checked(handler(sqs))
    mapping = _mapping(sqs, queue, function)
    mapping.run(lambda: paid == [100] and dead_letter_depth(dead) == 1, timeout=15)
    assert raised == [] and paid == [100]
    expect_counts(queue, (0, 0, 0), dead=dead)


def test_without_change_visibility_a_failure_waits_for_the_visibility_timeout(
    make_env: Callable[..., SQSEnv],
) -> None:
    sqs = make_env(backoff_policy="immediate")  # backoff 0: would be back at once
    create_standard_queue(sqs, "plain", visibility_timeout=3)
    queue = sqs.queue("plain")
    runs: list[float] = []

    @queue.processor("flaky")
    def flaky() -> None:
        runs.append(time.monotonic())
        if len(runs) == 1:
            raise RuntimeError("fails once")

    flaky.delay()
    mapping = _mapping(sqs, queue, handler(sqs, change_visibility=False))
    mapping.run(lambda: len(runs) == 2, timeout=15)
    assert runs[1] - runs[0] >= 2.5, "the failed record came back before its visibility timeout"
    expect_counts(queue, (0, 0, 0))


def test_concurrency_runs_a_batchs_jobs_on_threads_with_the_lambda_context(
    make_env: Callable[..., SQSEnv],
) -> None:
    sqs = make_env()
    create_standard_queue(sqs, "io")
    queue = sqs.queue("io")
    running, peak, seen = [0], [0], []
    lock = threading.Lock()

    @queue.processor("fetch")
    def fetch(n: int) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
            seen.append((n, lambda_context().aws_request_id))

    with queue.add_batch():
        for n in range(10):
            fetch.delay(n=n)
    function = handler(sqs, concurrency=5)
    sizes: list[int] = []

    def invoke(event: dict[str, Any], context: Any) -> Any:
        sizes.append(len(event["Records"]))
        return function(event, context)

    mapping = _mapping(sqs, queue, invoke)
    mapping.run(lambda: len(seen) == 10, timeout=15)
    # SQS may return fewer than 10 per receive: at most 5 at once, and as many as a batch had.
    assert max(sizes) >= 2 and peak[0] == min(5, max(sizes))
    assert sorted(n for n, _ in seen) == list(range(10))
    assert all(request_id.startswith("req-") for _, request_id in seen)
    expect_counts(queue, (0, 0, 0))
