"""Signed message bodies for sqsw: an HMAC-SHA256 codec wrapping another codec.

``SigningCodec`` (registered as codec ``signed``) encodes with an inner codec
(``json`` by default) and wraps the text in a JSON envelope::

    {"v":2,"kid":"2024-06","ct":"json","sig":"<base64url HMAC-SHA256>","body":"<inner text>"}

A job's arguments (the message body) and its context (the ``JobContext``
attribute) are each such an envelope. The MAC of the arguments covers the
envelope version, the key id, the inner content type, the part (arguments),
the ``JobName`` attribute and the inner text; the context's MAC covers the
same fields for the context part plus the arguments' signature. So a signed
body cannot be replayed under another job name, nor paired with another
message's context, nor relabelled; every field is length-prefixed so no two
inputs share a byte string. Not covered: freshness (a signed message may be
sent again; SQS itself redelivers messages, so there is no expiry), and
anyone holding a key can sign any job.

Verification uses :func:`hmac.compare_digest`. Several keys may be accepted
at once (rotation): messages are signed with one key (``key_id``) and
verified with any key whose id is in the envelope. Keys come from the
options or from ``SQSW_SIGNING_KEYS`` (``id:secret,id:secret``; the first
signs unless ``key_id`` names another). Secrets never appear in a log line,
an error message or a ``repr``.

The content type written is ``signed``: a worker must be configured with
this codec (``SQSEnv(codec="signed")`` or ``accept=["signed"]``) to read these
messages, and a plain sqs-workers consumer cannot read them at all.
``serialize``/``deserialize`` sign one text alone (part ``text``, no job
name); workers refuse such envelopes as job messages.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from typing import Any

from sqsw_core.codecs import Codec, get_codec
from sqsw_core.exceptions import ConfigurationError

__all__ = ["ENV_VAR", "MIN_KEY_BYTES", "SignatureError", "SigningCodec", "parse_keys"]

#: The environment variable keys are read from when none is given as an option.
ENV_VAR = "SQSW_SIGNING_KEYS"
#: Shorter secrets are refused: HMAC-SHA256 wants at least 128 bits of key.
MIN_KEY_BYTES = 16
#: The envelope format version (also covered by the MAC).
VERSION = 2
#: What a MAC covers: one text alone, a job's arguments, or a job's context.
PART_TEXT, PART_ARGS, PART_CONTEXT = "text", "args", "context"


class SignatureError(ValueError):
    """A message that is not signed, or whose signature does not verify."""


def _as_bytes(secret: str | bytes) -> bytes:
    return secret if isinstance(secret, bytes) else secret.encode("utf-8")


def parse_keys(spec: str, source: str = ENV_VAR) -> dict[str, bytes]:
    """Parse ``id:secret,id:secret`` (order kept; the first is the default signer).

    Errors name the position of a bad entry, never its content.
    """
    keys: dict[str, bytes] = {}
    for position, entry in enumerate(spec.split(","), start=1):
        entry = entry.strip()
        if not entry:
            continue
        kid, sep, secret = entry.partition(":")
        kid = kid.strip()
        if not sep or not kid or not secret:
            raise ConfigurationError(
                f"entry {position} of {source} is not 'key_id:secret' (the value is not shown)"
            )
        if kid in keys:
            raise ConfigurationError(f"key id {kid!r} appears twice in {source}")
        keys[kid] = secret.encode("utf-8")
    return keys


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class SigningCodec:
    """Signs what ``inner`` encodes with HMAC-SHA256; content type ``signed``.

    ``SigningCodec(key=..., key_id=...)`` signs with one key; ``keys={id:
    secret, ...}`` adds keys accepted when verifying (rotation), and
    ``key_id`` picks the signing one among them. Without ``key`` or ``keys``
    the keys come from ``$SQSW_SIGNING_KEYS``.
    """

    content_type = "signed"
    #: A worker using this codec runs signed messages only: plain JSON is refused.
    exclusive = True

    def __init__(
        self,
        inner: str | Codec = "json",
        key: str | bytes | None = None,
        key_id: str | None = None,
        keys: Mapping[str, str | bytes] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.inner: Codec = get_codec(inner)
        if self.inner.content_type == self.content_type:
            raise ConfigurationError("SigningCodec cannot wrap another signed codec")
        accepted: dict[str, bytes] = {}
        if key is not None:
            signer = key_id or "default"
            accepted[signer] = _as_bytes(key)
        for kid, secret in (keys or {}).items():
            accepted.setdefault(kid, _as_bytes(secret))
        if not accepted:
            spec = (os.environ if environ is None else environ).get(ENV_VAR, "")
            accepted = parse_keys(spec)
        if not accepted:
            raise ConfigurationError(
                f"SigningCodec has no key: pass key=... and key_id=..., keys={{id: secret}}, "
                f"or set {ENV_VAR}='key_id:secret[,key_id:secret...]'"
            )
        for kid, secret in accepted.items():
            if len(secret) < MIN_KEY_BYTES:
                raise ConfigurationError(
                    f"signing key {kid!r} is shorter than {MIN_KEY_BYTES} bytes; use a random "
                    "secret of at least 32 bytes (e.g. secrets.token_urlsafe(32))"
                )
        if key is not None:
            signer = key_id or "default"
        else:
            signer = key_id if key_id is not None else next(iter(accepted))
        if signer not in accepted:
            raise ConfigurationError(
                f"signing key id {signer!r} is not among the keys given "
                f"(key ids: {', '.join(accepted)})"
            )
        self.key_id = signer
        self._keys = accepted

    @property
    def key_ids(self) -> list[str]:
        """Ids of the keys accepted when verifying (the signing one first)."""
        return [self.key_id, *(k for k in self._keys if k != self.key_id)]

    def _mac(
        self, secret: bytes, kid: str, content_type: str, fields: tuple[str, ...], text: str
    ) -> str:
        header = "".join(f"{len(field)}:{field}:" for field in (kid, content_type, *fields))
        mac = hmac.new(secret, f"sqsw-signed:{VERSION}:{header}".encode(), hashlib.sha256)
        mac.update(text.encode("utf-8", "surrogatepass"))
        return _b64(mac.digest())

    def _seal(self, text: str, fields: tuple[str, ...]) -> tuple[str, str]:
        """The envelope around ``text`` with a MAC over ``fields``, and that MAC."""
        content_type = self.inner.content_type
        sig = self._mac(self._keys[self.key_id], self.key_id, content_type, fields, text)
        envelope = {"v": VERSION, "kid": self.key_id, "ct": content_type, "sig": sig, "body": text}
        return json.dumps(envelope, separators=(",", ":")), sig

    def serialize(self, obj: Any) -> str:
        """Sign one encoded object on its own (not bound to a job: see :meth:`encode_job`)."""
        return self._seal(self.inner.serialize(obj), (PART_TEXT,))[0]

    def encode_job(
        self, job_name: str, job_kwargs: dict[str, Any], context: dict[str, Any]
    ) -> tuple[str, str]:
        """Body and context envelopes, bound to ``job_name`` and to each other."""
        body, body_sig = self._seal(self.inner.serialize(job_kwargs), (PART_ARGS, job_name))
        context_text, _ = self._seal(
            self.inner.serialize(context), (PART_CONTEXT, job_name, body_sig)
        )
        return body, context_text

    def _open(self, text: str, fields: tuple[str, ...], what: str) -> tuple[str, str]:
        """The inner text and signature of an envelope whose MAC covers ``fields``.

        Raises :class:`SignatureError` when it is not a signed envelope or does
        not verify.
        """
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
        secret = self._keys.get(kid)
        if secret is None:
            raise SignatureError(
                f"{what} signed with unknown key id {kid!r} (accepted key ids: "
                f"{', '.join(self.key_ids)})"
            )
        expected = self._mac(secret, kid, content_type, fields, body)
        if not hmac.compare_digest(expected.encode("ascii"), sig.encode("utf-8", "replace")):
            raise SignatureError(
                f"bad signature on {what} for key id {kid!r}: the message was altered, "
                "signed for another job or message, or signed with another secret"
            )
        if content_type != self.inner.content_type:
            raise SignatureError(
                f"signed content type {content_type!r} is not this codec's inner "
                f"{self.inner.content_type!r}"
            )
        return body, sig

    def verify(self, text: str) -> str:
        """The inner text of an envelope made by :meth:`serialize`; :class:`SignatureError` else."""
        return self._open(text, (PART_TEXT,), "the text")[0]

    def deserialize(self, text: str) -> Any:
        return self.inner.deserialize(self.verify(text))

    def decode_job(
        self, job_name: str | None, body: str, context_text: str | None
    ) -> tuple[Any, Any]:
        """Verify and decode a job made by :meth:`encode_job` for ``job_name``."""
        if job_name is None:
            raise SignatureError("the message has no JobName attribute to verify against")
        args_text, body_sig = self._open(body, (PART_ARGS, job_name), "the body")
        if not context_text:
            raise SignatureError("the message has no signed JobContext attribute")
        context, _ = self._open(context_text, (PART_CONTEXT, job_name, body_sig), "the context")
        return self.inner.deserialize(args_text), self.inner.deserialize(context)

    def __repr__(self) -> str:
        # Key ids only: the secrets never leave this object.
        return (
            f"SigningCodec(inner={self.inner.content_type!r}, key_id={self.key_id!r}, "
            f"key_ids={self.key_ids!r})"
        )
