"""Several worker processes for one queue, watched by a supervisor.

``queue.process_queue(workers=N)`` forks N children that each run the engine
with a connection of their own (boto3 clients are never shared across a
fork). The supervisor forwards SIGTERM/SIGINT to them (first = warm stop,
second = cold stop) and restarts a child that crashed (non-zero exit while
not stopping), with a growing delay when crashes repeat. A child that ends
normally (its shutdown policy said stop) is not restarted.

Given a ``stats`` callable, each child publishes its engines' counters twice
a second into shared memory, and :meth:`Supervisor.totals` sums them over
all children, past and present, so one process can show one live line and
``process_queue(workers=N)`` can return the whole run's counters.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from sqsw_core.engine import EngineStats

logger = logging.getLogger("sqsw.supervisor")

#: Restart delays (seconds) after consecutive crashes of the same slot.
RESTART_DELAYS = (0.0, 1.0, 2.0, 5.0, 10.0, 30.0)
#: Seconds between two publications of a child's counters.
PUBLISH_INTERVAL = 0.5

#: The counters children publish, then ``in_flight``.
_FIELDS = (*EngineStats.COUNTERS, "in_flight")


class Supervisor:
    """Runs ``target`` in ``workers`` forked processes until they all end.

    ``stats``, called in a child, returns the counters of the engines running
    there (none yet: empty); :meth:`totals` sums what the children published.
    """

    def __init__(
        self,
        target: Callable[[], Any],
        workers: int,
        name: str = "sqsw",
        stats: Callable[[], Iterable[EngineStats]] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.target = target
        self.workers = workers
        self.name = name
        self.stats = stats
        self.restarts = 0
        self._signals = 0
        self._context = multiprocessing.get_context("fork")
        self.started_at = time.monotonic()
        # One row of counters per slot, written by its child only (aligned
        # 64-bit stores); rows of children that ended are folded into _retired.
        self._shared = self._context.RawArray("q", workers * len(_FIELDS))
        self._retired = EngineStats(started_at=self.started_at)

    # -- counters ---------------------------------------------------------------

    def _publish(self, slot: int) -> None:
        assert self.stats is not None
        total = EngineStats.total(self.stats())
        row = slot * len(_FIELDS)
        for offset, field in enumerate(_FIELDS):
            self._shared[row + offset] = getattr(total, field)

    def _publisher(self, slot: int, done: threading.Event) -> None:
        while not done.wait(PUBLISH_INTERVAL):
            self._publish(slot)

    def _row(self, slot: int) -> EngineStats:
        """The counters the child in ``slot`` published last."""
        row = slot * len(_FIELDS)
        stats = EngineStats(started_at=self.started_at)
        for offset, field in enumerate(_FIELDS):
            setattr(stats, field, self._shared[row + offset])
        return stats

    def _retire(self, slot: int) -> None:
        """Fold an ended child's last counters into the totals and clear its row."""
        self._retired = EngineStats.total([self._retired, self._row(slot)], self.started_at)
        self._retired.in_flight = 0  # an ended child holds nothing
        row = slot * len(_FIELDS)
        for offset in range(len(_FIELDS)):
            self._shared[row + offset] = 0

    def totals(self) -> EngineStats:
        """The counters of every child so far (in flight: the running ones')."""
        rows = [self._row(slot) for slot in range(self.workers)]
        return EngineStats.total([self._retired, *rows], self.started_at)

    # -- processes --------------------------------------------------------------

    def _child_main(self, slot: int) -> None:
        # The engine installs its own handlers in the child's main thread.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        done = threading.Event()
        if self.stats is not None:
            threading.Thread(
                target=self._publisher, args=(slot, done), name="sqsw-stats", daemon=True
            ).start()
        code = 0
        try:
            self.target()
        except BaseException:
            logger.exception("Worker process %d of %s crashed", os.getpid(), self.name)
            code = 1
        done.set()
        if self.stats is not None:
            try:
                self._publish(slot)  # the final counts
            except Exception:
                logger.exception("Could not publish the counters of worker process %d", os.getpid())
        os._exit(code)

    def _spawn(self, slot: int) -> BaseProcess:
        process = self._context.Process(
            target=self._child_main, args=(slot,), name=f"{self.name}-worker-{slot}", daemon=False
        )
        process.start()
        logger.info("Started worker process %d (%s)", process.pid, process.name)
        return process

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        logger.warning(
            "%s received by the supervisor: %s stop of %d worker process(es)",
            signal.Signals(signum).name,
            "warm" if self._signals == 1 else "cold",
            self.workers,
        )
        for process in self._processes.values():
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signal.SIGTERM)

    def run(self) -> int:
        """Supervise until every child ended; returns how many crashed at the end."""
        self._processes: dict[int, BaseProcess] = {}
        crashes: dict[int, int] = {}
        due: dict[int, float] = {}
        previous = {s: signal.signal(s, self._forward) for s in (signal.SIGTERM, signal.SIGINT)}
        failed = 0
        try:
            for slot in range(self.workers):
                self._processes[slot] = self._spawn(slot)
            while self._processes or due:
                now = time.monotonic()
                for slot, when in list(due.items()):
                    if self._signals:
                        del due[slot]
                    elif now >= when:
                        del due[slot]
                        self._processes[slot] = self._spawn(slot)
                        self.restarts += 1
                for slot, process in list(self._processes.items()):
                    if process.is_alive():
                        continue
                    process.join()
                    del self._processes[slot]
                    self._retire(slot)
                    code = process.exitcode
                    if code == 0 or self._signals:
                        crashes.pop(slot, None)
                        if code not in (0, None, -signal.SIGTERM):
                            failed += 1
                        continue
                    count = crashes.get(slot, 0)
                    crashes[slot] = count + 1
                    delay = RESTART_DELAYS[min(count, len(RESTART_DELAYS) - 1)]
                    logger.error(
                        "Worker process %d (%s) exited with %s; restarting in %.0f s",
                        process.pid,
                        process.name,
                        code,
                        delay,
                    )
                    due[slot] = time.monotonic() + delay
                time.sleep(0.05)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return failed
