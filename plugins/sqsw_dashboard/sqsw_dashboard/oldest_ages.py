"""The age of each queue's oldest message, from CloudWatch, or why it is missing.

SQS's API does not report it; CloudWatch's ``ApproximateAgeOfOldestMessage``
does, once a minute (:func:`sqsw_core.queue_management.oldest_message_age`).
Ages are kept a minute, and when CloudWatch refuses (no permission, not
available at this endpoint) the reason is shown for every queue and CloudWatch
is not asked again for a minute: 200 queues do not make 200 failing calls per
page.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

from sqsw_core.queue_management import oldest_message_age
from sqsw_core.retries import describe_error
from sqsw_dashboard.queue_listing import parallel

if TYPE_CHECKING:
    from sqsw_core.env import SQSEnv

__all__ = ["OldestAge", "OldestAges"]

#: CloudWatch's SQS metrics have one datapoint a minute.
REFRESH_SECONDS = 60.0


class OldestAge(NamedTuple):
    seconds: float | None
    #: Why ``seconds`` is unknown (``None`` with no error: the queue is empty).
    error: str | None = None


class OldestAges:
    """Oldest-message ages of an environment's queues, kept for a minute."""

    def __init__(self, env: SQSEnv, refresh: float = REFRESH_SECONDS) -> None:
        self.env = env
        self.refresh = refresh
        self._ages: dict[str, tuple[float, OldestAge]] = {}
        self._refused: tuple[float, str] | None = None
        self._lock = threading.Lock()

    def _fetch(self, name: str) -> OldestAge:
        with self._lock:
            refused = self._refused
        if refused is not None:
            return OldestAge(None, refused[1])
        try:
            age = OldestAge(oldest_message_age(self.env, name))
        except Exception as exc:  # no CloudWatch there, or no permission to read it
            reason = f"CloudWatch: {describe_error(exc)}"
            with self._lock:
                self._refused = (time.monotonic(), reason)
            return OldestAge(None, reason)
        with self._lock:
            self._ages[name] = (time.monotonic(), age)
        return age

    def get(self, names: Iterable[str]) -> dict[str, OldestAge]:
        """The age of each queue, asking CloudWatch (concurrently) for stale ones."""
        now = time.monotonic()
        with self._lock:
            if self._refused is not None and now - self._refused[0] >= self.refresh:
                self._refused = None
            refused = self._refused
            known = {
                name: entry[1]
                for name, entry in self._ages.items()
                if now - entry[0] < self.refresh
            }
        names = list(names)
        if refused is not None:
            return {name: OldestAge(None, refused[1]) for name in names}
        stale = [name for name in names if name not in known]
        fetched = dict(zip(stale, parallel(self._fetch, stale), strict=True))
        return {name: known.get(name) or fetched[name] for name in names}
