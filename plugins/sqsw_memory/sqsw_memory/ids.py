"""Identifiers: message ids, request ids, receipt handles and move-task handles.

Ids are UUID-shaped strings made from a random per-factory prefix and a counter:
unique, cheap (no ``uuid4`` on the hot path) and never reused within a process.
"""

from __future__ import annotations

import base64
import itertools
import json
import os

__all__ = ["IdFactory", "decode_task_handle", "encode_task_handle", "random_token"]


def random_token(nbytes: int = 8) -> str:
    """A random lowercase hex string of ``2 * nbytes`` characters."""
    return os.urandom(nbytes).hex()


def _uuid_prefix() -> str:
    r = random_token(10)
    variant = "89ab"[int(r[15], 16) & 3]
    return f"{r[:8]}-{r[8:12]}-4{r[12:15]}-{variant}{r[16:19]}-"


class IdFactory:
    """UUID-shaped ids: a random 24-character prefix plus a 12-hex-digit counter."""

    def __init__(self) -> None:
        self._prefix = _uuid_prefix()
        self._counter = itertools.count(1)

    def next(self) -> str:
        """A new id (thread-safe: ``itertools.count`` is atomic under the GIL)."""
        return f"{self._prefix}{next(self._counter):012x}"


def encode_task_handle(task_id: str, source_arn: str) -> str:
    """A move-task handle as SQS makes it: base64 of ``{"taskId", "sourceArn"}``."""
    doc = json.dumps({"taskId": task_id, "sourceArn": source_arn}, separators=(",", ":"))
    return base64.b64encode(doc.encode("utf-8")).decode("ascii")


def decode_task_handle(handle: str) -> tuple[str, str]:
    """``(task_id, source_arn)`` of a move-task handle; ``ValueError`` if malformed."""
    try:
        doc = json.loads(base64.b64decode(handle.encode("ascii"), validate=True))
    except (ValueError, UnicodeError) as exc:
        raise ValueError("invalid task handle") from exc
    if not isinstance(doc, dict):
        raise ValueError("invalid task handle")
    task_id, source_arn = doc.get("taskId"), doc.get("sourceArn")
    if not isinstance(task_id, str) or not isinstance(source_arn, str):
        raise ValueError("invalid task handle")
    return task_id, source_arn
