"""A queue deleted under a running worker ends the worker, after a bounded number of
receives, with one clear error (exit 5 from ``sqsw run``), not a traceback a second."""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from pathlib import Path

import pytest

from sqsw_core import SQSEnv, create_standard_queue
from sqsw_core.cli.common import EXIT_SQS
from sqsw_core.engine import MISSING_QUEUE_ATTEMPTS, RECEIVE_RETRY_DELAYS
from sqsw_core.exceptions import QueueNotFoundError
from tests.test_cli import emails_app, variables

#: The longest the engine can take to give up: its waits between receives, each
#: receive's own wait (1 s), and a LocalStack tick.
GIVE_UP_WITHIN = (
    sum(RECEIVE_RETRY_DELAYS[: MISSING_QUEUE_ATTEMPTS - 1]) + MISSING_QUEUE_ATTEMPTS + 5
)


def test_worker_ends_with_queue_not_found(sqs: SQSEnv, caplog: pytest.LogCaptureFixture) -> None:
    create_standard_queue(sqs, "doomed")
    queue = sqs.queue("doomed")
    ran = threading.Event()

    @queue.processor("job")
    def job() -> None:
        ran.set()

    job.delay()
    url = queue.url

    def delete_after_the_job() -> None:
        ran.wait(30)
        time.sleep(0.3)  # its ack goes out first
        sqs.sqs_client.delete_queue(QueueUrl=url)

    deleter = threading.Thread(target=delete_after_the_job)
    deleter.start()
    caplog.set_level(logging.INFO, logger="sqsw")
    started = time.monotonic()
    with pytest.raises(QueueNotFoundError, match="does not exist"):
        queue.process_queue(wait_seconds=1)
    took = time.monotonic() - started
    deleter.join()
    assert ran.is_set()
    assert took < GIVE_UP_WITHIN, took
    gone = [r for r in caplog.records if "does not exist" in r.getMessage()]
    # One line per attempt, then the one that gives up; tracebacks none.
    assert MISSING_QUEUE_ATTEMPTS - 1 <= len(gone) <= MISSING_QUEUE_ATTEMPTS + 1, [
        r.getMessage() for r in gone
    ]
    assert not [r for r in caplog.records if r.exc_info and r.name.startswith("sqsw")]
    assert any("no longer exists" in r.getMessage() for r in caplog.records)


def test_sqsw_run_exits_5_when_its_queue_is_deleted(
    ls_env: SQSEnv, endpoint: str, tmp_path: Path
) -> None:
    log, command = emails_app(ls_env, tmp_path, jobs=3)
    process = subprocess.Popen(
        [*command, "emails"],
        cwd=tmp_path,
        env=variables(endpoint, APP_LOG=str(log)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (log.exists() and len(log.read_text().splitlines()) == 3):
            assert time.monotonic() < deadline, "the jobs did not run"
            assert process.poll() is None
            time.sleep(0.1)
        ls_env.sqs_client.delete_queue(QueueUrl=ls_env.queue("emails").url)
        _, stderr = process.communicate(timeout=GIVE_UP_WITHIN + 10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == EXIT_SQS, stderr
    assert "Traceback" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert "does not exist" in last and "emails" in last, stderr
