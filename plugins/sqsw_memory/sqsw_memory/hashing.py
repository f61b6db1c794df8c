"""The MD5 digests SQS returns, computed exactly as SQS does.

``MD5OfMessageAttributes`` follows the documented algorithm: for each attribute,
sorted by name, hash the name, the data type (each as 4-byte big-endian length +
UTF-8 bytes), one transport byte (1 = string value, 2 = binary value) and the
value (length + bytes). SDKs other than boto3 verify these digests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

__all__ = ["md5_of_attributes", "md5_of_body"]


def md5_of_body(body: bytes) -> str:
    """``MD5OfBody`` / ``MD5OfMessageBody``: hex MD5 of the UTF-8 body."""
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def _put(h: Any, data: bytes) -> None:
    h.update(len(data).to_bytes(4, "big"))
    h.update(data)


def md5_of_attributes(attributes: Mapping[str, Mapping[str, Any]]) -> str:
    """``MD5OfMessageAttributes`` (or ``MD5OfMessageSystemAttributes``) of validated attributes."""
    h = hashlib.md5(usedforsecurity=False)
    for name in sorted(attributes):
        attr = attributes[name]
        _put(h, name.encode("utf-8"))
        _put(h, attr["DataType"].encode("utf-8"))
        string_value = attr.get("StringValue")
        if string_value is not None:
            h.update(b"\x01")
            _put(h, string_value.encode("utf-8"))
        else:
            h.update(b"\x02")
            _put(h, bytes(attr["BinaryValue"]))
    return h.hexdigest()
