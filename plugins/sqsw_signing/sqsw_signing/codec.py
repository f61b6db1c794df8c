"""``SigningCodec``: signs what an inner codec encodes, and verifies before decoding."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from sqsw_core.codecs import Codec, get_codec
from sqsw_core.exceptions import ConfigurationError
from sqsw_signing.envelope import (
    PART_ARGS,
    PART_CONTEXT,
    PART_TEXT,
    SignatureError,
    dump_envelope,
    load_envelope,
    mac,
)
from sqsw_signing.keys import signing_keys

__all__ = ["SigningCodec"]


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
        self.key_id, self._keys = signing_keys(key, key_id, keys, environ)

    @property
    def key_ids(self) -> list[str]:
        """Ids of the keys accepted when verifying (the signing one first)."""
        return [self.key_id, *(k for k in self._keys if k != self.key_id)]

    def _seal(self, text: str, fields: tuple[str, ...]) -> tuple[str, str]:
        """The envelope around ``text`` with a MAC over ``fields``, and that MAC."""
        content_type = self.inner.content_type
        sig = mac(self._keys[self.key_id], self.key_id, content_type, fields, text)
        return dump_envelope(self.key_id, content_type, sig, text), sig

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
        kid, content_type, sig, body = load_envelope(text, what)
        secret = self._keys.get(kid)
        if secret is None:
            raise SignatureError(
                f"{what} signed with unknown key id {kid!r} (accepted key ids: "
                f"{', '.join(self.key_ids)})"
            )
        expected = mac(secret, kid, content_type, fields, body)
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
