"""The concurrent engine behind process_queue: concurrency, heartbeat, stops, FIFO."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sqsw_core import (
    RetryJob,
    SQSEnv,
    create_fifo_queue,
    create_standard_queue,
    get_queue_attributes,
)
from sqsw_core.backoff_policies import ConstantBackoff
from sqsw_core.engine import QueueEngine
from sqsw_core.shutdown_policies import IdleShutdown, MaxTasksShutdown
from tests.helpers import (
    InterceptedClient,
    dead_letter_depth,
    expect_counts,
    queue_with_dead_letters,
    receive_all,
)


def in_queue(env: SQSEnv, name: str) -> int:
    attributes = get_queue_attributes(env, name)
    return sum(
        int(attributes[key])
        for key in (
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        )
    )


def run_in_thread(engine: QueueEngine) -> threading.Thread:
    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    return thread


def test_many_jobs_each_run_once_and_all_are_acked(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "jobs")
    queue = sqs.queue("jobs")
    ran: Counter[int] = Counter()
    lock = threading.Lock()

    @queue.processor("job")
    def job(n: int) -> None:
        with lock:
            ran[n] += 1

    with queue.add_batch():
        for n in range(300):
            job.delay(n=n)
    stats = queue.process_queue(IdleShutdown(1), wait_seconds=1, concurrency=8)
    assert ran == Counter(range(300))
    assert (stats.succeeded, stats.failed, stats.released) == (300, 0, 0)
    assert in_queue(sqs, "jobs") == 0


def test_in_flight_counts_received_messages_not_settled_yet(sqs: SQSEnv) -> None:
    """``stats.in_flight`` is what the worker holds (received, not settled): 0 once every
    job is done, not the room the pollers keep for their next receives."""
    create_standard_queue(sqs, "jobs")
    queue = sqs.queue("jobs")
    seen_while_running: list[int] = []

    @queue.processor("job")
    def job(n: int) -> None:
        seen_while_running.append(queue.engine.stats.in_flight)

    with queue.add_batch():
        for n in range(30):
            job.delay(n=n)
    after_last_job: list[int] = []

    def sample_when_done() -> None:
        while len(seen_while_running) < 30:
            time.sleep(0.01)
        time.sleep(0.5)  # the last acks and counts are in; the engine idles 1.5 s
        after_last_job.append(queue.engine.stats.in_flight)

    sampler = threading.Thread(target=sample_when_done)
    sampler.start()
    stats = queue.process_queue(IdleShutdown(1.5), wait_seconds=1, concurrency=4)
    sampler.join()
    assert stats.succeeded == 30
    assert 1 <= max(seen_while_running) <= 30
    assert after_last_job == [0]
    assert stats.in_flight == 0
    assert in_queue(sqs, "jobs") == 0


def test_a_job_longer_than_the_visibility_timeout_runs_once(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "slow", visibility_timeout=2)
    queue = sqs.queue("slow")
    runs: list[float] = []

    @queue.processor("slow")
    def slow() -> None:
        runs.append(time.monotonic())
        time.sleep(6)  # three visibility timeouts

    slow.delay()
    stats = queue.process_queue(IdleShutdown(1), wait_seconds=1, concurrency=4)
    assert len(runs) == 1
    assert stats.extended >= 2
    assert in_queue(sqs, "slow") == 0


def test_a_failing_job_is_retried_after_the_backoff_delay(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "flaky")
    queue = sqs.queue("flaky", backoff_policy=ConstantBackoff(2))
    attempts: list[float] = []

    @queue.processor("flaky")
    def flaky() -> None:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")

    flaky.delay()
    queue.process_queue(IdleShutdown(4), wait_seconds=1, concurrency=2)
    assert len(attempts) == 2
    assert 1.5 <= attempts[1] - attempts[0] <= 6


def test_sleeping_jobs_run_concurrency_at_a_time(sqs: SQSEnv) -> None:
    """As many jobs run at once as ``concurrency`` allows, never more.

    The speed-up itself is measured by ``benchmarks/engine_concurrency.py``.
    """
    create_standard_queue(sqs, "io")
    queue = sqs.queue("io")
    lock = threading.Lock()
    running = 0
    most = 0
    ran: Counter[int] = Counter()

    @queue.processor("io")
    def io(n: int) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.2)
        with lock:
            running -= 1
            ran[n] += 1

    for concurrency, jobs in ((1, 4), (10, 40)):
        ran.clear()
        most = 0
        with queue.add_batch():
            for n in range(jobs):
                io.delay(n=n)
        stats = queue.process_queue(MaxTasksShutdown(jobs), wait_seconds=1, concurrency=concurrency)
        assert stats is not None
        assert ran == Counter(range(jobs))
        assert most == concurrency, (concurrency, most)


def test_warm_stop_finishes_running_jobs_and_releases_prefetched_at_once(sqs: SQSEnv) -> None:
    # maxReceiveCount 2: a prefetched message may be received once by the stopped
    # worker and once by the look below; a third receive would dead-letter it.
    queue, dead = queue_with_dead_letters(sqs, "stop", 2, visibility_timeout=60)
    started = threading.Event()
    finished: list[int] = []

    @queue.processor("job")
    def job(n: int) -> None:
        started.set()
        time.sleep(1)
        finished.append(n)

    with queue.add_batch():
        for n in range(20):
            job.delay(n=n)
    engine = QueueEngine(queue, concurrency=2, prefetch=10, wait_seconds=1)
    thread = run_in_thread(engine)
    assert started.wait(10)
    engine.request_stop()
    thread.join(30)
    assert not thread.is_alive()
    assert len(finished) == engine.stats.succeeded >= 1  # what had started finished
    # Right after the stop: nothing in flight (the released messages are
    # receivable now, not after the 60 s visibility timeout), none dead-lettered.
    left = 20 - len(finished)
    expect_counts(queue, (left, 0, 0), dead=dead)
    assert dead_letter_depth(dead) == 0
    # Nothing ran twice, nothing is lost, and no message that waited was
    # received more than once (the stop's own receive).
    waiting = receive_all(queue, expected=left, release=False)
    assert sorted(finished + [json.loads(m["Body"])["n"] for m in waiting]) == list(range(20))
    receives = sorted(int(m["Attributes"]["ApproximateReceiveCount"]) - 1 for m in waiting)
    assert max(receives, default=0) <= 1, f"receives before the look: {receives}"
    assert dead_letter_depth(dead) == 0


def test_cold_stop_releases_running_jobs(sqs: SQSEnv) -> None:
    queue, dead = queue_with_dead_letters(sqs, "cold", 2, visibility_timeout=60)
    started = threading.Event()

    @queue.processor("job")
    def job() -> None:
        started.set()
        time.sleep(30)

    job.delay()
    engine = QueueEngine(queue, concurrency=1, wait_seconds=1)
    thread = run_in_thread(engine)
    assert started.wait(10)
    # The queue is empty now: the pollers are in a long poll when the stop comes.
    engine.request_stop(cold=True)  # as a second signal does
    thread.join(10)
    assert not thread.is_alive()
    # Released once, and not received again by a poll that was in flight:
    # nothing is left in flight, the job is receivable at once.
    assert engine.stats.released == 1
    expect_counts(queue, (1, 0, 0), dead=dead)
    [message] = receive_all(queue, expected=1, release=False)
    assert message["MessageAttributes"]["JobName"]["StringValue"] == "job"
    assert message["Attributes"]["ApproximateReceiveCount"] == "2"  # its run, this look
    assert dead_letter_depth(dead) == 0


def test_fifo_order_holds_with_many_threads(sqs: SQSEnv) -> None:
    create_fifo_queue(sqs, "ordered.fifo", content_based_deduplication=True)
    queue = sqs.queue("ordered.fifo")
    seen: dict[str, list[int]] = {"a": [], "b": [], "c": []}

    @queue.processor("job")
    def job(group: str, n: int) -> None:
        time.sleep(0.01)
        seen[group].append(n)

    with queue.add_batch():
        for n in range(15):
            for group in seen:
                job.delay(group=group, n=n, _group_id=group)
    queue.process_queue(IdleShutdown(1), wait_seconds=1, concurrency=8)
    assert seen == {group: list(range(15)) for group in seen}


def test_fifo_group_stops_at_a_failure_and_keeps_its_order(sqs: SQSEnv) -> None:
    create_fifo_queue(sqs, "strict.fifo", content_based_deduplication=True)
    queue = sqs.queue("strict.fifo", backoff_policy=ConstantBackoff(1))
    order: list[int] = []
    failed_once: set[int] = set()

    @queue.processor("job")
    def job(n: int) -> None:
        if n == 2 and n not in failed_once:
            failed_once.add(n)
            raise RuntimeError("fail once")
        order.append(n)

    with queue.add_batch():
        for n in range(6):
            job.delay(n=n)
    queue.process_queue(IdleShutdown(3), wait_seconds=1, concurrency=4)
    assert order == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("bad", [0, -1])
def test_concurrency_must_be_positive(sqs: SQSEnv, bad: int) -> None:
    with pytest.raises(ValueError, match="concurrency"):
        QueueEngine(sqs.queue("x"), concurrency=bad)


def test_sigterm_during_500_jobs_loses_none_and_runs_none_twice(sqs: SQSEnv) -> None:
    """A real SIGTERM to this process: warm stop; what did not run waits, received once."""
    import os
    import signal

    queue, dead = queue_with_dead_letters(sqs, "term", 2, visibility_timeout=60)
    runs: Counter[int] = Counter()
    lock = threading.Lock()

    @queue.processor("job")
    def job(n: int) -> None:
        time.sleep(0.005)
        with lock:
            runs[n] += 1
            if sum(runs.values()) == 100:
                threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGTERM)).start()

    with queue.add_batch():
        for n in range(500):
            job.delay(n=n)
    previous = signal.getsignal(signal.SIGTERM)
    first = queue.process_queue(wait_seconds=1, concurrency=8)  # NeverShutdown: only the signal
    assert first is not None
    assert 100 <= first.succeeded < 500
    assert max(runs.values()) == 1
    assert signal.getsignal(signal.SIGTERM) == previous  # the engine put the handler back
    # Right after the stop: nothing in flight, none dead-lettered; the rest is
    # receivable now (not after the 60 s visibility timeout), each received at
    # most once before (by the stopped worker's prefetch).
    left = 500 - len(runs)
    expect_counts(queue, (left, 0, 0), dead=dead)
    assert dead_letter_depth(dead) == 0
    waiting = receive_all(queue, expected=left, release=False)
    assert sorted([*runs, *(json.loads(m["Body"])["n"] for m in waiting)]) == list(range(500))
    receives = Counter(int(m["Attributes"]["ApproximateReceiveCount"]) - 1 for m in waiting)
    assert max(receives) <= 1, f"receives before the look: count -> messages {dict(receives)}"
    assert dead_letter_depth(dead) == 0
    expect_counts(queue, (0, 0, 0), dead=dead)


def test_processors_can_read_the_engine_counters(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "count")
    queue = sqs.queue("count")
    seen: list[int] = []

    @queue.processor("job")
    def job() -> None:
        assert queue.engine is not None
        seen.append(queue.engine.stats.received)

    for _ in range(3):
        job.delay()
    stats = queue.process_queue(IdleShutdown(1), wait_seconds=1, concurrency=1)
    assert seen
    assert all(1 <= n <= 3 for n in seen)
    assert stats is not None
    assert stats.succeeded == 3
    assert queue.engine is None


class SlowFailingDeletes(InterceptedClient):
    """Every DeleteMessageBatch takes 50 ms and is refused, so acker flushes overlap."""

    def intercept(self, operation: str, target: Any, params: dict[str, Any]) -> Any:
        if operation == "DeleteMessageBatch":
            time.sleep(0.05)
            error = {"Error": {"Code": "AccessDenied", "Message": "injected: no sqs:DeleteMessage"}}
            raise ClientError(error, operation)  # type: ignore[arg-type]
        return target(**params)


def test_every_failed_ack_is_counted_when_flushes_overlap(
    session: Any, make_env: Callable[..., SQSEnv]
) -> None:
    setup = make_env()
    create_standard_queue(setup, "denied", visibility_timeout=60)
    env = make_env(sqs_client=SlowFailingDeletes(session.client("sqs")))
    queue = env.queue("denied")

    @queue.processor("job")
    def job(n: int) -> None:
        pass

    with queue.add_batch():
        for n in range(40):
            job.delay(n=n)
    stats = queue.process_queue(MaxTasksShutdown(40), wait_seconds=1, concurrency=8)
    assert stats is not None
    assert stats.succeeded == 40
    # All four refused batches are counted, and no message was deleted.
    assert stats.failed_acks == 40
    assert in_queue(setup, "denied") == 40


def test_counters_tell_failures_retries_and_redeliveries_apart(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "counted")
    queue = sqs.queue("counted", "job", backoff_policy=ConstantBackoff(0))
    seen: Counter[str] = Counter()

    @queue.processor("job")
    def job(kind: str) -> None:
        seen[kind] += 1
        if seen[kind] == 1 and kind == "fails":
            raise RuntimeError("first run fails")
        if seen[kind] == 1 and kind == "asks":
            raise RetryJob()

    with queue.add_batch():
        for kind in ("fails", "asks", "fine", "fine2"):
            job.delay(kind=kind)
    stats = queue.process_queue(IdleShutdown(1), wait_seconds=1, concurrency=2)
    assert stats is not None
    assert seen == {"fails": 2, "asks": 2, "fine": 1, "fine2": 1}
    assert (stats.received, stats.redelivered) == (6, 2)
    assert (stats.succeeded, stats.failed, stats.retried) == (4, 1, 1)
    assert "redelivered=2" in str(stats) and "retried=1" in str(stats)
