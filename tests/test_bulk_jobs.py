"""Bulk processors: many jobs in one call, per-job failures retried alone."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest

from sqsw_core import (
    IMMEDIATE_RETURN,
    BulkJobsFailed,
    ConfigurationError,
    SQSEnv,
    create_fifo_queue,
    create_standard_queue,
)
from sqsw_core.shutdown_policies import IdleShutdown, MaxTasksShutdown
from tests.helpers import expect_counts, on_memory


@pytest.fixture
def queue(sqs: SQSEnv) -> Any:
    create_standard_queue(sqs, "docs")
    return sqs.queue("docs", backoff_policy=IMMEDIATE_RETURN)


def test_jobs_are_gathered_across_receives_into_batches(queue: Any) -> None:
    calls: list[list[int]] = []
    lock = threading.Lock()

    @queue.bulk_processor("index", max_jobs=25, max_wait=2)
    def index(jobs: list[dict[str, Any]]) -> None:
        with lock:
            calls.append([job["n"] for job in jobs])

    with queue.add_batch():
        for n in range(25):
            index.delay(n=n)
    stats = queue.process_queue(IdleShutdown(1), wait_seconds=1, concurrency=4)
    assert [sorted(c) for c in calls] == [list(range(25))]  # one call: 3 receives gathered
    assert stats.succeeded == 25


def test_a_partial_batch_runs_after_max_wait(queue: Any) -> None:
    calls: list[tuple[float, int]] = []

    @queue.bulk_processor("index", max_jobs=100, max_wait=0.5)
    def index(jobs: list[dict[str, Any]]) -> None:
        calls.append((time.monotonic(), len(jobs)))

    index.delay(n=1)
    index.delay(n=2)
    queue.process_queue(IdleShutdown(1.5), wait_seconds=1, concurrency=2)
    assert sum(size for _, size in calls) == 2


def test_one_job_thread_runs_a_partial_batch_while_the_queue_is_empty(queue: Any) -> None:
    """concurrency=1: a bulk job still being gathered runs after max_wait, not after the
    next long poll (on the in-memory SQS the job thread is also the poller: it must not
    sit in a 20 s receive while the batch waits)."""
    calls: list[list[int]] = []

    @queue.bulk_processor("index", max_jobs=100, max_wait=0.3)
    def index(jobs: list[dict[str, Any]]) -> None:
        calls.append(sorted(job["n"] for job in jobs))

    for n in range(3):
        index.delay(n=n)
    # On SQS the pollers' own long polls would hold up the stop after the 3 jobs.
    wait = 20 if on_memory(queue.env) else 1
    started = time.monotonic()
    stats = queue.process_queue(
        MaxTasksShutdown(3), wait_seconds=wait, concurrency=1, handle_signals=False
    )
    took = time.monotonic() - started
    assert calls == [[0, 1, 2]]
    assert stats.succeeded == 3
    assert took < 10, f"the gathered batch waited {took:.1f} s (a long poll's 20 s?)"
    expect_counts(queue, (0, 0, 0), "after the run")


def test_only_the_failed_jobs_of_a_batch_are_retried(queue: Any) -> None:
    runs: Counter[int] = Counter()

    @queue.bulk_processor("index", max_jobs=10, max_wait=0.3)
    def index(jobs: list[dict[str, Any]]) -> list[int]:
        failed = []
        for i, job in enumerate(jobs):
            runs[job["n"]] += 1
            if job["n"] % 4 == 0 and runs[job["n"]] == 1:
                failed.append(i)
        return failed

    with queue.add_batch():
        for n in range(10):
            index.delay(n=n)
    stats = queue.process_queue(IdleShutdown(1.5), wait_seconds=1, concurrency=2)
    assert runs == Counter({n: 2 if n % 4 == 0 else 1 for n in range(10)})
    assert (stats.succeeded, stats.failed) == (10, 3)


def test_batch_jobs_failed_and_whole_batch_failures(queue: Any) -> None:
    attempts: list[list[int]] = []

    @queue.bulk_processor("index", max_jobs=5, max_wait=0.3)
    def index(jobs: list[dict[str, Any]]) -> None:
        attempts.append(sorted(job["n"] for job in jobs))
        if len(attempts) == 1:
            raise RuntimeError("search cluster down")  # every job of the call fails
        if len(attempts) == 2:
            raise BulkJobsFailed({0: ValueError("bad document")})

    with queue.add_batch():
        for n in range(5):
            index.delay(n=n)
    queue.process_queue(IdleShutdown(1.5), wait_seconds=1, concurrency=1)
    assert sorted(attempts[0]) == [0, 1, 2, 3, 4]
    assert sorted(attempts[1]) == [0, 1, 2, 3, 4]
    assert len(attempts[2]) == 1  # only the job at index 0 of the second call


def test_process_batch_groups_batch_jobs_and_undecodable_fail_alone(
    sqs: SQSEnv, queue: Any
) -> None:
    got: list[list[int]] = []
    singles: list[int] = []

    @queue.bulk_processor("index", max_jobs=10)
    def index(jobs: list[dict[str, Any]]) -> None:
        got.append(sorted(job["n"] for job in jobs))

    @queue.processor("single")
    def single(n: int) -> None:
        singles.append(n)

    with queue.add_batch():
        for n in range(3):
            index.delay(n=n)
        single.delay(n=9)
        queue.add_raw_job("index", "{broken", "{}", "json")
    result = queue.process_batch(wait_seconds=2)
    deadline = time.monotonic() + 15
    while result.total_count() < 5:
        assert time.monotonic() < deadline, f"{result.total_count()} of 5 jobs after 15 s"
        more = queue.process_batch(wait_seconds=1)
        result.succeeded += more.succeeded
        result.failed += more.failed
    assert sorted(n for batch in got for n in batch) == [0, 1, 2]
    assert singles == [9]
    assert (result.succeeded_count(), result.failed_count()) == (4, 1)


def test_bulk_processors_are_refused_on_fifo_queues(sqs: SQSEnv) -> None:
    create_fifo_queue(sqs, "ordered.fifo", content_based_deduplication=True)
    with pytest.raises(ConfigurationError, match="FIFO"):
        sqs.queue("ordered.fifo").bulk_processor("index")
