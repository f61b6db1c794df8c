"""The app of the worker-process stop tests (tests/test_process_stops.py), for ``sqsw run``.

``sqsw run --app tests.apps.process_app:sqs work``: the session and the queue
prefix come from the command line and ``SQSW_*`` variables. Jobs of queue ``work``:

- ``job(n, seconds=0)`` appends ``start n count pid time`` to the file named by
  ``APP_LOG``, sleeps ``seconds``, then appends ``done n count pid time``
  (``count``: the message's ApproximateReceiveCount; ``time``: epoch seconds);
- ``poison(n, after=0)`` appends ``poison n count pid time``, works ``after``
  seconds, then ends its worker process with ``os._exit(1)``: no clean-up, as
  when the process is killed for memory or segfaults.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from sqsw_core import SQSEnv
from sqsw_core.processors import Processor

_job = threading.local()


class ReceiveCountProcessor(Processor):
    """Tells the job function the ``ApproximateReceiveCount`` of the message it runs for."""

    def process(self, job_kwargs: dict[str, Any], job_context: Any = None) -> Any:
        message = self.message
        _job.count = message.attributes.get("ApproximateReceiveCount", "?") if message else "?"
        return super().process(job_kwargs, job_context)


def log(event: str, n: int) -> None:
    line = f"{event} {n} {_job.count} {os.getpid()} {time.time():.3f}\n"
    fd = os.open(os.environ["APP_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


sqs = SQSEnv(processor=ReceiveCountProcessor)
work = sqs.queue("work")


@work.processor("job")
def job(n: int, seconds: float = 0) -> None:
    log("start", n)
    time.sleep(seconds)
    log("done", n)


@work.processor("poison")
def poison(n: int, after: float = 0) -> None:
    log("poison", n)
    time.sleep(after)
    os._exit(1)
