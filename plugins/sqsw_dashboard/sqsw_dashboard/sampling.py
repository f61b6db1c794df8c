"""Depth samples taken while the dashboard runs, and the rates computed from them.

A sample is each queue's (visible, in flight, delayed) counts at one moment.
The sampler thread takes one every ``interval`` seconds (pages add theirs),
and keeps ``history`` seconds of them: the overview's chart draws them and the
rates compare the newest sample with the oldest one of the last minute.

SQS reports counts, not events, so the rates are estimates:

- **received/s**: how fast messages left the waiting state (visible or
  delayed) for in flight: the drop in waiting messages per second.
- **completed/s**: how fast messages left the queue (deleted): the drop in
  all messages (waiting and in flight) per second.

Messages sent meanwhile offset the drops, so both are lower bounds, exact for
a queue that gets no new messages (a backlog being worked off, a redrive).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from sqsw_dashboard.queue_listing import QueueInfo

__all__ = ["Rates", "Sample", "Sampler", "rates", "sparkline"]

logger = logging.getLogger("sqsw.dashboard")

#: The rates compare samples at most this far apart.
RATE_WINDOW = 60.0


class Sample(NamedTuple):
    at: float
    visible: int
    in_flight: int
    delayed: int

    @property
    def waiting(self) -> int:
        return self.visible + self.delayed

    @property
    def total(self) -> int:
        return self.visible + self.delayed + self.in_flight


@dataclass(frozen=True)
class Rates:
    received: float | None
    completed: float | None


def rates(samples: list[Sample], window: float = RATE_WINDOW) -> Rates:
    """Received/s and completed/s from the samples of the last ``window`` seconds."""
    if len(samples) < 2:
        return Rates(None, None)
    last = samples[-1]
    first = next((s for s in samples if last.at - s.at <= window), samples[-2])
    if first is last:
        first = samples[-2]
    elapsed = last.at - first.at
    if elapsed <= 0:
        return Rates(None, None)
    return Rates(
        received=max(0, first.waiting - last.waiting) / elapsed,
        completed=max(0, first.total - last.total) / elapsed,
    )


def sparkline(samples: list[Sample], width: int = 120, height: int = 24) -> str:
    """The ``points`` of an SVG polyline of the visible count over ``samples``."""
    if not samples:
        return ""
    start, end = samples[0].at, samples[-1].at
    span = max(end - start, 1e-9)
    top = max(max(s.visible for s in samples), 1)
    points = []
    for s in samples:
        x = 0.0 if len(samples) == 1 else (s.at - start) / span * width
        y = height - 1 - s.visible / top * (height - 2)
        points.append(f"{x:.1f},{y:.1f}")
    if len(points) == 1:
        points.append(f"{width:.1f},{points[0].split(',')[1]}")
    return " ".join(points)


class Sampler:
    """Keeps each queue's samples; a thread adds one every ``interval`` seconds."""

    def __init__(
        self,
        fetch: Callable[[], list[QueueInfo]],
        interval: float = 10.0,
        history: float = 600.0,
    ) -> None:
        self.fetch = fetch
        self.interval = interval
        self.history = history
        self._samples: dict[str, deque[Sample]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, infos: Iterable[QueueInfo], at: float | None = None) -> None:
        """Add one sample of each queue (those whose attributes were read)."""
        now = time.time() if at is None else at
        with self._lock:
            for info in infos:
                if info.error is not None:
                    continue
                samples = self._samples.setdefault(info.name, deque())
                if samples and now - samples[-1].at < 0.5:
                    samples.pop()  # two pages at once: keep the newer sample
                samples.append(Sample(now, info.visible, info.in_flight, info.delayed))
                while samples and now - samples[0].at > self.history:
                    samples.popleft()

    def samples(self, name: str) -> list[Sample]:
        with self._lock:
            return list(self._samples.get(name, ()))

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="sqsw-dashboard-sampler")
            self._thread.daemon = True
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.record(self.fetch())
            except Exception:  # SQS unreachable for a moment: try at the next tick
                logger.warning("Could not sample the queues' depths", exc_info=True)
