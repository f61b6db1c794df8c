"""The one error a page shows for a user's mistake: a line of text and an HTTP status."""

from __future__ import annotations

__all__ = ["DashboardError"]


class DashboardError(Exception):
    """Bad input or a refused action: shown in the page as one line (never a traceback)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
