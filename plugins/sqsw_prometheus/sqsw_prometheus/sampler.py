"""The engines' counters (received, released, extended, failed acks) and the
messages they hold, copied into the metrics once a second.

The engines count these themselves (``queue.engine_stats()``); a sampler thread
in each worker process adds what grew since its last look to the counters and
sets the in-flight gauge. Values pushed this way work in prometheus_client's
multiprocess mode too, where a collector reading the engines at scrape time
could not (the engines run in other processes than the one serving).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqsw_core.results import EngineStats

if TYPE_CHECKING:
    from sqsw_core.env import SQSEnv
    from sqsw_prometheus.instruments import Instruments

__all__ = ["SAMPLE_INTERVAL", "StatsSampler"]

logger = logging.getLogger("sqsw.prometheus")

#: Seconds between two looks at the engines' counters.
SAMPLE_INTERVAL = 1.0

#: EngineStats counter -> Instruments attribute.
COUNTERS = {
    "received": "received",
    "redelivered": "redelivered",
    "released": "released",
    "extended": "extended",
    "failed_acks": "failed_acks",
}


def held_by(engine: Any) -> int:
    """How many messages ``engine`` holds (prefetched or running); 0 when not running."""
    if engine is None or getattr(engine, "keeper", None) is None:
        return 0  # not started, or ended
    return len(engine.held())


class StatsSampler:
    """Copies the counters of the engines of ``queue_names`` into ``instruments``."""

    def __init__(
        self,
        instruments: Instruments,
        env: SQSEnv,
        queue_names: Sequence[str],
        interval: float = SAMPLE_INTERVAL,
    ) -> None:
        self.instruments = instruments
        self.queues = [env.queue(name) for name in queue_names]
        self.interval = interval
        # Per queue: the engine last seen and its counters then.
        self._seen: dict[str, tuple[EngineStats | None, dict[str, int]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sqsw-prometheus", daemon=True)

    def sample(self) -> None:
        """Add what each engine counted since the last sample; set in flight."""
        instruments = self.instruments
        for queue in self.queues:
            parts = queue.engine_stats()  # the running engine's, else the last one's
            stats: EngineStats | None = parts[-1] if parts else None
            last, before = self._seen.get(queue.name, (None, {}))
            if stats is not last:
                before = {}  # a new engine counts from zero
            for name, attribute in COUNTERS.items():
                grown = (getattr(stats, name) if stats is not None else 0) - before.get(name, 0)
                getattr(instruments, attribute).labels(queue.name).inc(max(0, grown))
            instruments.in_flight.labels(queue.name).set(held_by(queue.engine))
            if stats is not None:
                self._seen[queue.name] = (stats, {name: getattr(stats, name) for name in COUNTERS})

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception:  # the next look tries again
                logger.exception("Could not read the engines' counters")

    def __enter__(self) -> StatsSampler:
        self.sample()  # every queue's series exist from the start, at 0
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sample()  # the last counts
