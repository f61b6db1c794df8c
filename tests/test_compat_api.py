"""sqs-workers API compatibility (issue 16): raw sends on dead-letter queues, the
values ``ExponentialBackoff`` accepts, clear errors for bad delays and job
arguments, and batch reads (``batching_policy=BatchMessages(batch_size=N)``).

Each test runs on the in-memory session and on LocalStack (``sqs``/``make_env``).
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from sqsw_core import (
    BatchMessages,
    ConfigurationError,
    ExponentialBackoff,
    NoBatching,
    SQSEnv,
    backoff_policies,
    create_fifo_queue,
    create_standard_queue,
)
from sqsw_core.bulk_jobs import BatchMessages as BatchMessagesFromModule
from sqsw_core.messages import Message
from sqsw_deadletter import DeadLetterQueue
from tests.helpers import expect_counts, process_until_idle, receive_all

# -- 1. DeadLetterQueue.add_raw_job ---------------------------------------------------


def _with_dead_letter_queue(sqs: SQSEnv, name: str) -> tuple[Any, DeadLetterQueue]:
    create_standard_queue(sqs, f"{name}_dead")
    create_standard_queue(sqs, name, redrive_policy=sqs.redrive_policy(f"{name}_dead", 3))
    upstream = sqs.queue(name)
    return upstream, sqs.queue(f"{name}_dead", DeadLetterQueue.maker(upstream))


def test_dead_letter_queue_add_raw_job_sends_as_raw_queue(sqs: SQSEnv) -> None:
    upstream, dead = _with_dead_letter_queue(sqs, "emails")
    message_id = dead.add_raw_job("Hello world", message_attributes={"origin": "test", "n": 3})
    assert isinstance(message_id, str)
    expect_counts(dead, (1, 0, 0))
    (message,) = receive_all(dead, expected=1, release=True)
    assert message["Body"] == "Hello world"
    attributes = message["MessageAttributes"]
    assert attributes["origin"] == {"DataType": "String", "StringValue": "test"}
    assert attributes["n"] == {"DataType": "Number", "StringValue": "3"}
    # It is a message like any other of the dead-letter queue: pushed back upstream.
    report = dead.push_back(wait_seconds=0)
    assert report.moved == 1
    expect_counts(dead, (0, 0, 0))
    (moved,) = receive_all(upstream, expected=1)
    assert moved["Body"] == "Hello world"


def test_dead_letter_queue_add_raw_job_refuses_as_raw_queue(sqs: SQSEnv) -> None:
    _, dead = _with_dead_letter_queue(sqs, "jobs")
    with pytest.raises(TypeError, match=r"add_raw_job\(\) on queue 'jobs_dead': the body must"):
        dead.add_raw_job(b"bytes")
    with pytest.raises(TypeError, match="got both _delay_seconds and delay_seconds"):
        dead.add_raw_job("x", 1, delay_seconds=1)
    dead.add_raw_job("later", delay_seconds=60)  # sqs-workers' un-prefixed spelling
    expect_counts(dead, (0, 0, 1))


# -- 2. ExponentialBackoff accepts what sqs-workers accepts -------------------------------


def _message(receive_count: int) -> Message:
    return Message.from_sqs(
        "q",
        {
            "MessageId": "m",
            "ReceiptHandle": "r",
            "Body": "{}",
            "Attributes": {"ApproximateReceiveCount": str(receive_count)},
        },
    )


@pytest.mark.parametrize(
    ("kwargs", "warning"),
    [
        ({"base": 0.3}, "base=0.3 is below 1"),
        ({"multiplier": -2}, "multiplier=-2 is negative"),
        ({"min_visibility_timeout": -7}, "min_visibility_timeout=-7 is negative"),
        ({"min_visibility_timeout": 40, "max_visbility_timeout": 30}, "below min_visibility"),
    ],
)
def test_exponential_backoff_accepts_odd_values_with_one_warning(
    kwargs: dict[str, Any], warning: str
) -> None:
    with pytest.warns(UserWarning, match=warning):
        policy = ExponentialBackoff(**kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ExponentialBackoff(**kwargs)  # the same problem again: no second warning
    for count in (1, 2, 5, 70):
        delay = policy.get_visibility_timeout(_message(count))
        assert delay == delay  # not NaN
        assert delay <= policy.max_visibility_timeout


def test_exponential_backoff_values_as_sqs_workers_computes_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each odd value is warned about once per process: another test may have had it.
    monkeypatch.setattr(backoff_policies, "_warned", set())
    with pytest.warns(UserWarning, match="base=0.5"):
        shrinking = ExponentialBackoff(base=0.5, multiplier=8, jitter=0)
    assert [shrinking.get_visibility_timeout(_message(n)) for n in (1, 2, 3)] == [8, 4, 2]
    with pytest.warns(UserWarning, match="max_visibility_timeout=31"):
        crossed = ExponentialBackoff(min_visibility_timeout=41, max_visbility_timeout=31)
    assert crossed.get_visibility_timeout(_message(1)) == 31  # sqs-workers: the max wins
    huge = ExponentialBackoff(base=1e300, jitter=0)
    assert huge.get_visibility_timeout(_message(10)) == 30 * 60


def test_exponential_backoff_refuses_what_is_not_a_number() -> None:
    with pytest.raises(TypeError, match=r"ExponentialBackoff\(base='2'\): expected a number"):
        ExponentialBackoff(base="2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"multiplier=nan"):
        ExponentialBackoff(multiplier=float("nan"))


def test_odd_backoff_runs_a_failing_job(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "odd")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        policy = ExponentialBackoff(base=0.25, multiplier=-1, min_visibility_timeout=-3)
    queue = sqs.queue("odd", backoff_policy=policy)

    @queue.processor("boom")
    def boom() -> None:
        raise RuntimeError("boom")

    boom.delay()
    result = queue.process_batch(wait_seconds=1)
    assert len(result.failed) == 1
    # Every delay is clamped to 0: back in the queue at once.
    (message,) = receive_all(queue, expected=1)
    assert message["Attributes"]["ApproximateReceiveCount"] == "2"


# -- 3. _delay_seconds: one clear error -----------------------------------------------


@pytest.mark.parametrize(
    ("delay", "error", "text"),
    [
        (float("nan"), ValueError, r"_delay_seconds=nan for queue 'emails' is not a number"),
        ("10", TypeError, r"_delay_seconds='10' for queue 'emails' is a str: give a number"),
        (-1, ValueError, r"_delay_seconds=-1 for queue 'emails' is out of range"),
        (float("inf"), ValueError, r"_delay_seconds=inf .* is out of range"),
        (True, TypeError, r"_delay_seconds=True .* is a bool"),
    ],
)
def test_bad_delay_is_one_clear_error(sqs: SQSEnv, delay: Any, error: type, text: str) -> None:
    create_standard_queue(sqs, "emails")
    queue = sqs.queue("emails")

    @queue.processor("send_email")
    def send_email(to: str) -> None:
        pass

    with pytest.raises(error, match=text) as info:
        send_email.delay(to="x", _delay_seconds=delay)
    assert "from 0 to 1209600" in str(info.value)
    with pytest.raises(error, match=text):
        queue.add_job("send_email", to="x", _delay_seconds=delay)
    expect_counts(queue, (0, 0, 0), "nothing sent")


def test_good_delays_still_send(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "later")
    queue = sqs.queue("later")
    queue.add_job("j", _delay_seconds=0)
    queue.add_job("j", _delay_seconds=2.5)
    queue.add_job("j", _delay_seconds=1200)  # over one hop: sent in hops
    expect_counts(queue, (1, 0, 2))


# -- 4. delay() names unexpected arguments -------------------------------------------


def test_delay_names_the_unexpected_argument(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "emails")
    queue = sqs.queue("emails")

    @queue.processor("send_email")
    def send_email(to: str, subject: str = "") -> None:
        pass

    with pytest.raises(TypeError) as info:
        send_email.delay(too="x")  # type: ignore[call-arg]
    assert str(info.value).startswith(
        "job 'send_email' on queue 'emails': unexpected keyword argument 'too' (did you "
        "mean 'to'?); missing required argument 'to' (signature: send_email(to"
    )
    with pytest.raises(TypeError, match="unexpected keyword arguments 'x', 'subjet'"):
        send_email.delay(to="a", x=1, subjet="s")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'tooo'"):
        send_email.bake(tooo="x")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="missing a required argument: 'to'"):
        send_email.delay()  # type: ignore[call-arg]
    expect_counts(queue, (0, 0, 0), "nothing sent")


# -- 5. batch reads: batching_policy=BatchMessages(batch_size=N) ---------------------------


def test_batch_messages_gives_processors_lists(sqs: SQSEnv) -> None:
    assert BatchMessages is BatchMessagesFromModule
    create_standard_queue(sqs, "batched")
    queue = sqs.queue("batched", batching_policy=BatchMessages(batch_size=4))
    calls: list[list[int]] = []

    @queue.processor("say", pass_context=True)
    def say(messages: list[dict[str, Any]]) -> str:
        calls.append(sorted(m["n"] for m in messages))
        assert all(m["context"] == {"who": "me"} for m in messages)
        return "sqs-workers ignores this"

    with sqs.context(who="me"):
        for n in range(10):
            say.delay(n=n)
    expect_counts(queue, (10, 0, 0))
    first = queue.process_batch(wait_seconds=1)
    assert len(first.succeeded) == len(calls[0]) <= 4
    process_until_idle(queue)
    assert all(1 <= len(call) <= 4 for call in calls)
    assert sorted(n for call in calls for n in call) == list(range(10))
    expect_counts(queue, (0, 0, 0), "all acked")


def test_batch_messages_failure_retries_the_whole_call(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "batch_fail", visibility_timeout=60)
    queue = sqs.queue("batch_fail", batching_policy=BatchMessages(3), backoff_policy="constant")
    queue.backoff_policy.backoff_value = 30  # type: ignore[attr-defined]

    @queue.processor("fail")
    def fail(messages: list[dict[str, Any]]) -> None:
        raise RuntimeError("every job of the call")

    with queue.add_batch():
        for n in range(3):
            fail.delay(n=n)
    expect_counts(queue, (3, 0, 0))
    received = 0
    while received < 3:
        result = queue.process_batch(wait_seconds=1)
        assert not result.succeeded
        received += len(result.failed)
    expect_counts(queue, (0, 3, 0), "all three retried after the backoff")


def test_no_batching_and_refusals(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "single")
    queue = sqs.queue("single", batching_policy=NoBatching())

    @queue.processor("one")
    def one(n: int) -> None:
        pass

    one.delay(n=1)
    assert len(queue.process_batch(wait_seconds=1).succeeded) == 1
    with pytest.raises(ValueError, match=r"BatchMessages\(batch_size=0\): give an int >= 1"):
        BatchMessages(batch_size=0)
    with pytest.raises(ConfigurationError, match="batching_policy must be BatchMessages"):
        sqs.queue("other", batching_policy=5)
    with pytest.raises(ConfigurationError, match="is FIFO: batching_policy"):
        sqs.queue("orders.fifo", batching_policy=BatchMessages(2))
    with pytest.raises(ConfigurationError, match="DeadLetterQueue does not run batches"):
        sqs.queue("single_dead", DeadLetterQueue.maker("single"), batching_policy=BatchMessages(2))


def test_batch_messages_over_ten(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "big")
    queue = sqs.queue("big", batching_policy=BatchMessages(batch_size=25))
    calls: list[int] = []

    @queue.processor("job")
    def job(messages: list[dict[str, Any]]) -> None:
        calls.append(len(messages))

    with queue.add_batch():
        for n in range(25):
            job.delay(n=n)
    expect_counts(queue, (25, 0, 0))
    process_until_idle(queue)
    assert sum(calls) == 25
    expect_counts(queue, (0, 0, 0))


def test_fifo_queue_without_batching_unchanged(sqs: SQSEnv) -> None:
    create_fifo_queue(sqs, "plain.fifo", content_based_deduplication=True)
    queue = sqs.queue("plain.fifo", batching_policy=NoBatching())
    assert queue.batch_size is None
