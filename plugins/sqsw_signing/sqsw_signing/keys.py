"""Signing keys: parsing ``SQSW_SIGNING_KEYS``, and which keys a codec signs and verifies with."""

from __future__ import annotations

import os
from collections.abc import Mapping

from sqsw_core.exceptions import ConfigurationError

__all__ = ["ENV_VAR", "MIN_KEY_BYTES", "as_bytes", "parse_keys", "signing_keys"]

#: The environment variable keys are read from when none is given as an option.
ENV_VAR = "SQSW_SIGNING_KEYS"
#: Shorter secrets are refused: HMAC-SHA256 wants at least 128 bits of key.
MIN_KEY_BYTES = 16


def as_bytes(secret: str | bytes) -> bytes:
    return secret if isinstance(secret, bytes) else secret.encode("utf-8")


def parse_keys(spec: str, source: str = ENV_VAR) -> dict[str, bytes]:
    """Parse ``id:secret,id:secret`` (order kept; the first is the default signer).

    Errors name the position of a bad entry, never its content. A secret holding
    ``;`` is refused: ``k1:s1;k2:s2`` is two keys with the wrong separator, and
    taken as written it would be one key ``k1`` whose secret is ``s1;k2:s2``.
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
        if ";" in secret:
            raise ConfigurationError(
                f"entry {position} of {source} holds ';': separate keys with ',' "
                "(key_id:secret,key_id:secret); a secret cannot contain ';' or ','"
            )
        if kid in keys:
            raise ConfigurationError(f"key id {kid!r} appears twice in {source}")
        keys[kid] = secret.encode("utf-8")
    return keys


def signing_keys(
    key: str | bytes | None,
    key_id: str | None,
    keys: Mapping[str, str | bytes] | None,
    environ: Mapping[str, str] | None,
) -> tuple[str, dict[str, bytes]]:
    """The signing key's id and every accepted key, from a codec's options.

    ``key`` (with ``key_id``, default ``"default"``) and ``keys``; without
    either, ``$SQSW_SIGNING_KEYS`` of ``environ`` (default ``os.environ``).
    Raises :class:`ConfigurationError` when there is no key, one is too short,
    or ``key_id`` names none of them.
    """
    for name, value in (("key", key), ("key_id", key_id)):
        if value is not None and not isinstance(value, str | bytes):
            raise ConfigurationError(
                f"SigningCodec option {name} must be text, got a {type(value).__name__} "
                "(the value is not shown)"
            )
    accepted: dict[str, bytes] = {}
    if key is not None:
        signer = key_id or "default"
        accepted[signer] = as_bytes(key)
    for kid, secret in (keys or {}).items():
        accepted.setdefault(kid, as_bytes(secret))
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
    return signer, accepted
