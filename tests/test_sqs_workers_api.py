"""sqs-workers' documented API, with only the import renames of the README.

``sqs_workers`` -> ``sqsw_core``; ``MemorySession`` from ``sqsw_memory``;
``RawQueue`` from ``sqsw_cloudwatch``; ``DeadLetterQueue`` from
``sqsw_deadletter``; ``sqs_workers.batching`` -> ``sqsw_core.batching``.

``tests/test_seed_examples.py`` runs the examples of the sqs-workers README
that it covers (quickstart, baked tasks, FIFO, contexts, custom processors,
redrive, backoff and shutdown policies, MemorySession); this file covers the
rest of that README (serialization, raw queues and CloudWatch messages,
pushing a dead-letter queue back, combined shutdown policies,
``process_queues``) and what the sqs-workers 0.7 README adds (batch writes,
batch reads, synchronous calls, ``RetryJob``, running a dead-letter queue in
place, codecs). Each test runs on every backend (memory, LocalStack) and
checks what SQS holds afterwards where messages are involved. Where the
README uses ``SQSEnv()`` the test uses the backend's env instead.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from typing import Any

import pytest

from sqsw_core import (
    DEFAULT_BACKOFF,
    IMMEDIATE_RETURN,
    ExponentialBackoff,
    JobQueue,
    RetryJob,
    SQSEnv,
    create_standard_queue,
)
from sqsw_core.shutdown_policies import (
    AndShutdown,
    IdleShutdown,
    MaxTasksShutdown,
    OrShutdown,
)
from tests.helpers import expect_counts, poll, process_until_idle, receive_all

CLOUDWATCH_EVENT = {
    "version": "0",
    "id": "a9a10406-9a1f-0ddc-51ae-08db551fac42",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "NNNNNNNNNN",
    "time": "2019-09-20T09:19:56Z",
    "region": "eu-west-1",
    "resources": ["arn:aws:events:eu-west-1:NNNNNNNNNN:rule/Playground"],
    "detail": {},
}


def emails_queue(sqs: SQSEnv, **options: Any) -> tuple[JobQueue, Any]:
    """The README's ``emails`` queue with its ``send_email`` processor (prints)."""
    create_standard_queue(sqs, "emails")
    queue = sqs.queue("emails", **options)

    @queue.processor("send_email")
    def send_email(to, subject, body):  # type: ignore[no-untyped-def]
        print(f"Sending email {subject} to {to}")

    return queue, send_email


# Serialization: "There are two serializers: json and pickle."


@pytest.mark.parametrize("codec", ["json", "pickle", "pickle_compat"])
def test_codec_by_name_in_the_constructor(
    make_env: Any, codec: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = make_env(codec=codec)  # README: env = SQSEnv(codec="pickle")
    queue, send_email = emails_queue(sqs)
    send_email.delay(to="user@example.com", subject="Hello world", body="hello world")
    [message] = receive_all(queue, expected=1)
    assert message["MessageAttributes"]["ContentType"]["StringValue"] == codec
    assert queue.process_batch(wait_seconds=poll(sqs)).succeeded_count() == 1
    assert capsys.readouterr().out == "Sending email Hello world to user@example.com\n"
    expect_counts(queue, (0, 0, 0))


def test_codec_assigned_after_construction(sqs: SQSEnv, capsys: pytest.CaptureFixture[str]) -> None:
    # ``codec`` is a public field of sqs-workers' SQSEnv: code sets it by name.
    sqs.codec = "pickle"  # type: ignore[assignment]
    queue, _ = emails_queue(sqs)
    queue.add_job("send_email", to="user@example.com", subject="Hello world", body="hello world")
    [message] = receive_all(queue, expected=1)
    assert message["MessageAttributes"]["ContentType"]["StringValue"] == "pickle"
    assert queue.process_batch(wait_seconds=poll(sqs)).succeeded_count() == 1
    assert capsys.readouterr().out == "Sending email Hello world to user@example.com\n"
    expect_counts(queue, (0, 0, 0))


# Batch writes (sqs-workers 0.7 README)


def test_batch_writes_explicit_and_celery_way(
    sqs: SQSEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    queue, send_email = emails_queue(sqs)

    # Classic ("explicit") API
    with queue.add_batch():
        queue.add_job(
            "send_email", to="user1@example.com", subject="Hello world", body="hello world"
        )
        queue.add_job(
            "send_email", to="user2@example.com", subject="Hello world", body="hello world"
        )
    expect_counts(queue, (2, 0, 0), "after the explicit batch")

    # "Celery way"
    with send_email.batch():
        send_email.delay(to="user3@example.com", subject="Hello world", body="hello world")
        send_email.delay(to="user4@example.com", subject="Hello world", body="hello world")
    expect_counts(queue, (4, 0, 0), "after the Celery-way batch")

    process_until_idle(queue)
    assert sorted(capsys.readouterr().out.splitlines()) == [
        f"Sending email Hello world to user{n}@example.com" for n in range(1, 5)
    ]
    expect_counts(queue, (0, 0, 0))


# Batch reads (sqs-workers >= 0.6 README)


def test_batch_reads_with_batching_policy(sqs: SQSEnv, capsys: pytest.CaptureFixture[str]) -> None:
    from sqsw_core.batching import BatchMessages

    create_standard_queue(sqs, "emails")
    queue = sqs.queue("emails", batching_policy=BatchMessages(batch_size=10))
    calls: list[int] = []

    @queue.processor("send_email")
    def send_email(messages: list):  # type: ignore[no-untyped-def,type-arg]
        calls.append(len(messages))
        for email in messages:
            print(f"Sending email {email['subject']} to {email['to']}")

    for n in range(12):
        queue.add_job("send_email", to=f"user{n}@example.com", subject=f"s{n}", body="hello")
    expect_counts(queue, (12, 0, 0), "before processing")

    total = 0
    deadline = time.monotonic() + 30
    while total < 12 and time.monotonic() < deadline:
        total += queue.process_batch(wait_seconds=poll(sqs)).succeeded_count()
    assert total == 12
    # "This function will receive up to 10 messages at once"
    assert sum(calls) == 12
    assert all(1 <= n <= 10 for n in calls)
    assert len(calls) < 12, f"one message per call: {calls}"
    assert sorted(capsys.readouterr().out.splitlines()) == sorted(
        f"Sending email s{n} to user{n}@example.com" for n in range(12)
    )
    expect_counts(queue, (0, 0, 0))


def test_batch_reads_in_process_queue(sqs: SQSEnv) -> None:
    from sqsw_core.batching import BatchMessages

    create_standard_queue(sqs, "emails")
    queue = sqs.queue("emails", batching_policy=BatchMessages(batch_size=5))
    calls: list[list[dict[str, Any]]] = []

    @queue.processor("send_email")
    def send_email(messages: list):  # type: ignore[no-untyped-def,type-arg]
        calls.append(messages)

    with queue.add_batch():
        for n in range(12):
            queue.add_job("send_email", to=f"user{n}@example.com", subject="s", body="b")
    # "Then start processing your queue as usual"
    queue.process_queue(shutdown_policy=IdleShutdown(1), wait_seconds=1)
    assert all(isinstance(batch, list) and 1 <= len(batch) <= 5 for batch in calls), calls
    assert sorted(job["to"] for batch in calls for job in batch) == sorted(
        f"user{n}@example.com" for n in range(12)
    )
    expect_counts(queue, (0, 0, 0))


def test_batch_reads_failure_returns_the_whole_batch(sqs: SQSEnv) -> None:
    from sqsw_core.batching import BatchMessages

    create_standard_queue(sqs, "emails")
    queue = sqs.queue(
        "emails", batching_policy=BatchMessages(batch_size=10), backoff_policy=IMMEDIATE_RETURN
    )
    calls: list[int] = []

    @queue.processor("send_email")
    def send_email(messages: list):  # type: ignore[no-untyped-def,type-arg]
        calls.append(len(messages))
        if len(calls) == 1:
            raise RuntimeError("SMTP server down")

    for n in range(3):
        queue.add_job("send_email", n=n)
    expect_counts(queue, (3, 0, 0), "before processing")
    deadline = time.monotonic() + 30
    while sum(calls[1:]) < 3 and time.monotonic() < deadline:
        queue.process_batch(wait_seconds=poll(sqs))
    # The failed call's messages all came back and ran again.
    assert sum(calls[1:]) == 3
    expect_counts(queue, (0, 0, 0))


# Synchronous task execution (sqs-workers 0.7 README)


def test_synchronous_call_raises_and_run_runs_here(
    sqs: SQSEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    queue, send_email = emails_queue(sqs)
    with pytest.raises(RuntimeError, match="called synchronously"):
        send_email(to="user@example.com", subject="Hello world", body="hello world")
    send_email.run(to="user@example.com", subject="Hello world", body="hello world")
    assert capsys.readouterr().out == "Sending email Hello world to user@example.com\n"
    expect_counts(queue, (0, 0, 0), "nothing enqueued")


# process_queues


def test_process_queues_with_a_shutdown_policy(sqs: SQSEnv) -> None:
    seen: list[tuple[str, int]] = []
    for name in ("payments", "emails"):
        create_standard_queue(sqs, name)
        sqs.queue(name).processor("record")(lambda n, name=name: seen.append((name, n)))
        for n in range(3):
            sqs.queue(name).add_job("record", n=n)
    sqs.process_queues(["payments", "emails"], shutdown_policy=IdleShutdown(0.5))
    assert sorted(seen) == [(q, n) for q in ("emails", "payments") for n in range(3)]
    for name in ("payments", "emails"):
        expect_counts(sqs.queue(name), (0, 0, 0))


def test_process_queues_without_names_runs_every_queue(sqs: SQSEnv) -> None:
    seen: list[str] = []
    for name in ("a", "b"):
        create_standard_queue(sqs, name)
        sqs.queue(name).processor("record")(lambda name=name: seen.append(name))
        sqs.queue(name).add_job("record")
    # README: ``sqs.process_queues()``; a policy so that the test ends.
    sqs.process_queues(shutdown_policy_maker=lambda: IdleShutdown(1), wait_seconds=1)
    assert sorted(seen) == ["a", "b"]


# Shutdown policies: "combine two previous policies with OrShutdown or AndShutdown"


def test_or_and_shutdown_combine_policies(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "foo")
    ran: list[int] = []

    @sqs.queue("foo").processor("job")
    def job(n: int) -> None:
        ran.append(n)

    for n in range(30):
        job.delay(n=n)
    policy = OrShutdown(MaxTasksShutdown(10), IdleShutdown(idle_seconds=300))
    sqs.queue("foo").process_queue(shutdown_policy=policy, wait_seconds=1)
    assert 10 <= len(ran) < 30  # stopped by MaxTasksShutdown, long before 300 s idle
    started = time.monotonic()
    policy = AndShutdown(MaxTasksShutdown(1), IdleShutdown(idle_seconds=1))
    sqs.queue("foo").process_queue(shutdown_policy=policy, wait_seconds=1)
    assert sorted(ran) == list(range(30))  # AND: ran on past one task until idle
    assert time.monotonic() - started < 30
    expect_counts(sqs.queue("foo"), (0, 0, 0))


# Raw queues and CloudWatch messages


def test_cloudwatch_message_body_and_headers(sqs: SQSEnv) -> None:
    from sqsw_cloudwatch import RawQueue

    create_standard_queue(sqs, "cron")
    cron = sqs.queue("cron", RawQueue)
    seen: list[Any] = []

    @cron.raw_processor()
    def processor(message):  # type: ignore[no-untyped-def]
        seen.append(message)

    # What CloudWatch (EventBridge) sends: a plain JSON body, no attributes.
    sqs.sqs_client.send_message(QueueUrl=cron.url, MessageBody=json.dumps(CLOUDWATCH_EVENT))
    # "You can pass any valid JSON as a message ... passed as is to the message body."
    cron.add_raw_job(json.dumps({"message": "Hello world"}))
    process_until_idle(cron)

    bodies = sorted((json.loads(m.body) for m in seen), key=len)
    assert bodies == [{"message": "Hello world"}, CLOUDWATCH_EVENT]
    for message in seen:
        headers = message.attributes
        for key in ("ApproximateFirstReceiveTimestamp", "ApproximateReceiveCount", "SentTimestamp"):
            assert headers[key].isdigit(), (key, headers)
        assert headers["ApproximateReceiveCount"] == "1"
        assert "SenderId" in headers
    expect_counts(cron, (0, 0, 0))


# Processing a dead-letter queue by pushing back failed messages


def dead_lettered(sqs: SQSEnv, fail: list[bool]) -> tuple[JobQueue, list[str]]:
    """``foo`` redriving to ``foo_dead`` after 1 receive, with one failed job in ``foo_dead``."""
    create_standard_queue(sqs, "foo_dead")
    create_standard_queue(sqs, "foo", redrive_policy=sqs.redrive_policy("foo_dead", 1))
    foo = sqs.queue("foo")
    ran: list[str] = []

    @foo.processor("send_email")
    def send_email(to: str) -> None:
        if fail[0]:
            raise RuntimeError("bug")
        ran.append(to)

    send_email.delay(to="a@x")
    assert foo.process_batch(wait_seconds=poll(sqs) or 2).failed_count() == 1
    return foo, ran


def test_dead_letter_queue_pushes_back_to_upstream(sqs: SQSEnv) -> None:
    from sqsw_deadletter import DeadLetterQueue

    fail = [True]
    foo, ran = dead_lettered(sqs, fail)
    foo_dead = sqs.queue("foo_dead", DeadLetterQueue.maker(foo))
    # SQS moves the message on its next receive, once the backoff (~1 s) is over.
    deadline = time.monotonic() + 15
    while not receive_all(foo_dead) and time.monotonic() < deadline:
        foo.process_batch(wait_seconds=1)
    expect_counts(foo_dead, (1, 0, 0), "dead-lettered", dead=foo_dead)

    foo_dead.process_queue(shutdown_policy=IdleShutdown(1), wait_seconds=1)
    expect_counts(foo_dead, (0, 0, 0), "after pushing back")
    fail[0] = False  # "fix the main bug", then re-process
    process_until_idle(foo, idle=2)
    assert ran == ["a@x"]
    expect_counts(foo, (0, 0, 0))


def test_dead_letter_queue_add_raw_job(sqs: SQSEnv) -> None:
    from sqsw_deadletter import DeadLetterQueue

    create_standard_queue(sqs, "foo_dead")
    create_standard_queue(sqs, "foo")
    foo = sqs.queue("foo")
    foo_dead = sqs.queue("foo_dead", DeadLetterQueue.maker(foo))
    # In sqs-workers a DeadLetterQueue is a RawQueue: it sends raw messages too.
    foo_dead.add_raw_job("Hello world")
    expect_counts(foo_dead, (1, 0, 0), "after add_raw_job")
    foo_dead.process_queue(shutdown_policy=IdleShutdown(1), wait_seconds=1)
    expect_counts(foo_dead, (0, 0, 0), "after pushing back")
    [message] = receive_all(foo, expected=1, release=False)
    assert message["Body"] == "Hello world"


def test_dead_letter_queue_processed_in_place(sqs: SQSEnv) -> None:
    fail = [True]
    foo, ran = dead_lettered(sqs, fail)
    foo_dead = sqs.queue("foo_dead")
    deadline = time.monotonic() + 15
    while not receive_all(foo_dead) and time.monotonic() < deadline:
        foo.process_batch(wait_seconds=1)
    expect_counts(foo_dead, (1, 0, 0), "dead-lettered")

    fail[0] = False
    foo.copy_processors(foo_dead)
    foo_dead.process_queue(shutdown_policy=IdleShutdown(1), wait_seconds=1)
    assert ran == ["a@x"]
    expect_counts(foo_dead, (0, 0, 0))
    expect_counts(foo, (0, 0, 0))


# Explicit retry control with RetryJob (sqs-workers 0.7 README)


def test_retry_job_with_custom_and_default_backoff(
    sqs: SQSEnv, caplog: pytest.LogCaptureFixture
) -> None:
    create_standard_queue(sqs, "api")
    queue = sqs.queue("api", backoff_policy=DEFAULT_BACKOFF)
    status = {"rate-limited": 429, "down": 503}

    @queue.processor("api_call")
    def api_call(url):  # type: ignore[no-untyped-def]
        if status[url] == 429:  # Rate limited
            # Retry with custom backoff policy
            raise RetryJob(backoff_policy=ExponentialBackoff(min_visibility_timeout=60))
        elif status[url] >= 500:
            # Retry with queue's default backoff
            raise RetryJob()

    api_call.delay(url="rate-limited")
    with caplog.at_level(logging.DEBUG):
        result = queue.process_batch(wait_seconds=poll(sqs) or 2)
    assert result.total_count() == 1 and result.succeeded_count() == 0
    # "The job is logged at INFO level (not ERROR)"
    retried = [
        r for r in caplog.records if r.name.startswith("sqsw") and "api_call" in r.getMessage()
    ]
    assert retried and all(r.levelno == logging.INFO for r in retried), retried
    # Hidden for >= 60 s: in flight, and not received again.
    expect_counts(queue, (0, 1, 0), "after RetryJob with min_visibility_timeout=60")
    assert queue.process_batch(wait_seconds=1).total_count() == 0

    api_call.delay(url="down")
    assert queue.process_batch(wait_seconds=poll(sqs) or 2).total_count() == 1
    # The queue's default (exponential: ~1 s) brings it back soon.
    deadline = time.monotonic() + 15
    again = 0
    while not again and time.monotonic() < deadline:
        again = queue.process_batch(wait_seconds=1).total_count()
    assert again == 1


def test_exponential_backoff_accepts_sqs_workers_arguments(sqs: SQSEnv) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a warning is fine, a refusal is not
        policies = [
            ExponentialBackoff(),
            ExponentialBackoff(base=0.5),
            ExponentialBackoff(base=1, min_visibility_timeout=1),
            ExponentialBackoff(2, 0, 60),
            ExponentialBackoff(base=3, max_visbility_timeout=10),  # sqs-workers' spelling
        ]
    create_standard_queue(sqs, "emails")
    queue = sqs.queue("emails", backoff_policy=policies[1])
    attempts: list[int] = []

    @queue.processor("flaky")
    def flaky() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("fail once")

    flaky.delay()
    assert queue.process_batch(wait_seconds=poll(sqs) or 2).failed_count() == 1
    # base 0.5: min 0 + 0.5 ** 0 = about 1 s.
    deadline = time.monotonic() + 15
    while len(attempts) < 2 and time.monotonic() < deadline:
        queue.process_batch(wait_seconds=1)
    assert len(attempts) == 2
    expect_counts(queue, (0, 0, 0))
