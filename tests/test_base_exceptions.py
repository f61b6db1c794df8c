"""A job that raises ``SystemExit``, ``KeyboardInterrupt`` or ``GeneratorExit`` fails like
any other: its message waits out the backoff (no hot loop at visibility 0), one log line
names the queue, the job and the message, and the worker goes on with the next jobs."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from sqsw_core import ConstantBackoff, SQSEnv
from sqsw_core.shutdown_policies import IdleShutdown
from tests.helpers import (
    dead_letter_depth,
    expect_counts,
    on_memory,
    queue_with_dead_letters,
    receive_all,
)

RAISED: dict[str, type[BaseException]] = {
    e.__name__: e for e in (SystemExit, KeyboardInterrupt, GeneratorExit)
}


def test_engine_retries_a_base_exception_after_the_backoff(
    sqs: SQSEnv, caplog: pytest.LogCaptureFixture
) -> None:
    queue, dead = queue_with_dead_letters(sqs, "base", 2, visibility_timeout=60)
    queue.backoff_policy = ConstantBackoff(2)
    runs: dict[str, list[float]] = {name: [] for name in RAISED}
    good: list[int] = []
    lock = threading.Lock()

    @queue.processor("bad_job")
    def bad_job(raised: str) -> None:
        with lock:
            runs[raised].append(time.monotonic())
        raise RAISED[raised]("from the job")

    @queue.processor("good_job")
    def good_job(n: int) -> None:
        with lock:
            good.append(n)

    with queue.add_batch():
        for name in RAISED:
            bad_job.delay(raised=name)
        for n in range(5):
            good_job.delay(n=n)
    caplog.set_level(logging.INFO, logger="sqsw")
    # Idle for 5 s: a retry is back 2 s after its failure, plus up to a second or two of
    # the server's timer (LocalStack), and the run must not end before it.
    stats = queue.process_queue(
        shutdown_policy=IdleShutdown(5), wait_seconds=1, concurrency=1, handle_signals=False
    )
    # Each: two deliveries (maxReceiveCount 2), at least the backoff apart; then dead-lettered.
    for name, times in runs.items():
        assert len(times) == 2, (name, times)
        assert times[1] - times[0] >= 1.9, (name, times)
    assert sorted(good) == list(range(5))  # the job thread went on
    assert stats is not None and stats.failed == 6 and stats.succeeded == 5
    expect_counts(queue, (0, 0, 0), "after the run", dead)
    letters = receive_all(dead, expected=3, release=False)
    assert {m["MessageAttributes"]["JobName"]["StringValue"] for m in letters} == {"bad_job"}
    for name in RAISED:
        lines = [r.getMessage() for r in caplog.records if f"raised {name}" in r.getMessage()]
        assert len(lines) == 2, lines
        # Queue, job and message id in each line (the message is one of the dead letters).
        assert all("base" in line and "bad_job" in line for line in lines), lines
        assert all(any(m["MessageId"] in line for m in letters) for line in lines), lines


def test_process_batch_settles_then_lets_keyboard_interrupt_through(sqs: SQSEnv) -> None:
    queue, dead = queue_with_dead_letters(sqs, "ctrlc", 3, visibility_timeout=60)
    queue.backoff_policy = ConstantBackoff(30)
    ran: list[int] = []

    @queue.processor("job")
    def job(n: int) -> None:
        ran.append(n)
        if n == 2:
            raise KeyboardInterrupt  # Ctrl+C while the job runs

    with queue.add_batch():
        for n in range(5):
            job.delay(n=n)
    # One receive of all five (memory returns them in order; LocalStack may not).
    messages = queue.get_raw_messages(wait_seconds=1, max_messages=10)
    assert len(messages) == 5
    with pytest.raises(KeyboardInterrupt):
        queue.runner.process_messages(messages)
    interrupted_at = ran.index(2)
    never_ran = 5 - len(ran)
    assert never_ran == 4 - interrupted_at
    # Ran and succeeded: acked. The interrupted one: hidden for its 30 s backoff.
    # The rest: back at once, each received once so far.
    expect_counts(queue, (never_ran, 1, 0), "after Ctrl+C", dead)
    waiting = receive_all(queue, expected=never_ran, release=False)
    assert {int(m["Attributes"]["ApproximateReceiveCount"]) for m in waiting} <= {2}
    assert dead_letter_depth(dead) == 0


def test_a_failing_backoff_policy_leaves_the_message_to_its_visibility_timeout(
    sqs: SQSEnv, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def get_visibility_timeout(self, message: Any) -> int:
            raise RuntimeError("bug in the policy")

    queue, dead = queue_with_dead_letters(sqs, "policy", 3, visibility_timeout=4)
    queue.backoff_policy = Broken()

    @queue.processor("job")
    def job() -> None:
        raise ValueError("fails")

    job.delay()
    caplog.set_level(logging.INFO, logger="sqsw")
    result = queue.process_batch(wait_seconds=1)
    assert result.failed_count() == 1
    assert any("Backoff policy" in r.getMessage() for r in caplog.records)
    # Not visible at once (that would be a hot loop), but after its visibility timeout.
    expect_counts(queue, (0, 1, 0), "right after the failure", dead)
    slack = 0.5 if on_memory(sqs) else 2.0
    time.sleep(4 + slack)
    expect_counts(queue, (1, 0, 0), "after the visibility timeout", dead)
