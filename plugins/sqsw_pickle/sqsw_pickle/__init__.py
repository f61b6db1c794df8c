"""Pickle codecs for sqsw, wire-compatible with sqs-workers.

Bodies are URL-safe base64 of zlib-compressed pickles. Decoding a pickle can
run arbitrary code, so a worker only decodes these content types when its
environment was configured with them (``SQSEnv(codec="pickle")`` or
``accept=["pickle"]``): never by default.
"""

from __future__ import annotations

import base64
import pickle
import zlib
from typing import Any

__all__ = ["PICKLE_PY2_COMPAT_PROTO", "PickleCodec", "PickleCompatCodec"]

#: The highest pickle protocol Python 2 understands (the ``pickle_compat`` type).
PICKLE_PY2_COMPAT_PROTO = 2


class PickleCodec:
    """Pickle with the default protocol; content type ``pickle``."""

    content_type = "pickle"
    protocol: int = pickle.DEFAULT_PROTOCOL

    def serialize(self, obj: Any) -> str:
        data = zlib.compress(pickle.dumps(obj, protocol=self.protocol))
        return base64.urlsafe_b64encode(data).decode("ascii")

    def deserialize(self, text: str) -> Any:
        data = zlib.decompress(base64.urlsafe_b64decode(text.encode("ascii")))
        return pickle.loads(data)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class PickleCompatCodec(PickleCodec):
    """Pickle protocol 2 (sqs-workers' default); content type ``pickle_compat``."""

    content_type = "pickle_compat"
    protocol = PICKLE_PY2_COMPAT_PROTO
