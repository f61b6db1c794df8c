"""The SQSEnv and task API beyond the README examples."""

from __future__ import annotations

from typing import Any

import pytest

from sqsw_core import (
    QueueNotFoundError,
    SQSEnv,
    create_fifo_queue,
    create_standard_queue,
    delete_queue,
)
from sqsw_core.exceptions import ConfigurationError


def test_run_calls_here_and_call_is_refused(sqs: SQSEnv) -> None:
    @sqs.queue("q").processor("add")
    def add(a: int, b: int = 1) -> int:
        return a + b

    assert add.run(2, b=3) == 5
    assert add.bake(1).run() == 2
    with pytest.raises(RuntimeError, match=r"q\.add called synchronously"):
        add(1)


def test_positional_arguments_are_sent_as_keywords(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "q")
    got: list[Any] = []

    @sqs.queue("q").processor("add")
    def add(a: int, b: int = 10, **extra: Any) -> None:
        got.append((a, b, extra))

    add.delay(1, 2, c=3)
    add.bake(5).delay()
    while sqs.queue("q").process_batch(wait_seconds=1).total_count():
        pass
    assert sorted(got) == [(1, 2, {"c": 3}), (5, 10, {})]


def test_process_batch_result_counts(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "q")
    queue = sqs.queue("q", backoff_policy="immediate")

    @queue.processor("job")
    def job(ok: bool) -> None:
        if not ok:
            raise ValueError("no")

    with queue.add_batch():
        for ok in (True, True, False):
            job.delay(ok=ok)
    total = queue.process_batch(wait_seconds=2)
    while total.total_count() < 3:
        more = queue.process_batch(wait_seconds=1)
        total.succeeded += more.succeeded
        total.failed += more.failed
    assert (total.succeeded_count(), total.failed_count(), total.total_count()) == (2, 1, 3)
    assert all(m.job_name == "job" for m in total.succeeded)
    assert "succeeded=2 failed=1" in repr(total)


def test_queue_management(sqs: SQSEnv) -> None:
    url = create_standard_queue(sqs, "a", visibility_timeout=45, message_retention_period=3600)
    create_fifo_queue(sqs, "b.fifo", content_based_deduplication=True)
    assert sorted(sqs.get_all_known_queues()) == ["a", "b.fifo"]
    assert sqs.get_queue_url("a") == url
    attrs = sqs.queue("a").attributes
    assert attrs["VisibilityTimeout"] == "45"
    assert attrs["MessageRetentionPeriod"] == "3600"
    assert sqs.queue("b.fifo").attributes["ContentBasedDeduplication"] == "true"
    with pytest.raises(ValueError, match="must end with .fifo"):
        create_fifo_queue(sqs, "c")
    with pytest.raises(ValueError, match="use create_fifo_queue"):
        create_standard_queue(sqs, "c.fifo")
    delete_queue(sqs, "a")
    with pytest.raises(QueueNotFoundError):
        sqs.get_queue_url("a")


def test_queue_addressed_by_url_and_prefix(make_env: Any, queue_prefix: str) -> None:
    env = make_env()
    url = create_standard_queue(env, "orders")
    other = SQSEnv(env.session)  # no prefix: reaches the same queue by its URL
    queue = other.queue("anything", queue_url=url)
    queue.add_job("job", n=1)
    assert [m.job_name for m in env.queue("orders").get_raw_messages(wait_seconds=2)] == ["job"]
    assert env.get_sqs_queue_name("orders") == f"{queue_prefix}orders"


def test_queue_type_by_name_and_unknown_options(sqs: SQSEnv) -> None:
    from sqsw_core import JobQueue

    assert type(sqs.queue("x", "job")) is JobQueue
    with pytest.raises(ConfigurationError, match="unknown options"):
        sqs.queue("y", "job", colour="blue")
    with pytest.raises(ConfigurationError, match="either processor= or processor_maker="):
        SQSEnv(sqs.session, processor="default", processor_maker=object)  # type: ignore[arg-type]


def test_a_boto3_session_object_works_on_localstack() -> None:
    import boto3

    from tests.localstack_server import boto3_session_kwargs, localstack_endpoint

    endpoint = localstack_endpoint()
    if endpoint is None:
        pytest.skip("LocalStack is not available")

    class Boto3WithEndpoint:
        """What a user passes to reach LocalStack with a plain boto3 session."""

        def __init__(self) -> None:
            self.session = boto3.Session(**boto3_session_kwargs())

        def client(self, service_name: str, **kwargs: Any) -> Any:
            return self.session.client(service_name, endpoint_url=endpoint, **kwargs)

    env = SQSEnv(Boto3WithEndpoint(), queue_prefix="b3_")
    create_standard_queue(env, "q")
    try:
        env.queue("q").add_job("job")
        assert env.queue("q").get_raw_messages(wait_seconds=2)[0].job_name == "job"
    finally:
        delete_queue(env, "q")


def test_env_process_queue_takes_the_queues_options_and_returns_its_counters(
    sqs: SQSEnv,
) -> None:
    from sqsw_core.shutdown_policies import IdleShutdown
    from tests.helpers import expect_counts

    create_standard_queue(sqs, "both")
    ran: list[int] = []

    @sqs.queue("both").processor("job")
    def job(n: int) -> None:
        ran.append(n)

    with sqs.queue("both").add_batch():
        for n in range(12):
            job.delay(n=n)
    stats = sqs.process_queue(
        "both", IdleShutdown(0.5), wait_seconds=1, concurrency=2, handle_signals=False
    )
    assert stats is not None
    assert (stats.received, stats.succeeded, stats.failed) == (12, 12, 0)
    assert sorted(ran) == list(range(12))
    expect_counts(sqs.queue("both"), (0, 0, 0))
    with pytest.raises(ConfigurationError, match="concurrency"):
        sqs.process_queue("both", IdleShutdown(0.5), concurrency=0)
