"""Worker processes killed, stopped and supervised, on a real SQS server (LocalStack).

Separate processes cannot share the in-memory session, so these run on
LocalStack only.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sqsw_core import ConfigurationError, SQSEnv, create_standard_queue
from tests.helpers import runs_in, start_worker_process

REPO = Path(__file__).resolve().parent.parent


def wait_for(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def enqueue(env: SQSEnv, jobs: int, visibility_timeout: int = 30) -> None:
    create_standard_queue(env, "work", visibility_timeout=visibility_timeout)
    queue = env.queue("work")
    with queue.add_batch():
        for n in range(jobs):
            queue.add_job("job", n=n)


def test_sigkill_loses_nothing_localstack(ls_env: SQSEnv, endpoint: str, tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    enqueue(ls_env, 200, visibility_timeout=2)
    first = start_worker_process(
        ls_env, endpoint, log, capture_output=True, sleep=0.02, concurrency=8
    )
    wait_for(lambda: sum(runs_in(log).values()) >= 50, 60)
    first.kill()
    first.wait(10)
    killed_after = sum(runs_in(log).values())
    assert killed_after < 200

    second = start_worker_process(
        ls_env, endpoint, log, capture_output=True, sleep=0.02, concurrency=8, idle=4
    )
    output, _ = second.communicate(timeout=120)
    assert second.returncode == 0, output
    counts = runs_in(log)
    assert set(counts) == set(range(200))  # every job ran at least once
    duplicates = sum(counts.values()) - 200
    print(f"SIGKILL after {killed_after} jobs: lost 0, duplicates {duplicates}")
    assert duplicates <= 8 + 40  # at most what the killed worker held


def test_sigterm_warm_stop_releases_and_exits_zero_localstack(
    ls_env: SQSEnv, endpoint: str, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    enqueue(ls_env, 300, visibility_timeout=60)
    worker = start_worker_process(
        ls_env, endpoint, log, capture_output=True, sleep=0.05, concurrency=4
    )
    wait_for(lambda: sum(runs_in(log).values()) >= 20, 60)
    stopped_at = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    output, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0, output
    assert time.monotonic() - stopped_at < 10
    assert "SIGTERM received: warm stop" in output
    done = runs_in(log)
    assert max(done.values()) == 1
    # The prefetched messages came back at once, not after the 60 s timeout.
    rest = start_worker_process(
        ls_env, endpoint, log, capture_output=True, sleep=0, concurrency=8, idle=3
    )
    output, _ = rest.communicate(timeout=60)
    assert rest.returncode == 0, output
    assert runs_in(log) == Counter(range(300))


def test_supervisor_runs_workers_forwards_sigterm_and_restarts_crashes_localstack(
    ls_env: SQSEnv, endpoint: str, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    enqueue(ls_env, 120, visibility_timeout=3)
    supervisor = start_worker_process(
        ls_env,
        endpoint,
        log,
        capture_output=True,
        sleep=0.02,
        concurrency=4,
        workers=2,
        crash_on=7,
    )
    wait_for(lambda: len(runs_in(log)) == 120, 90)
    supervisor.send_signal(signal.SIGTERM)
    output, _ = supervisor.communicate(timeout=60)
    assert supervisor.returncode == 0, output
    counts = runs_in(log)
    assert set(counts) == set(range(120))
    assert len({line.split()[1] for line in log.read_text().splitlines()}) >= 2  # processes
    assert "exited with 3; restarting" in output
    assert output.count("SIGTERM received: warm stop") >= 2  # both children stopped warm


def test_worker_processes_report_their_summed_counters_localstack(
    ls_env: SQSEnv, endpoint: str, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    enqueue(ls_env, 60)
    supervisor = start_worker_process(
        ls_env, endpoint, log, capture_output=True, sleep=0.01, concurrency=2, workers=2, idle=2
    )
    output, _ = supervisor.communicate(timeout=90)
    assert supervisor.returncode == 0, output
    counts = runs_in(log)
    assert counts == Counter(range(60))
    # process_queue(workers=2) returns the counters of both processes together.
    (totals,) = [line for line in output.splitlines() if "TOTALS" in line]
    assert "received=60 " in totals and "succeeded=60 " in totals, totals


def test_workers_refused_on_the_memory_session() -> None:
    sqs = SQSEnv("memory")
    with pytest.raises(ConfigurationError, match="use concurrency="):
        sqs.queue("q").process_queue(workers=2)
