"""Each way a job can fail takes its documented path; nothing is acked by mistake."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from sqsw_core import (
    IMMEDIATE_RETURN,
    ConstantBackoff,
    MessageTooLargeError,
    QueueNotFoundError,
    RetryJob,
    SQSEnv,
    create_standard_queue,
)


def receive_all(env: SQSEnv, name: str, expect: int, timeout: float = 10) -> list[Any]:
    """Receive (without processing) until ``expect`` messages were seen."""
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < expect and time.monotonic() < deadline:
        got += env.queue(name).get_raw_messages(wait_seconds=1)
    return got


@pytest.fixture
def queue_env(sqs: SQSEnv) -> SQSEnv:
    create_standard_queue(sqs, "jobs")
    sqs.queue("jobs", backoff_policy=IMMEDIATE_RETURN)
    return sqs


def test_one_failure_in_a_batch_retries_only_that_job(queue_env: SQSEnv) -> None:
    queue = queue_env.queue("jobs")
    ran: list[int] = []

    @queue.processor("job")
    def job(n: int) -> None:
        ran.append(n)
        if n == 3:
            raise ValueError("bad three")

    with queue.add_batch():
        for n in range(6):
            job.delay(n=n)
    first = queue.process_batch(wait_seconds=2)
    while first.total_count() < 6:  # SQS may split the 6 over several receives
        more = queue.process_batch(wait_seconds=2)
        first.succeeded += more.succeeded
        first.failed += more.failed
    assert (first.succeeded_count(), first.failed_count()) == (5, 1)
    retried = receive_all(queue_env, "jobs", 1)
    assert [m.job_name for m in retried] == ["job"]
    assert queue_env.decode_job(retried[0])[0] == {"n": 3}
    assert retried[0].receive_count == 2


def test_retry_job_is_never_acked_and_uses_its_backoff(queue_env: SQSEnv) -> None:
    queue = queue_env.queue("jobs")
    calls: list[int] = []

    @queue.processor("later")
    def later(n: int) -> None:
        calls.append(n)
        if n == 1 and calls.count(1) == 1:
            raise RetryJob(backoff_policy=ConstantBackoff(2))

    later.delay(n=1)
    later.delay(n=2)
    results = queue.process_batch(wait_seconds=2)
    while results.total_count() < 2:
        more = queue.process_batch(wait_seconds=2)
        results.succeeded += more.succeeded
        results.failed += more.failed
    assert (results.succeeded_count(), results.failed_count()) == (1, 1)
    # Hidden for the RetryJob's 2 s, not the queue's immediate return.
    assert queue.process_batch(wait_seconds=0).total_count() == 0
    deadline = time.monotonic() + 10
    while calls.count(1) < 2 and time.monotonic() < deadline:
        queue.process_batch(wait_seconds=1)
    assert calls.count(1) == 2 and calls.count(2) == 1


def test_unknown_job_name_is_failed_and_logged_not_acked(
    queue_env: SQSEnv, caplog: pytest.LogCaptureFixture
) -> None:
    queue = queue_env.queue("jobs")
    queue.add_job("no_such_job", x=1)

    @queue.processor("known")
    def known() -> None:
        pass

    with caplog.at_level(logging.ERROR, logger="sqsw"):
        result = queue.process_batch(wait_seconds=2)
    assert (result.succeeded_count(), result.failed_count()) == (0, 1)
    assert "no processor for job 'no_such_job'" in caplog.text
    assert "registered: known" in caplog.text
    assert len(receive_all(queue_env, "jobs", 1)) == 1


def test_wrong_arguments_fail_with_the_signature_in_the_log(
    queue_env: SQSEnv, caplog: pytest.LogCaptureFixture
) -> None:
    queue = queue_env.queue("jobs")

    @queue.processor("greet")
    def greet(name: str) -> None:
        pass

    queue.add_job("greet", nom="x")  # an older producer's argument name
    with caplog.at_level(logging.ERROR, logger="sqsw"):
        result = queue.process_batch(wait_seconds=2)
    assert result.failed_count() == 1
    assert "job 'greet' on queue 'jobs' got arguments ['nom']" in caplog.text
    assert "greet(name: str)" in caplog.text


def test_type_error_inside_a_job_is_not_blamed_on_arguments(
    queue_env: SQSEnv, caplog: pytest.LogCaptureFixture
) -> None:
    queue = queue_env.queue("jobs")

    @queue.processor("buggy")
    def buggy(n: int) -> None:
        _ = "a" + n  # type: ignore[operator]

    buggy.delay(n=1)
    with caplog.at_level(logging.ERROR, logger="sqsw"):
        assert queue.process_batch(wait_seconds=2).failed_count() == 1
    assert "can only concatenate str" in caplog.text
    assert "do not match" not in caplog.text


def test_producer_rejects_wrong_arguments_before_sending(queue_env: SQSEnv) -> None:
    @queue_env.queue("jobs").processor("greet")
    def greet(name: str) -> None:
        pass

    with pytest.raises(TypeError, match="job 'greet' on queue 'jobs'.*missing a required"):
        greet.delay()
    with pytest.raises(TypeError, match="unexpected keyword argument 'nom'"):
        greet.delay(name="a", nom="x")
    assert queue_env.queue("jobs").get_raw_messages(wait_seconds=0) == []


def test_undecodable_body_fails_and_reaches_the_dead_letter_queue(
    sqs: SQSEnv, caplog: pytest.LogCaptureFixture
) -> None:
    create_standard_queue(sqs, "poison_dead")
    create_standard_queue(sqs, "poison", redrive_policy=sqs.redrive_policy("poison_dead", 2))
    queue = sqs.queue("poison", backoff_policy=IMMEDIATE_RETURN)
    good: list[int] = []

    @queue.processor("job")
    def job(n: int) -> None:
        good.append(n)

    sqs.sqs_client.send_message(
        QueueUrl=queue.url,
        MessageBody="{not json",
        MessageAttributes={
            "ContentType": {"DataType": "String", "StringValue": "json"},
            "JobName": {"DataType": "String", "StringValue": "job"},
        },
    )
    job.delay(n=7)
    failed = 0
    deadline = time.monotonic() + 20
    with caplog.at_level(logging.ERROR, logger="sqsw"):
        while time.monotonic() < deadline:
            result = queue.process_batch(wait_seconds=1)
            failed += result.failed_count()
            if failed >= 2 and result.total_count() == 0:
                break
    assert good == [7]
    assert failed == 2
    assert "cannot decode message" in caplog.text and "'poison'" in caplog.text
    dead = receive_all(sqs, "poison_dead", 1)
    assert [m.body for m in dead] == ["{not json"]


UNPICKLED: list[str] = []


def record_unpickling(text: str) -> None:
    UNPICKLED.append(text)


class _Boom:
    """Unpickling this calls ``record_unpickling``: proof that pickle ran."""

    def __reduce__(self) -> tuple[Callable[[str], None], tuple[str]]:
        return (record_unpickling, ("unpickled!",))


def test_pickle_is_refused_unless_enabled(
    make_env: Callable[..., SQSEnv], caplog: pytest.LogCaptureFixture
) -> None:
    producer = make_env(codec="pickle")
    create_standard_queue(producer, "jobs")
    producer.queue("jobs").add_job("job", payload=_Boom())

    json_worker = make_env()
    queue = json_worker.queue("jobs", backoff_policy=IMMEDIATE_RETURN)
    ran: list[object] = []
    queue.processor("job")(lambda payload: ran.append(payload))
    UNPICKLED.clear()
    with caplog.at_level(logging.ERROR, logger="sqsw"):
        assert queue.process_batch(wait_seconds=2).failed_count() == 1
    assert UNPICKLED == [] and ran == []
    assert "content type 'pickle', which this worker does not accept" in caplog.text

    pickle_worker = make_env(codec="pickle")
    pickle_worker.queue("jobs", backoff_policy=IMMEDIATE_RETURN).processor("job")(
        lambda payload: ran.append(payload)
    )
    deadline = time.monotonic() + 10
    while not ran and time.monotonic() < deadline:
        pickle_worker.queue("jobs").process_batch(wait_seconds=1)
    assert UNPICKLED == ["unpickled!"]


def test_missing_queue_error_names_the_queue_and_what_to_do(sqs: SQSEnv) -> None:
    @sqs.queue("nowhere").processor("job")
    def job() -> None:
        pass

    with pytest.raises(QueueNotFoundError) as info:
        job.delay()
    assert info.value.queue_name == "nowhere"
    assert "SQS queue 'nowhere' does not exist" in str(info.value)
    assert "create_standard_queue" in str(info.value)


def test_oversized_message_is_refused_before_sending(queue_env: SQSEnv) -> None:
    queue = queue_env.queue("jobs")

    @queue.processor("big")
    def big(data: str) -> None:
        pass

    with pytest.raises(
        MessageTooLargeError, match=r"job 'big' for queue 'jobs' is 1,048,6\d\d bytes"
    ):
        big.delay(data="x" * 1_048_576)
    assert queue.get_raw_messages(wait_seconds=0) == []
