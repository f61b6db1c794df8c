"""Redrives running in the background, with the progress their page polls.

A redrive pushes messages back in chunks (sqsw-deadletter's
``DeadLetterQueue.push_back``) so its page can show a progress bar; a message
is deleted from the dead-letter queue only after its target accepted the copy.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqsw_deadletter import DeadLetterQueue, RedriveFilter

__all__ = ["RedriveRun", "RedriveRuns"]

logger = logging.getLogger("sqsw.dashboard")

#: Messages pushed back between two progress updates.
CHUNK = 10


@dataclass
class RedriveRun:
    """One redrive and how far it got."""

    id: str
    queue: str
    target: str
    total: int
    description: str
    who: str
    moved: int = 0
    failed: int = 0
    state: str = "running"
    error: str | None = None
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    @property
    def percent(self) -> int:
        if self.state == "done":
            return 100
        if self.total <= 0:
            return 0
        return min(100, round(100 * (self.moved + self.failed) / self.total))

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "queue": self.queue,
            "target": self.target,
            "total": self.total,
            "moved": self.moved,
            "failed": self.failed,
            "state": self.state,
            "error": self.error,
            "percent": self.percent,
        }


class RedriveRuns:
    """The redrives started by this dashboard (kept until it stops)."""

    def __init__(self) -> None:
        self._runs: dict[str, RedriveRun] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def stop(self, timeout: float = 30.0) -> None:
        """Let running redrives finish their chunk and stop (the dashboard is stopping):
        no message is left half-moved, the rest stays in the dead-letter queue."""
        self._stopping.set()
        with self._lock:
            threads = list(self._threads.values())
        if threads:
            logger.info("Waiting for %d redrive(s) to finish their chunk", len(threads))
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def get(self, run_id: str) -> RedriveRun | None:
        with self._lock:
            return self._runs.get(run_id)

    def start(
        self,
        dead: DeadLetterQueue,
        selection: RedriveFilter | None,
        *,
        total: int,
        limit: int | None,
        wait_seconds: float,
        description: str,
        who: str,
        on_finish: Any = None,
    ) -> RedriveRun:
        """Start pushing back in a thread; ``limit``: stop after that many (selected ids)."""
        run = RedriveRun(
            uuid.uuid4().hex[:12], dead.name, dead.upstream.name, total, description, who
        )
        thread = threading.Thread(
            target=self._run,
            args=(run, dead, selection, limit, wait_seconds, on_finish),
            name=f"sqsw-dashboard-redrive-{run.id}",
            daemon=True,
        )
        with self._lock:
            self._runs[run.id] = run
            self._threads[run.id] = thread
        thread.start()
        return run

    def _run(
        self,
        run: RedriveRun,
        dead: DeadLetterQueue,
        selection: RedriveFilter | None,
        limit: int | None,
        wait_seconds: float,
        on_finish: Any,
    ) -> None:
        try:
            while limit is None or run.moved + run.failed < limit:
                if self._stopping.is_set():
                    run.state = "stopped"
                    run.error = "the dashboard stopped; the rest stays in the dead-letter queue"
                    return
                report = dead.push_back(selection, wait_seconds=wait_seconds, max_messages=CHUNK)
                run.moved += report.moved
                run.failed += report.failed
                run.total = max(run.total, run.moved + run.failed)
                if report.moved + report.failed < CHUNK:
                    break
            run.state = "done"
        except Exception as exc:  # shown on the run's page; the messages left stay put
            logger.exception("Redrive %s of %s failed", run.id, run.queue)
            run.state = "failed"
            run.error = f"{type(exc).__name__}: {exc}"
        finally:
            run.finished_at = time.time()
            with self._lock:
                self._threads.pop(run.id, None)
            if on_finish is not None:
                on_finish(run)
