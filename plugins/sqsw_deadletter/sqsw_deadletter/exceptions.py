"""Errors of dead-letter queue operations."""

from __future__ import annotations

from sqsw_core.exceptions import JobError, SQSError

__all__ = ["NoRedriveRunningError", "PushBackError"]


class PushBackError(JobError):
    """The upstream queue did not accept a dead letter; it stays in the dead-letter queue."""


class NoRedriveRunningError(SQSError, LookupError):
    """``cancel_redrive()`` found no running server-side redrive to cancel."""
