"""The action log: who did what to which queue, and to how many messages.

Every action is logged (logger ``sqsw.dashboard.audit``, INFO) and the last
ones are kept for the overview's "Recent actions" list.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

__all__ = ["AuditEntry", "AuditLog"]

logger = logging.getLogger("sqsw.dashboard.audit")


@dataclass(frozen=True)
class AuditEntry:
    at: float
    who: str
    action: str
    queue: str
    count: int | None
    detail: str

    def __str__(self) -> str:
        count = "" if self.count is None else f" ({self.count} message(s))"
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.who} {self.action} {self.queue}{count}{detail}"

    @property
    def when(self) -> str:
        return time.strftime("%H:%M:%S", time.localtime(self.at))


class AuditLog:
    """Logs each action and keeps the last ``keep`` of them."""

    def __init__(self, keep: int = 50) -> None:
        self._entries: deque[AuditEntry] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def record(
        self, who: str, action: str, queue: str, count: int | None = None, detail: str = ""
    ) -> AuditEntry:
        entry = AuditEntry(time.time(), who, action, queue, count, detail)
        with self._lock:
            self._entries.append(entry)
        logger.info(
            "%s",
            entry,
            extra={"who": who, "action": action, "queue": queue, "count": count},
        )
        return entry

    def recent(self) -> list[AuditEntry]:
        """Newest first."""
        with self._lock:
            return list(reversed(self._entries))
