"""A worker process for the process-level tests (run as ``python -m tests.apps.worker_app``).

Environment: SQSW_TEST_ENDPOINT, APP_PREFIX, APP_QUEUE, APP_LOG (a file each job
appends ``n pid`` to), APP_SLEEP (seconds per job), APP_CONCURRENCY,
APP_WORKERS, APP_IDLE (idle seconds before stopping; 0 = run until signalled),
APP_CRASH_ON (a job number whose first run kills its process with exit code 3),
APP_ASYNC (1: the job is an ``async def`` that awaits its sleep, on the job loop),
APP_ASYNC_CONCURRENCY (coroutines in flight at most; default the engine's).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time

from sqsw_core.shutdown_policies import IdleShutdown, NeverShutdown, ShutdownPolicy
from tests.apps import app_env


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(process)d %(name)s %(message)s")
    env = app_env()
    queue = env.queue(os.environ["APP_QUEUE"])
    log_path = os.environ["APP_LOG"]
    sleep = float(os.environ.get("APP_SLEEP", "0"))
    crash_on = int(os.environ.get("APP_CRASH_ON", "-1"))
    crash_marker = log_path + ".crashed"

    def crash_or_log(n: int, before: bool) -> None:
        if before:
            if n == crash_on and not os.path.exists(crash_marker):
                open(crash_marker, "w").close()
                os._exit(3)  # a hard crash of this worker process
            return
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, f"{n} {os.getpid()}\n".encode())
        finally:
            os.close(fd)

    if os.environ.get("APP_ASYNC") == "1":

        @queue.processor("job")
        async def async_job(n: int) -> None:
            crash_or_log(n, before=True)
            await asyncio.sleep(sleep)
            crash_or_log(n, before=False)

    else:

        @queue.processor("job")
        def job(n: int) -> None:
            crash_or_log(n, before=True)
            time.sleep(sleep)
            crash_or_log(n, before=False)

    idle = float(os.environ.get("APP_IDLE", "0"))
    policy: ShutdownPolicy = IdleShutdown(idle) if idle else NeverShutdown()
    stats = queue.process_queue(
        policy,
        wait_seconds=1,
        concurrency=int(os.environ.get("APP_CONCURRENCY", "4")),
        async_concurrency=int(os.environ.get("APP_ASYNC_CONCURRENCY", "0")) or None,
        workers=int(os.environ.get("APP_WORKERS", "1")),
    )
    logging.getLogger("worker_app").info("TOTALS %s", stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
