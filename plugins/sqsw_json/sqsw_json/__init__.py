"""JSON codec for sqsw: the default, safe to decode from any producer.

Wire-compatible with sqs-workers' ``json`` content type: the body is
``json.dumps`` of the job's keyword arguments.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["JSONCodec"]


class JSONCodec:
    """Encodes job arguments with :mod:`json`; content type ``json``."""

    content_type = "json"

    def __init__(self, **dumps_options: Any) -> None:
        self._encoder = json.JSONEncoder(**dumps_options) if dumps_options else None

    def serialize(self, obj: Any) -> str:
        if self._encoder is not None:
            return self._encoder.encode(obj)
        return json.dumps(obj)

    def deserialize(self, text: str) -> Any:
        return json.loads(text)

    def __repr__(self) -> str:
        return "JSONCodec()"
