"""Jobs that log their receive count, and a worker process running them (tests/test_stops.py).

Run as ``python -m tests.apps.stop_app``. Environment: SQSW_TEST_ENDPOINT,
APP_PREFIX, APP_QUEUE, APP_LOG (see :func:`register_jobs`), APP_SLEEP (seconds
per job), APP_CONCURRENCY, APP_POLLERS, APP_PREFETCH, APP_WAIT_SECONDS, APP_GRACE_PERIOD,
APP_IDLE (idle seconds before stopping; 0 = run until signalled).

The same jobs run in-process on the in-memory session: the tests call
:func:`register_jobs` on a queue of an ``SQSEnv(processor=ReceiveCountProcessor)``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

from sqsw_core import JobQueue
from sqsw_core.processors import Processor
from sqsw_core.shutdown_policies import IdleShutdown, NeverShutdown, ShutdownPolicy
from tests.apps import app_env

_job = threading.local()


class ReceiveCountProcessor(Processor):
    """Tells the job function the ``ApproximateReceiveCount`` of the message it runs for."""

    def process(self, job_kwargs: dict[str, Any], job_context: Any = None) -> Any:
        message = self.message
        assert message is not None
        _job.receive_count = int(message.attributes["ApproximateReceiveCount"])
        return super().process(job_kwargs, job_context)


def append(log_path: str, line: str) -> None:
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def register_jobs(
    queue: JobQueue, log_path: str, sleep: float, abandon: threading.Event | None = None
) -> Any:
    """Register job ``job(n)``: it logs ``start n count pid``, sleeps, logs ``done n count pid``.

    ``count`` is the message's ApproximateReceiveCount when the job started. An
    ``abandon`` event set while a job sleeps makes it raise instead of finishing
    (an in-process stand-in for a job thread that dies with its process).
    """

    @queue.processor("job")
    def job(n: int) -> None:
        count = _job.receive_count
        append(log_path, f"start {n} {count} {os.getpid()}")
        if abandon is not None:
            if abandon.wait(sleep):
                raise RuntimeError(f"job {n} abandoned by its test")
        elif sleep:
            threading.Event().wait(sleep)
        append(log_path, f"done {n} {count} {os.getpid()}")

    return job


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(process)d %(name)s %(message)s")
    env = app_env(processor=ReceiveCountProcessor)
    queue = env.queue(os.environ["APP_QUEUE"])
    register_jobs(queue, os.environ["APP_LOG"], float(os.environ.get("APP_SLEEP", "0")))
    idle = float(os.environ.get("APP_IDLE", "0"))
    policy: ShutdownPolicy = IdleShutdown(idle) if idle else NeverShutdown()
    options: dict[str, Any] = {
        "concurrency": int(os.environ.get("APP_CONCURRENCY", "1")),
        "grace_period": float(os.environ.get("APP_GRACE_PERIOD", "30")),
    }
    for name in ("pollers", "prefetch"):
        if os.environ.get(f"APP_{name.upper()}"):
            options[name] = int(os.environ[f"APP_{name.upper()}"])
    # The queue is known to exist: read its attributes (one call) before the
    # test is told the worker is ready, so the startup cost is not in the stop.
    queue.attributes  # noqa: B018
    stats = queue.process_queue(
        policy, wait_seconds=float(os.environ.get("APP_WAIT_SECONDS", "2")), **options
    )
    logging.getLogger("stop_app").info("TOTALS %s", stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
