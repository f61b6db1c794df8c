"""The signed envelope: its fields, what its MAC covers, and reading one.

``{"v":2,"kid":...,"ct":...,"sig":...,"body":...}``; the MAC input is the
version, then each covered field length-prefixed, then the inner text.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

__all__ = [
    "PART_ARGS",
    "PART_CONTEXT",
    "PART_TEXT",
    "VERSION",
    "SignatureError",
    "b64",
    "dump_envelope",
    "load_envelope",
    "mac",
]

#: The envelope format version (also covered by the MAC).
VERSION = 2
#: What a MAC covers: one text alone, a job's arguments, or a job's context.
PART_TEXT, PART_ARGS, PART_CONTEXT = "text", "args", "context"


class SignatureError(ValueError):
    """A message that is not signed, or whose signature does not verify."""


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mac(secret: bytes, kid: str, content_type: str, fields: tuple[str, ...], text: str) -> str:
    """The MAC of ``text`` with key ``kid`` over the content type and ``fields``."""
    header = "".join(f"{len(field)}:{field}:" for field in (kid, content_type, *fields))
    digest = hmac.new(secret, f"sqsw-signed:{VERSION}:{header}".encode(), hashlib.sha256)
    digest.update(text.encode("utf-8", "surrogatepass"))
    return b64(digest.digest())


def dump_envelope(kid: str, content_type: str, sig: str, text: str) -> str:
    envelope = {"v": VERSION, "kid": kid, "ct": content_type, "sig": sig, "body": text}
    return json.dumps(envelope, separators=(",", ":"))


def load_envelope(text: str, what: str) -> tuple[str, str, str, str]:
    """Key id, content type, signature and inner text of an envelope (not verified).

    Raises :class:`SignatureError` when ``text`` is not a signed envelope of
    this version with text fields.
    """
    envelope: Any
    try:
        envelope = json.loads(text)
    except ValueError:
        envelope = None
    if not isinstance(envelope, dict) or "sig" not in envelope:
        raise SignatureError(
            f"{what} is not a signed sqsw envelope (an unsigned message, or from another codec)"
        )
    version, kid = envelope.get("v"), envelope.get("kid")
    content_type, sig, body = envelope.get("ct"), envelope.get("sig"), envelope.get("body")
    if version != VERSION:
        raise SignatureError(f"unsupported signed envelope version {version!r} in {what}")
    if not (
        isinstance(kid, str)
        and isinstance(content_type, str)
        and isinstance(sig, str)
        and isinstance(body, str)
    ):
        raise SignatureError(
            f"malformed signed envelope in {what} (kid, ct, sig and body must be text)"
        )
    return kid, content_type, sig, body
