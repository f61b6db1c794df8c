"""Errors a raw queue raises while running a message.

All are :class:`~sqsw_core.exceptions.JobError` subclasses: the worker logs
them without a traceback and the message is retried (never acked), then goes to
the queue's dead-letter queue if it has one.
"""

from __future__ import annotations

from sqsw_core.exceptions import DecodeError, UnknownJobError

__all__ = ["NoRawProcessorError", "NotAnEventError", "NotJSONError"]


class NoRawProcessorError(UnknownJobError):
    """A message arrived on a raw queue that has no processor registered."""


class NotJSONError(DecodeError):
    """The message body is not valid JSON, and JSON was asked for."""


class NotAnEventError(DecodeError):
    """The message body is not a CloudWatch/EventBridge event, and an event was asked for."""
