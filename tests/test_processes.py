"""Worker processes killed, stopped and supervised, on a real SQS server (LocalStack).

Separate processes cannot share the in-memory session, so these run on
LocalStack only.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sqsw_core import ConfigurationError, JobQueue, SQSEnv
from tests.helpers import (
    dead_letter_depth,
    expect_counts,
    queue_counts,
    queue_with_dead_letters,
    receive_all,
    runs_in,
    start_worker_process,
    wait_until,
)

REPO = Path(__file__).resolve().parent.parent


def enqueue(
    env: SQSEnv, jobs: int, visibility_timeout: int = 30, max_receives: int = 2
) -> tuple[JobQueue, JobQueue]:
    """Queue ``work`` (redriving to ``work_dead`` after ``max_receives``) with jobs 0..jobs-1."""
    queue, dead = queue_with_dead_letters(
        env, "work", max_receives, visibility_timeout=visibility_timeout
    )
    with queue.add_batch():
        for n in range(jobs):
            queue.add_job("job", n=n)
    return queue, dead


def job_numbers(messages: list[dict[str, Any]]) -> list[int]:
    return sorted(json.loads(m["Body"])["n"] for m in messages)


def prior_receives(messages: list[dict[str, Any]]) -> Counter[int]:
    """Receives before the look that received ``messages`` -> how many messages."""
    return Counter(int(m["Attributes"]["ApproximateReceiveCount"]) - 1 for m in messages)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_sigkill_loses_nothing_localstack(
    ls_env: SQSEnv, endpoint: str, tmp_path: Path, kind: str
) -> None:
    """A SIGKILL may run again what the killed worker held, and nothing else (sync jobs
    on threads, or async def jobs in flight on the job loop)."""
    log = tmp_path / "runs.log"
    # maxReceiveCount 3: the killed worker's receive, the look below, the second worker's.
    queue, dead = enqueue(ls_env, 200, visibility_timeout=3, max_receives=3)
    # Async: 20 coroutines of 100 ms in flight, so the kill lands with jobs under way.
    options = {"async_": 1, "async_concurrency": 20, "sleep": 0.1} if kind == "async" else {}
    first = start_worker_process(
        ls_env, endpoint, log, capture_output=True, **{"sleep": 0.02, "concurrency": 8, **options}
    )
    wait_until(lambda: sum(runs_in(log).values()) >= 50, 60, "50 jobs")
    first.kill()
    first.wait(10)
    killed_after = runs_in(log)
    assert sum(killed_after.values()) < 200
    assert max(killed_after.values()) == 1
    # What the killed worker held comes back after the 3 s visibility timeout.
    wait_until(lambda: queue_counts(queue).in_flight == 0, 15, "held messages to come back")
    assert dead_letter_depth(dead) == 0
    waiting = receive_all(queue, release=True)
    held = prior_receives(waiting)
    assert set(held) <= {0, 1}, f"receives before the look -> messages: {dict(held)}"
    assert set(job_numbers(waiting)) | set(killed_after) == set(range(200))  # none lost

    second = start_worker_process(
        ls_env,
        endpoint,
        log,
        capture_output=True,
        **{"sleep": 0.02, "concurrency": 8, "idle": 2, **options},
    )
    output, _ = second.communicate(timeout=120)
    assert second.returncode == 0, output
    counts = runs_in(log)
    assert set(counts) == set(range(200))  # every job ran
    duplicates = sum(counts.values()) - 200
    # Only a job the killed worker had received can run twice (it may have run
    # without its ack reaching SQS).
    assert duplicates <= held[1], (duplicates, dict(held))
    assert all(counts[n] == 1 for n in set(range(200)) - set(killed_after)), "ran twice"
    expect_counts(queue, (0, 0, 0), "after the second worker", dead=dead)
    assert dead_letter_depth(dead) == 0


def test_sigterm_warm_stop_releases_and_exits_zero_localstack(
    ls_env: SQSEnv, endpoint: str, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    queue, dead = enqueue(ls_env, 300, visibility_timeout=60)
    worker = start_worker_process(
        ls_env, endpoint, log, capture_output=True, sleep=0.05, concurrency=4
    )
    wait_until(lambda: sum(runs_in(log).values()) >= 20, 60, "20 jobs")
    stopped_at = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    output, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0, output
    # Running jobs of 50 ms finish, a long poll of 1 s comes back: well within 10 s.
    assert time.monotonic() - stopped_at < 10
    assert "SIGTERM received: warm stop" in output
    done = runs_in(log)
    assert max(done.values()) == 1
    # Right after the exit: nothing in flight, nothing dead-lettered; the rest is
    # receivable now (not after the 60 s visibility timeout), each message
    # received at most once before (by the stopped worker's prefetch).
    left = 300 - len(done)
    expect_counts(queue, (left, 0, 0), "after the warm stop", dead=dead)
    assert dead_letter_depth(dead) == 0
    waiting = receive_all(queue, expected=left, release=False)
    assert sorted([*done, *job_numbers(waiting)]) == list(range(300))
    receives = prior_receives(waiting)
    assert set(receives) <= {0, 1}, f"receives before the look -> messages: {dict(receives)}"
    assert dead_letter_depth(dead) == 0


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_supervisor_runs_workers_forwards_sigterm_and_restarts_crashes_localstack(
    ls_env: SQSEnv, endpoint: str, tmp_path: Path, kind: str
) -> None:
    log = tmp_path / "runs.log"
    # maxReceiveCount 2: the crashed worker's receive, and the run by its sibling.
    queue, dead = enqueue(ls_env, 120, visibility_timeout=3, max_receives=2)
    supervisor = start_worker_process(
        ls_env,
        endpoint,
        log,
        capture_output=True,
        sleep=0.02,
        concurrency=4,
        workers=2,
        crash_on=7,
        async_=int(kind == "async"),
    )
    try:
        wait_until(lambda: len(runs_in(log)) == 120, 90, "every job to run")
    finally:
        if supervisor.poll() is None:
            supervisor.send_signal(signal.SIGTERM)
    output, _ = supervisor.communicate(timeout=60)
    assert supervisor.returncode == 0, output
    counts = runs_in(log)
    assert set(counts) == set(range(120))
    assert len({line.split()[1] for line in log.read_text().splitlines()}) >= 2  # processes
    assert re.search(r"exited with (code )?3; restarting", output), output
    assert output.count("SIGTERM received: warm stop") >= 2  # both children stopped warm
    # Right after the exit: nothing held, nothing dead-lettered, nothing left.
    expect_counts(queue, (0, 0, 0), "after the supervisor exited", dead=dead)
    assert dead_letter_depth(dead) == 0


def test_worker_processes_report_their_summed_counters_localstack(
    ls_env: SQSEnv, endpoint: str, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    queue, dead = enqueue(ls_env, 60)
    supervisor = start_worker_process(
        ls_env, endpoint, log, capture_output=True, sleep=0.01, concurrency=2, workers=2, idle=2
    )
    output, _ = supervisor.communicate(timeout=90)
    assert supervisor.returncode == 0, output
    counts = runs_in(log)
    assert counts == Counter(range(60))
    expect_counts(queue, (0, 0, 0), "after the workers exited", dead=dead)
    assert dead_letter_depth(dead) == 0
    # process_queue(workers=2) returns the counters of both processes together.
    (totals,) = [line for line in output.splitlines() if "TOTALS" in line]
    assert "received=60 " in totals and "succeeded=60 " in totals, totals


def test_workers_refused_on_the_memory_session() -> None:
    sqs = SQSEnv("memory")
    with pytest.raises(ConfigurationError, match="use concurrency="):
        sqs.queue("q").process_queue(workers=2)
