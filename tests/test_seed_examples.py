"""Every example of the sqs-workers README, with only the documented import changes.

``sqs_workers`` -> ``sqsw_core``; ``MemorySession`` from ``sqsw_memory``;
``RawQueue`` from ``sqsw_cloudwatch``; ``DeadLetterQueue`` from
``sqsw_deadletter``. Each test runs on every backend (memory, LocalStack).
Where the README uses ``SQSEnv()`` the test uses the backend's env instead.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest

from sqsw_core import (
    DEFAULT_BACKOFF,
    IMMEDIATE_RETURN,
    SQSEnv,
    create_fifo_queue,
    create_standard_queue,
)
from sqsw_core.processors import Processor
from sqsw_core.shutdown_policies import IdleShutdown, MaxTasksShutdown


def drain(sqs: SQSEnv, name: str, rounds: int = 5) -> int:
    """Process batches until one comes back empty; returns how many ran."""
    total = 0
    for _ in range(rounds * 100):
        result = sqs.queue(name).process_batch(wait_seconds=1)
        if result.total_count() == 0:
            return total
        total += result.total_count()
    return total


def test_quickstart_add_job_and_delay(sqs: SQSEnv, capsys: pytest.CaptureFixture[str]) -> None:
    create_standard_queue(sqs, "emails")
    queue = sqs.queue("emails")

    @queue.processor("send_email")
    def send_email(to, subject, body):  # type: ignore[no-untyped-def]
        print(f"Sending email {subject} to {to}")

    queue.add_job("send_email", to="user@examile.com", subject="Hello world", body="hello world")
    send_email.delay(to="user@examile.com", subject="Hello again", body="hello world")

    assert drain(sqs, "emails") == 2
    out = capsys.readouterr().out.splitlines()
    assert sorted(out) == [
        "Sending email Hello again to user@examile.com",
        "Sending email Hello world to user@examile.com",
    ]
    # Both jobs were acked: nothing comes back.
    assert sqs.queue("emails").process_batch(wait_seconds=1).total_count() == 0


def test_process_queue_with_idle_shutdown(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "foo")
    seen: list[int] = []

    @sqs.processor("foo", "job")
    def job(n: int) -> None:
        seen.append(n)

    for n in range(15):
        job.delay(n=n)
    sqs.queue("foo").process_queue(shutdown_policy=IdleShutdown(idle_seconds=1), wait_seconds=1)
    assert sorted(seen) == list(range(15))


def test_process_queues_handles_all_queues_at_once(sqs: SQSEnv) -> None:
    seen: dict[str, list[int]] = {"a": [], "b": []}
    for name in ("a", "b"):
        create_standard_queue(sqs, name)

        def make(name: str) -> Callable[[int], None]:
            def handler(n: int) -> None:
                seen[name].append(n)

            return handler

        task = sqs.queue(name).processor("record")(make(name))
        for i in range(5):
            task.delay(n=i)

    sqs.process_queues(shutdown_policy_maker=lambda: IdleShutdown(idle_seconds=1), wait_seconds=1)
    assert sorted(seen["a"]) == list(range(5))
    assert sorted(seen["b"]) == list(range(5))


def test_baked_task(sqs: SQSEnv, capsys: pytest.CaptureFixture[str]) -> None:
    create_standard_queue(sqs, "emails")

    @sqs.queue("emails").processor("send_email")
    def send_email(to, subject, body):  # type: ignore[no-untyped-def]
        print(f"Sending email {subject} to {to}")

    task = send_email.bake(to="user@examile.com", subject="Hello world", body="hello world")
    task.delay()
    send_email.delay(to="user@examile.com", subject="Hello world", body="hello world")
    assert drain(sqs, "emails") == 2
    assert capsys.readouterr().out.count("Sending email Hello world to user@examile.com") == 2


def test_fifo_queues_with_dedup_and_groups(sqs: SQSEnv) -> None:
    create_fifo_queue(sqs, "emails_dead.fifo")
    create_fifo_queue(sqs, "emails.fifo", redrive_policy=sqs.redrive_policy("emails_dead.fifo", 3))
    seen: list[tuple[str, str]] = []

    @sqs.queue("emails.fifo").processor("send_email")
    def send_email(to: str, subject: str) -> None:
        seen.append((to, subject))

    for email, subject in [("a@x", "1"), ("b@x", "1"), ("a@x", "2"), ("a@x", "2"), ("a@x", "3")]:
        kwargs = {"to": email, "subject": subject}
        sqs.queue("emails.fifo").add_job(
            "send_email", _deduplication_id=f"{email}-{subject}", _group_id=email, **kwargs
        )
    drain(sqs, "emails.fifo")
    # The duplicate ("a@x", "2") was dropped; order holds within each group.
    assert [s for to, s in seen if to == "a@x"] == ["1", "2", "3"]
    assert [s for to, s in seen if to == "b@x"] == ["1"]


def test_failed_job_returns_to_the_queue(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "emails")
    attempts: list[int] = []
    queue = sqs.queue("emails", backoff_policy=IMMEDIATE_RETURN)

    @queue.processor("flaky")
    def flaky(n: int) -> None:
        attempts.append(n)
        if len(attempts) < 3:
            raise RuntimeError("SMTP server down")

    flaky.delay(n=1)
    results = [queue.process_batch(wait_seconds=2) for _ in range(3)]
    assert [(r.succeeded_count(), r.failed_count()) for r in results] == [(0, 1), (0, 1), (1, 0)]
    assert attempts == [1, 1, 1]


def test_custom_processor_one_argument(sqs: SQSEnv, capsys: pytest.CaptureFixture[str]) -> None:
    class CustomProcessor(Processor):
        def process(self, job_kwargs):  # type: ignore[no-untyped-def,override]
            print(f"Processing {self.queue_name}.{self.job_name} with {job_kwargs}")
            super(CustomProcessor, self).process(job_kwargs)  # noqa: UP008 - as in the README

    env = SQSEnv(sqs.session, queue_prefix=sqs.queue_prefix, processor_maker=CustomProcessor)
    create_standard_queue(env, "emails")

    @env.queue("emails").processor("send_email")
    def send_email(to: str) -> None:
        print(f"sent to {to}")

    send_email.delay(to="a@x")
    assert env.queue("emails").process_batch(wait_seconds=2).succeeded_count() == 1
    assert capsys.readouterr().out.splitlines() == [
        "Processing emails.send_email with {'to': 'a@x'}",
        "sent to a@x",
    ]


def test_working_with_contexts(sqs: SQSEnv, capsys: pytest.CaptureFixture[str]) -> None:
    create_standard_queue(sqs, "q1")
    queue = sqs.queue("q1")

    @queue.processor("q1", "hello_world", pass_context=True)
    def hello_world(username=None, context=None):  # type: ignore[no-untyped-def]
        print(f"Hello {username} from {context['remote_addr']}")

    with sqs.context(remote_addr="127.0.0.1"):
        hello_world.delay(username="Foo")

    queue.process_batch(wait_seconds=2)
    assert capsys.readouterr().out == "Hello Foo from 127.0.0.1\n"

    sqs.context["remote_addr"] = "10.0.0.1"
    hello_world.delay(username="Bar")
    sqs.context.clear()
    assert sqs.context.to_dict() == {}
    queue.process_batch(wait_seconds=2)
    assert capsys.readouterr().out == "Hello Bar from 10.0.0.1\n"


def test_env_level_processor_decorator(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "q1")
    seen: list[object] = []

    @sqs.processor("q1", "hello_world", pass_context=True)
    def hello_world(username=None, context=None):  # type: ignore[no-untyped-def]
        seen.append((username, context["remote_addr"]))

    with sqs.context(remote_addr="127.0.0.1"):
        hello_world.delay(username="Foo")
    sqs.process_batch("q1", wait_seconds=2)
    assert seen == [("Foo", "127.0.0.1")]


def test_custom_processor_applies_context(sqs: SQSEnv) -> None:
    seen: list[str | None] = []

    class CustomProcessor(Processor):
        def process(self, job_kwargs, job_context):  # type: ignore[no-untyped-def,override]
            os.environ["REMOTE_ADDR"] = job_context["remote_addr"]
            super(CustomProcessor, self).process(job_kwargs, job_context)  # noqa: UP008
            os.unsetenv("REMOTE_ADDR")
            del os.environ["REMOTE_ADDR"]

    env = SQSEnv(sqs.session, queue_prefix=sqs.queue_prefix, processor_maker=CustomProcessor)
    create_standard_queue(env, "q1")

    @env.queue("q1").processor("whoami")
    def whoami() -> None:
        seen.append(os.environ.get("REMOTE_ADDR"))

    with env.context(remote_addr="192.0.2.7"):
        whoami.delay()
    env.queue("q1").process_batch(wait_seconds=2)
    assert seen == ["192.0.2.7"]
    assert "REMOTE_ADDR" not in os.environ


def test_dead_letter_queue_and_redrive(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "emails_dead")
    create_standard_queue(sqs, "emails", redrive_policy=sqs.redrive_policy("emails_dead", 3))
    queue = sqs.queue("emails", backoff_policy=IMMEDIATE_RETURN)

    @queue.processor("send_email")
    def send_email(to: str) -> None:
        raise RuntimeError("always fails")

    send_email.delay(to="a@x")
    # "move the message to the dead-letter queue after four (3 + 1) failed attempts"
    failures = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        result = queue.process_batch(wait_seconds=1)
        failures += result.failed_count()
        if failures >= 3 and result.total_count() == 0:
            break
    assert failures == 3
    dead = sqs.queue("emails_dead").get_raw_messages(wait_seconds=2)
    assert [m.job_name for m in dead] == ["send_email"]


def test_backoff_policies(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "emails")
    queue = sqs.queue("emails", backoff_policy=DEFAULT_BACKOFF)
    assert queue.backoff_policy is DEFAULT_BACKOFF
    other = sqs.queue("other", backoff_policy=IMMEDIATE_RETURN)
    assert other.backoff_policy is IMMEDIATE_RETURN

    @queue.processor("send_email")
    def send_email(to, subject, body):  # type: ignore[no-untyped-def]
        raise RuntimeError("fail once")

    send_email.delay(to="a", subject="s", body="b")
    assert queue.process_batch(wait_seconds=2).failed_count() == 1
    # The default exponential backoff hides the message for ~1 s after the first failure.
    assert queue.process_batch(wait_seconds=0).total_count() == 0


def test_shutdown_policies(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "foo")
    ran: list[int] = []

    @sqs.queue("foo").processor("job")
    def job(n: int) -> None:
        ran.append(n)

    for n in range(30):
        job.delay(n=n)
    sqs.queue("foo").process_queue(shutdown_policy=MaxTasksShutdown(10), wait_seconds=1)
    assert 10 <= len(ran) < 30
    started = time.monotonic()
    sqs.queue("foo").process_queue(shutdown_policy=IdleShutdown(idle_seconds=1), wait_seconds=1)
    assert sorted(ran) == list(range(30))
    assert time.monotonic() - started < 30


def test_memory_session_in_unit_tests() -> None:
    from sqsw_memory import MemorySession

    env = SQSEnv(MemorySession())
    create_standard_queue(env, "foo")
    created: list[str] = []

    @env.queue("foo").processor("create_task")
    def create_task(name: str) -> None:
        created.append(name)

    def code_under_test() -> None:
        create_task.delay(name="write tests")

    code_under_test()
    env.process_batch("foo")
    assert created == ["write tests"]
