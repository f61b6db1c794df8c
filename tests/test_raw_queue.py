"""Raw queues (sqsw-cloudwatch): the seed's examples and CloudWatch/EventBridge events.

Every test taking ``sqs``/``make_env`` runs on the memory session and on LocalStack.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

import pytest

from sqsw_cloudwatch import (
    CloudWatchEvent,
    NoRawProcessorError,
    NotAnEventError,
    NotJSONError,
    RawQueue,
    json_body,
)
from sqsw_core import (
    IMMEDIATE_RETURN,
    ConfigurationError,
    ConstantBackoff,
    JobError,
    Message,
    RetryJob,
    SQSEnv,
    create_fifo_queue,
    create_standard_queue,
)
from sqsw_core import plugins as sqsw_plugins
from sqsw_core.shutdown_policies import IdleShutdown
from tests.helpers import expect_counts, process_until_idle

#: The body a CloudWatch scheduled rule writes, verbatim from the seed README.
SCHEDULED_EVENT = """{
  "version": "0",
  "id": "a9a10406-9a1f-0ddc-51ae-08db551fac42",
  "detail-type": "Scheduled Event",
  "source": "aws.events",
  "account": "NNNNNNNNNN",
  "time": "2019-09-20T09:19:56Z",
  "region": "eu-west-1",
  "resources": [
    "arn:aws:events:eu-west-1:NNNNNNNNNN:rule/Playground"
  ],
  "detail": {}
}"""


def raw_cron(sqs: SQSEnv, name: str = "cron", **kwargs: Any) -> RawQueue:
    create_standard_queue(sqs, name)
    queue: RawQueue = sqs.queue(name, RawQueue, **kwargs)
    return queue


# -- the seed README, literally ------------------------------------------------


def test_seed_raw_queue_example(sqs: SQSEnv, capsys: pytest.CaptureFixture[str]) -> None:
    create_standard_queue(sqs, "cron")

    cron = sqs.queue("cron", RawQueue)

    @cron.raw_processor()
    def processor(message):  # type: ignore[no-untyped-def]
        print(message.body)

    cron.add_raw_job("Hello world")
    expect_counts(cron, (1, 0, 0), "after add_raw_job")
    cron.process_queue(shutdown_policy=IdleShutdown(0.5), wait_seconds=1)
    expect_counts(cron, (0, 0, 0), "after the run")

    assert capsys.readouterr().out == "Hello world\n"
    assert processor.__name__ == "processor"  # the decorator returns the function


def test_raw_queue_by_name_and_env_decorator(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "cron")
    cron = sqs.queue("cron", "raw")
    assert isinstance(cron, RawQueue)
    bodies: list[str] = []

    @sqs.raw_processor("cron")
    def processor(message: Message) -> None:
        bodies.append(message.body)

    assert cron.fn is processor
    cron.add_raw_job("by name")
    process_until_idle(cron)
    assert bodies == ["by name"]


def test_raw_queue_is_registered_through_the_entry_point_only() -> None:
    assert sqsw_plugins.load(sqsw_plugins.QUEUE_TYPES, "raw") is RawQueue
    code = (
        "import sys, sqsw_core\n"
        "from sqsw_core import SQSEnv\n"
        "SQSEnv(session='aws')\n"
        "assert 'sqsw_cloudwatch' not in sys.modules, 'the core imported sqsw_cloudwatch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- CloudWatch / EventBridge events -------------------------------------------


def test_cloudwatch_scheduled_event_is_typed(sqs: SQSEnv) -> None:
    cron = raw_cron(sqs)
    events: list[CloudWatchEvent] = []

    @cron.raw_processor()
    def tick(event: CloudWatchEvent) -> None:
        events.append(event)

    cron.add_raw_job(SCHEDULED_EVENT)
    process_until_idle(cron)

    assert events == [
        CloudWatchEvent(
            version="0",
            id="a9a10406-9a1f-0ddc-51ae-08db551fac42",
            detail_type="Scheduled Event",
            source="aws.events",
            account="NNNNNNNNNN",
            time=datetime(2019, 9, 20, 9, 19, 56, tzinfo=timezone.utc),
            region="eu-west-1",
            resources=("arn:aws:events:eu-west-1:NNNNNNNNNN:rule/Playground",),
            detail={},
        )
    ]
    event = events[0]
    assert event.time.tzinfo is not None
    assert event.is_scheduled


def test_handler_gets_message_and_event(sqs: SQSEnv) -> None:
    cron = raw_cron(sqs)
    seen: list[tuple[Message, CloudWatchEvent]] = []

    @cron.raw_processor()
    def tick(message: Message, event: CloudWatchEvent) -> None:
        seen.append((message, event))

    message_id = cron.add_raw_job(SCHEDULED_EVENT)
    process_until_idle(cron)

    [(message, event)] = seen
    assert message.message_id == message_id
    assert message.body == SCHEDULED_EVENT
    assert message.receive_count == 1
    assert "SentTimestamp" in message.attributes
    assert message.message_attributes == {}
    assert event.id == "a9a10406-9a1f-0ddc-51ae-08db551fac42"


def test_any_json_body_is_available_parsed(sqs: SQSEnv) -> None:
    cron = raw_cron(sqs)
    seen: list[tuple[Any, CloudWatchEvent | None]] = []

    @cron.raw_processor()
    def handle(message: Message, event: CloudWatchEvent | None) -> None:
        seen.append((json_body(message), event))

    cron.add_raw_job('{"message": "Hello world"}')
    process_until_idle(cron)
    assert seen == [({"message": "Hello world"}, None)]


def test_non_json_body_reaches_a_raw_handler_unchanged(sqs: SQSEnv) -> None:
    cron = raw_cron(sqs)
    bodies: list[str] = []
    events: list[CloudWatchEvent | None] = []

    @cron.raw_processor()
    def handle(message: Message, event: Optional[CloudWatchEvent] = None) -> None:  # noqa: UP045
        bodies.append(message.body)
        events.append(event)

    body = "not JSON { at all \u2013 caf\u00e9 \U0001f600"
    cron.add_raw_job(body)
    process_until_idle(cron)
    assert bodies == [body]
    assert events == [None]


def test_event_handler_fails_a_body_that_is_not_an_event(
    sqs: SQSEnv, caplog: pytest.LogCaptureFixture
) -> None:
    cron = raw_cron(sqs, backoff_policy=IMMEDIATE_RETURN)
    called: list[CloudWatchEvent] = []

    @cron.raw_processor()
    def tick(event: CloudWatchEvent) -> None:
        called.append(event)

    cron.add_raw_job('{"message": "Hello world"}')
    with caplog.at_level(logging.ERROR, logger="sqsw"):
        result = cron.process_batch(wait_seconds=1)
    assert (result.succeeded_count(), result.failed_count()) == (0, 1)
    assert called == []
    assert "is not a CloudWatch/EventBridge event" in caplog.text
    assert "missing event field(s)" in caplog.text
    assert "Traceback" not in caplog.text  # a JobError: the cause is the message

    # Not acked: it comes back, one delivery later.
    again = cron.get_raw_messages(wait_seconds=1)
    assert [m.receive_count for m in again] == [2]


def test_json_body_raises_a_job_error_for_other_text() -> None:
    message = Message(queue_name="q", message_id="m1", receipt_handle="r", body="hello")
    with pytest.raises(NotJSONError, match="message m1 on queue 'q' is not JSON") as info:
        json_body(message)
    assert isinstance(info.value, JobError)


# -- sending -------------------------------------------------------------------


def test_add_raw_job_on_fifo(sqs: SQSEnv) -> None:
    create_fifo_queue(sqs, "events.fifo")
    queue: RawQueue = sqs.queue("events.fifo", "raw")
    seen: list[tuple[str, str | None, str | None]] = []

    @queue.raw_processor()
    def handle(message: Message) -> None:
        seen.append((message.body, message.group_id, message.deduplication_id))

    assert queue.add_raw_job("one", _deduplication_id="1")
    assert queue.add_raw_job("two", None, "2")  # sqs-workers' positional order
    assert queue.add_raw_job("three", deduplication_id="3", group_id="g")  # seed names
    queue.add_raw_job("one again", _deduplication_id="1")  # deduplicated by SQS
    assert queue.add_raw_job("four", delay_seconds=0, deduplication_id="4")
    process_until_idle(queue)

    assert sorted(seen) == [
        ("four", "default", "4"),
        ("one", "default", "1"),
        ("three", "g", "3"),
        ("two", "default", "2"),
    ]
    in_default = [body for body, group, _ in seen if group == "default"]
    assert in_default == ["one", "two", "four"]


def test_add_raw_job_checks_its_arguments(sqs: SQSEnv) -> None:
    cron = sqs.queue("cron", RawQueue)
    with pytest.raises(TypeError, match="body must be str, got bytes.*decode it"):
        cron.add_raw_job(b"Hello world")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"json\.dumps"):
        cron.add_raw_job({"message": "Hello"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="both _delay_seconds and delay_seconds"):
        cron.add_raw_job("x", _delay_seconds=1, delay_seconds=1)
    with pytest.raises(ValueError, match="empty body"):
        cron.add_raw_job("")
    fifo = sqs.queue("cron.fifo", RawQueue)
    with pytest.raises(ValueError, match="FIFO"):
        fifo.add_raw_job("x", delay_seconds=5, deduplication_id="1")


def test_add_raw_job_with_delay_and_attributes(sqs: SQSEnv) -> None:
    cron = raw_cron(sqs)
    seen: list[Message] = []
    cron.connect_raw_processor(seen.append)

    cron.add_raw_job(
        "later",
        delay_seconds=2,
        message_attributes={"Source": "billing", "Attempt": 3, "Blob": b"\x00\x01"},
    )
    assert cron.process_batch().total_count() == 0  # delayed: not visible yet
    process_until_idle(cron, 4)

    [message] = seen
    assert message.body == "later"
    assert message.message_attributes["Source"]["StringValue"] == "billing"
    assert message.message_attributes["Attempt"] == {"DataType": "Number", "StringValue": "3"}
    assert message.message_attributes["Blob"]["BinaryValue"] == b"\x00\x01"


def test_add_batch_sends_raw_jobs_ten_at_a_time(sqs: SQSEnv) -> None:
    cron = raw_cron(sqs)
    bodies: list[str] = []
    cron.connect_raw_processor(lambda message: bodies.append(message.body))

    with cron.add_batch() as batch:
        ids = [cron.add_raw_job(f"tick {i}") for i in range(25)]
    assert ids == [None] * 25
    assert len(batch.message_ids) == 25
    process_until_idle(cron)
    assert sorted(bodies) == sorted(f"tick {i}" for i in range(25))


# -- failures, retries, registration -------------------------------------------------


def test_failing_processor_is_retried_with_the_queue_backoff(sqs: SQSEnv) -> None:
    cron = raw_cron(sqs, backoff_policy=ConstantBackoff(3))
    deliveries: list[int] = []

    @cron.raw_processor()
    def flaky(message: Message) -> None:
        deliveries.append(message.receive_count)
        if message.receive_count == 1:
            raise RuntimeError("first delivery fails")

    cron.add_raw_job("job")
    assert cron.process_batch(wait_seconds=1).failed_count() == 1
    # Hidden for the backoff's 3 s, not acked, not returned at once.
    assert cron.process_batch(wait_seconds=1).total_count() == 0
    assert deliveries == [1]
    process_until_idle(cron, 4)
    assert deliveries == [1, 2]
    assert cron.get_raw_messages(wait_seconds=0) == []


def test_no_processor_means_not_acked(sqs: SQSEnv, caplog: pytest.LogCaptureFixture) -> None:
    cron = raw_cron(sqs, backoff_policy=IMMEDIATE_RETURN)
    cron.add_raw_job("waiting for a processor")

    with caplog.at_level(logging.ERROR, logger="sqsw"):
        result = cron.process_batch(wait_seconds=1)
    assert (result.succeeded_count(), result.failed_count()) == (0, 1)
    assert f"raw queue {cron.name!r} has no processor" in caplog.text
    assert "@queue.raw_processor()" in caplog.text

    bodies: list[tuple[str, int]] = []
    cron.connect_raw_processor(lambda m: bodies.append((m.body, m.receive_count)))
    process_until_idle(cron)
    assert bodies == [("waiting for a processor", 2)]


def test_no_processor_error_is_a_job_error(sqs: SQSEnv) -> None:
    cron = sqs.queue("cron", RawQueue)
    message = Message(queue_name=cron.name, message_id="m", receipt_handle="r", body="x")
    with pytest.raises(NoRawProcessorError) as info:
        cron.handle_message(message)
    assert isinstance(info.value, JobError)


def test_retry_job_retries_without_an_error(sqs: SQSEnv, caplog: pytest.LogCaptureFixture) -> None:
    cron = raw_cron(sqs)
    deliveries: list[int] = []

    @cron.raw_processor()
    def not_yet(message: Message) -> None:
        deliveries.append(message.receive_count)
        if message.receive_count == 1:
            raise RetryJob(IMMEDIATE_RETURN)

    cron.add_raw_job("retry me")
    with caplog.at_level(logging.WARNING, logger="sqsw"):
        process_until_idle(cron)
    assert deliveries == [1, 2]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_second_registration_replaces_the_first_with_a_warning(
    sqs: SQSEnv, caplog: pytest.LogCaptureFixture
) -> None:
    cron = raw_cron(sqs)
    calls: list[str] = []

    @cron.raw_processor()
    def first(message: Message) -> None:
        calls.append("first")

    with caplog.at_level(logging.WARNING, logger="sqsw"):

        @cron.raw_processor()
        def second(message: Message) -> None:
            calls.append("second")

    assert "replaces" in caplog.text
    assert "first" in caplog.text
    assert cron.fn is second
    cron.add_raw_job("x")
    process_until_idle(cron)
    assert calls == ["second"]


def test_handler_parameters_are_checked_at_registration(sqs: SQSEnv) -> None:
    cron = sqs.queue("cron", RawQueue)

    def needs_more(message: Message, customer_id: str) -> None: ...

    with pytest.raises(ConfigurationError, match="cannot fill parameter 'customer_id'"):
        cron.connect_raw_processor(needs_more)
    assert cron.fn is None

    def with_default(message: Message, retries: int = 3) -> None: ...

    cron.connect_raw_processor(with_default)
    assert cron.handler is not None
    assert not cron.handler.wants_event

    def event_only(event: CloudWatchEvent) -> None: ...

    cron.connect_raw_processor(event_only)
    assert cron.handler.wants_event  # decided once, here; not per message


# -- CloudWatchEvent itself ---------------------------------------------------------


def test_cloudwatch_event_parsing() -> None:
    event = CloudWatchEvent.from_json(SCHEDULED_EVENT)
    assert event.detail_type == "Scheduled Event"
    assert json.loads(event.to_json()) == json.loads(SCHEDULED_EVENT)
    assert CloudWatchEvent.from_dict(event.to_dict()) == event
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.id = "other"  # type: ignore[misc]
    assert hash(event) == hash(CloudWatchEvent.from_json(SCHEDULED_EVENT))

    data = json.loads(SCHEDULED_EVENT)
    data["time"] = "2019-09-20T11:19:56+02:00"
    assert CloudWatchEvent.from_dict(data).time == event.time
    data["time"] = "2019-09-20T09:19:56"  # no zone: UTC
    assert CloudWatchEvent.from_dict(data).time.utcoffset() == timedelta(0)

    custom = {**json.loads(SCHEDULED_EVENT), "detail-type": "Order Placed", "detail": {"id": 7}}
    custom_event = CloudWatchEvent.from_dict(custom)
    assert custom_event.detail == {"id": 7}
    assert not custom_event.is_scheduled


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ('{"message": "Hello world"}', "missing event field"),
        ("[1, 2]", "JSON object"),
        ("Hello", "not JSON"),
        (SCHEDULED_EVENT.replace('"2019-09-20T09:19:56Z"', '"yesterday"'), "ISO 8601"),
        (SCHEDULED_EVENT.replace('"detail": {}', '"detail": []'), "'detail'"),
    ],
)
def test_cloudwatch_event_rejects_other_bodies(body: str, match: str) -> None:
    with pytest.raises(NotAnEventError, match=match) as info:
        CloudWatchEvent.from_message(
            Message(queue_name="cron", message_id="m1", receipt_handle="r", body=body)
        )
    assert "message m1 on queue 'cron'" in str(info.value)
    assert isinstance(info.value, JobError)


def test_handler_annotations_resolved_from_strings(sqs: SQSEnv) -> None:
    # Annotations a module cannot resolve (local names) are matched by name.
    namespace: dict[str, Callable[..., Any]] = {}
    exec(
        "def handler(msg: 'Message', ev: 'sqsw_cloudwatch.CloudWatchEvent | None'):\n"
        "    return msg, ev\n",
        namespace,
    )
    cron = sqs.queue("cron", RawQueue)
    cron.connect_raw_processor(namespace["handler"])
    message = Message(queue_name="cron", message_id="m", receipt_handle="r", body=SCHEDULED_EVENT)
    assert cron.handler is not None
    got_message, got_event = cron.handler(message)
    assert got_message is message
    assert isinstance(got_event, CloudWatchEvent)
