"""``sqsw run --log-format json``: one JSON object per log record, one per line.

The standard library is enough: :class:`logging.Formatter` already renders the
message and the exception text, and :func:`json.dumps` writes the line, so no
dependency (python-json-logger and the like) is added for ~40 lines.

Each object has ``time`` (ISO 8601, UTC, milliseconds), ``level``, ``logger``,
``message``, ``exception`` (the traceback text, when the record has one),
``stack`` (when it has ``stack_info``) and every ``extra`` field of the record:
sqsw's job records carry ``queue_name``, ``job_name``, ``message_id`` and
``backoff_policy``, as sqs-workers' do. A value JSON cannot hold is written as
its ``repr()``.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

__all__ = ["JsonFormatter"]

#: The attributes every LogRecord has; any other attribute came from ``extra``.
_STANDARD = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON: fixed fields, then the ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry and not key.startswith("_"):
                entry[key] = value
        return json.dumps(entry, default=repr, ensure_ascii=False)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """``2026-11-29T16:24:48.123Z``: UTC, so lines from several hosts sort together."""
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{seconds}.{int(record.msecs):03d}Z"
