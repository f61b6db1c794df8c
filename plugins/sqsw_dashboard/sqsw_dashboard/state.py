"""One running dashboard: its environment, options and what it keeps while it runs."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqsw_dashboard.audit import AuditLog
from sqsw_dashboard.auth import Credentials
from sqsw_dashboard.oldest_ages import OldestAges
from sqsw_dashboard.queue_listing import QueueInfo, fetch_queues
from sqsw_dashboard.redrive_runs import RedriveRuns
from sqsw_dashboard.sampling import Sampler
from sqsw_dashboard.security import CsrfGuard

if TYPE_CHECKING:
    from sqsw_core.env import SQSEnv

__all__ = ["Dashboard", "DashboardOptions"]


@dataclass(frozen=True)
class DashboardOptions:
    """How the dashboard behaves (the ``sqsw dashboard`` flags)."""

    read_only: bool = False
    #: The app's name when loaded with ``--app``: enqueued jobs are checked against it.
    app: str | None = None
    credentials: Credentials | None = None
    #: Seconds between two depth samples, and how many seconds of them are kept.
    sample_interval: float = 10.0
    history: float = 600.0
    #: Seconds between two refreshes of the overview in the browser.
    refresh: float = 5.0
    #: The most messages the browser shows.
    browse_limit: int = 100
    #: ``Host`` headers served (``*``: any). ``sqsw dashboard`` without ``--auth`` serves
    #: only this machine's names, so a page of another site whose name resolves to
    #: 127.0.0.1 (DNS rebinding) cannot reach it.
    allowed_hosts: tuple[str, ...] = ("*",)
    #: Pages opened within this many seconds of each other share one round of SQS calls.
    reuse_seconds: float = 1.0


@dataclass
class Dashboard:
    """The state shared by the pages of one dashboard process."""

    env: SQSEnv
    options: DashboardOptions = field(default_factory=DashboardOptions)
    csrf: CsrfGuard = field(default_factory=CsrfGuard)
    audit: AuditLog = field(default_factory=AuditLog)
    runs: RedriveRuns = field(default_factory=RedriveRuns)

    def __post_init__(self) -> None:
        self._fetch_lock = threading.Lock()
        self._latest: tuple[float, list[QueueInfo]] | None = None
        self.oldest = OldestAges(self.env)
        self.sampler = Sampler(self.fetch, self.options.sample_interval, self.options.history)

    def fetch(self) -> list[QueueInfo]:
        """Every queue's attributes (concurrently), recorded as a sample."""
        infos = fetch_queues(self.env)
        self.sampler.record(infos)
        with self._fetch_lock:
            self._latest = (time.monotonic(), infos)
        return infos

    def recent(self) -> list[QueueInfo]:
        """:meth:`fetch`, or its result if it is less than ``reuse_seconds`` old: several
        open pages refreshing at once cost one round of SQS calls."""
        with self._fetch_lock:
            latest = self._latest
        if latest is not None and time.monotonic() - latest[0] < self.options.reuse_seconds:
            return latest[1]
        return self.fetch()
