"""The app of tests/test_health_metrics.py, for ``sqsw run --app tests.apps.metrics_app:sqs``.

Queue ``metered`` (prefix and session from the command line, or the in-memory
SQS with ``APP_MEMORY=1``). Each job's first run of a number leaves a marker
file in ``APP_DIR``, so "the first time" holds across worker processes:

- ``ok(n, seconds=0)`` sleeps, notes its process (``ok-by-PID-n``) and succeeds;
- ``flaky(n)`` raises the first time, then succeeds;
- ``later(n)`` raises ``RetryJob`` the first time, then succeeds;
- ``tally(jobs)``, a bulk processor, reports the jobs it sees for the first
  time with an odd ``n`` as failed;
- ``lookup(name)`` asks SQS for the URL of a queue that does not exist (one
  failed SQS call), then succeeds;
- queue ``other``: ``ok(n)`` succeeds (``APP_OTHER`` of them with ``APP_MEMORY=1``);
- ``hold(n)`` leaves ``holding-n``, then waits until the file ``APP_DIR/release``
  exists (at most 30 s).

With ``APP_MEMORY=1`` the app makes the queue itself and enqueues ``APP_SEED``
(``ok,flaky,later,tally,lookup[,hold]`` counts, see :func:`enqueue`), as a test
process cannot reach another process's in-memory queues.
"""

from __future__ import annotations

import os
import time
from typing import Any

from sqsw_core import QueueNotFoundError, RetryJob, SQSEnv, create_standard_queue


def first_time(kind: str, n: int) -> bool:
    """True the first time any worker process asks for ``(kind, n)``."""
    try:
        os.close(
            os.open(os.path.join(os.environ["APP_DIR"], f"{kind}-{n}"), os.O_CREAT | os.O_EXCL)
        )
    except FileExistsError:
        return False
    return True


sqs = SQSEnv(session="memory") if os.environ.get("APP_MEMORY") else SQSEnv()
metered = sqs.queue("metered")
other = sqs.queue("other")


@metered.processor("ok")
def ok(n: int, seconds: float = 0) -> None:
    first_time(f"ok-by-{os.getpid()}", n)  # which processes ran jobs
    time.sleep(seconds)


@other.processor("ok")
def other_ok(n: int) -> None:
    pass


@metered.processor("flaky")
def flaky(n: int) -> None:
    if first_time("flaky", n):
        raise RuntimeError(f"flaky job {n} fails once")


@metered.processor("later")
def later(n: int) -> None:
    if first_time("later", n):
        raise RetryJob()


@metered.bulk_processor("tally", max_jobs=10, max_wait=0.2)
def tally(jobs: list[dict[str, Any]]) -> list[int]:
    return [i for i, job in enumerate(jobs) if job["n"] % 2 and first_time("tally", job["n"])]


@metered.processor("lookup")
def lookup(name: str) -> None:
    try:
        sqs.get_queue_url(name)
    except QueueNotFoundError:
        pass


@metered.processor("hold")
def hold(n: int) -> None:
    first_time("holding", n)
    deadline = time.monotonic() + 30
    while not os.path.exists(os.path.join(os.environ["APP_DIR"], "release")):
        if time.monotonic() > deadline:
            raise RuntimeError("not released")
        time.sleep(0.05)


def enqueue(
    queue: Any,
    ok: int,
    flaky: int = 0,
    later: int = 0,
    tally: int = 0,
    lookup: int = 0,
    hold: int = 0,
    seconds: float = 0,
) -> None:
    """Jobs for a run, numbered from 0 within each job (``seconds``: of each ``ok`` job)."""
    with queue.add_batch():
        for n in range(ok):
            queue.add_job("ok", n=n, seconds=seconds)
        for n in range(flaky):
            queue.add_job("flaky", n=n)
        for n in range(later):
            queue.add_job("later", n=n)
        for n in range(tally):
            queue.add_job("tally", n=n)
        for n in range(lookup):
            queue.add_job("lookup", name=f"missing{n}")
        for n in range(hold):
            queue.add_job("hold", n=n)


if os.environ.get("APP_MEMORY"):
    create_standard_queue(sqs, "metered")
    create_standard_queue(sqs, "other")
    with other.add_batch():
        for n in range(int(os.environ.get("APP_OTHER", "0"))):
            other.add_job("ok", n=n)
    counts = [int(c) for c in os.environ.get("APP_SEED", "0,0,0,0,0").split(",")]
    enqueue(metered, *counts)
