"""The concurrent engine behind process_queue: concurrency, heartbeat, stops, FIFO."""

from __future__ import annotations

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
from tests.helpers import InterceptedClient


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


def test_throughput_scales_with_concurrency_for_sleeping_jobs(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "io")
    queue = sqs.queue("io")

    @queue.processor("io")
    def io() -> None:
        time.sleep(0.2)

    def timed(concurrency: int, jobs: int) -> float:
        with queue.add_batch():
            for _ in range(jobs):
                io.delay()
        started = time.monotonic()
        queue.process_queue(MaxTasksShutdown(jobs), wait_seconds=1, concurrency=concurrency)
        return time.monotonic() - started

    serial = timed(1, 10)  # ~2 s
    parallel = timed(20, 40)  # 4x the work; ~0.4 s of sleeping with 20 threads
    assert parallel < serial, (serial, parallel)


def test_warm_stop_finishes_running_jobs_and_releases_prefetched_at_once(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "stop", visibility_timeout=60)
    queue = sqs.queue("stop")
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
    # Nothing ran twice, nothing is lost, and the released messages are
    # receivable now, not after the 60 s visibility timeout.
    left = 20 - len(finished)
    assert in_queue(sqs, "stop") == left
    got: list[Any] = []
    deadline = time.monotonic() + 5
    while len(got) < left and time.monotonic() < deadline:
        got += queue.get_raw_messages(wait_seconds=1, max_messages=10)
    assert len(got) == left
    assert sorted(finished + [sqs.decode_job(m)[0]["n"] for m in got]) == list(range(20))


def test_cold_stop_releases_running_jobs(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "cold", visibility_timeout=60)
    queue = sqs.queue("cold")
    started = threading.Event()

    @queue.processor("job")
    def job() -> None:
        started.set()
        time.sleep(30)

    job.delay()
    engine = QueueEngine(queue, concurrency=1, wait_seconds=1)
    thread = run_in_thread(engine)
    assert started.wait(10)
    engine.request_stop()
    engine.request_stop()  # a second signal: cold
    thread.join(10)
    assert not thread.is_alive()
    assert engine.stats.released >= 1  # a poll in flight may catch it once more
    assert [m.job_name for m in queue.get_raw_messages(wait_seconds=2)] == ["job"]


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
    """A real SIGTERM to this process: warm stop, then a second worker finishes."""
    import os
    import signal

    create_standard_queue(sqs, "term", visibility_timeout=60)
    queue = sqs.queue("term")
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
    assert 100 <= first.succeeded < 500
    assert max(runs.values()) == 1
    assert signal.getsignal(signal.SIGTERM) == previous  # the engine put the handler back
    # Released messages are visible now, not after the 60 s visibility timeout.
    started = time.monotonic()
    queue.process_queue(IdleShutdown(1), wait_seconds=1, concurrency=8)
    assert time.monotonic() - started < 30
    assert runs == Counter(range(500))
    assert in_queue(sqs, "term") == 0


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
