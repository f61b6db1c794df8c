"""sqsw-timing: an example sqsw plugin package (a processor and a backoff policy)."""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any, ClassVar

from sqsw_core.messages import Message
from sqsw_core.processors import Processor

__all__ = ["LinearBackoff", "TimingProcessor"]
__version__ = "0.1.0"

logger = logging.getLogger("sqsw.timing")


class TimingProcessor(Processor):
    """Logs each job's duration; the latest ones are kept in ``durations``."""

    #: Shared by every processor of the class (one per job name and queue).
    durations: ClassVar[deque[tuple[str, float]]] = deque(maxlen=1000)

    def process(self, job_kwargs: dict[str, Any], job_context: Any = None) -> Any:
        start = time.perf_counter()
        try:
            return super().process(job_kwargs, job_context)
        finally:
            elapsed = time.perf_counter() - start
            TimingProcessor.durations.append((f"{self.queue_name}.{self.job_name}", elapsed))
            logger.info("%s.%s took %.3f s", self.queue_name, self.job_name, elapsed)


class LinearBackoff:
    """Retry after ``step`` seconds times the number of deliveries so far."""

    def __init__(self, step: float = 5.0, max_seconds: float = 900.0) -> None:
        self.step = step
        self.max_seconds = max_seconds

    def get_visibility_timeout(self, message: Message) -> float:
        return min(self.max_seconds, self.step * max(1, message.receive_count))

    def __repr__(self) -> str:
        return f"LinearBackoff(step={self.step!r})"
