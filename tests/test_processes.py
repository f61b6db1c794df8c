"""Worker processes killed, stopped and supervised, on a real SQS server (LocalStack).

Separate processes cannot share the in-memory session, so these run on
LocalStack only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sqsw_core import AWSSession, ConfigurationError, SQSEnv, create_standard_queue
from tests.localstack_server import REGION, SKIP_REASON, localstack_endpoint

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def endpoint() -> str:
    found = localstack_endpoint()
    if found is None:
        pytest.skip(SKIP_REASON)
    return found


@pytest.fixture
def env(endpoint: str) -> Iterator[SQSEnv]:
    session = AWSSession(
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    sqs = SQSEnv(session, queue_prefix=f"p{uuid.uuid4().hex[:8]}_")
    yield sqs
    for name in sqs.get_all_known_queues():
        sqs.sqs_client.delete_queue(QueueUrl=sqs.get_queue_url(name))


def start_worker(env: SQSEnv, endpoint: str, log: Path, **settings: Any) -> subprocess.Popen[str]:
    variables = {
        **os.environ,
        "SQSW_TEST_ENDPOINT": endpoint,
        "APP_PREFIX": env.queue_prefix,
        "APP_QUEUE": "work",
        "APP_LOG": str(log),
    }
    variables.update({f"APP_{key.upper()}": str(value) for key, value in settings.items()})
    return subprocess.Popen(
        [sys.executable, "-m", "tests.apps.worker_app"],
        cwd=REPO,
        env=variables,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def runs(log: Path) -> Counter[int]:
    if not log.exists():
        return Counter()
    return Counter(int(line.split()[0]) for line in log.read_text().splitlines())


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


def test_sigkill_loses_nothing_localstack(env: SQSEnv, endpoint: str, tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    enqueue(env, 200, visibility_timeout=2)
    first = start_worker(env, endpoint, log, sleep=0.02, concurrency=8)
    wait_for(lambda: sum(runs(log).values()) >= 50, 60)
    first.kill()
    first.wait(10)
    killed_after = sum(runs(log).values())
    assert killed_after < 200

    second = start_worker(env, endpoint, log, sleep=0.02, concurrency=8, idle=4)
    output, _ = second.communicate(timeout=120)
    assert second.returncode == 0, output
    counts = runs(log)
    assert set(counts) == set(range(200))  # every job ran at least once
    duplicates = sum(counts.values()) - 200
    print(f"SIGKILL after {killed_after} jobs: lost 0, duplicates {duplicates}")
    assert duplicates <= 8 + 40  # at most what the killed worker held


def test_sigterm_warm_stop_releases_and_exits_zero_localstack(
    env: SQSEnv, endpoint: str, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    enqueue(env, 300, visibility_timeout=60)
    worker = start_worker(env, endpoint, log, sleep=0.05, concurrency=4)
    wait_for(lambda: sum(runs(log).values()) >= 20, 60)
    stopped_at = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    output, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0, output
    assert time.monotonic() - stopped_at < 10
    assert "SIGTERM received: warm stop" in output
    done = runs(log)
    assert max(done.values()) == 1
    # The prefetched messages came back at once, not after the 60 s timeout.
    rest = start_worker(env, endpoint, log, sleep=0, concurrency=8, idle=3)
    output, _ = rest.communicate(timeout=60)
    assert rest.returncode == 0, output
    assert runs(log) == Counter(range(300))


def test_supervisor_runs_workers_forwards_sigterm_and_restarts_crashes_localstack(
    env: SQSEnv, endpoint: str, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    enqueue(env, 120, visibility_timeout=3)
    supervisor = start_worker(env, endpoint, log, sleep=0.02, concurrency=4, workers=2, crash_on=7)
    wait_for(lambda: len(runs(log)) == 120, 90)
    supervisor.send_signal(signal.SIGTERM)
    output, _ = supervisor.communicate(timeout=60)
    assert supervisor.returncode == 0, output
    counts = runs(log)
    assert set(counts) == set(range(120))
    assert len({line.split()[1] for line in log.read_text().splitlines()}) >= 2  # processes
    assert "exited with 3; restarting" in output
    assert output.count("SIGTERM received: warm stop") >= 2  # both children stopped warm


def test_workers_refused_on_the_memory_session() -> None:
    sqs = SQSEnv("memory")
    with pytest.raises(ConfigurationError, match="use concurrency="):
        sqs.queue("q").process_queue(workers=2)
