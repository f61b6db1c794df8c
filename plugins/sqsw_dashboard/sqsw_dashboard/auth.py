"""Who may use the dashboard: ``--auth`` credentials, checked on every request.

``--auth env:VARIABLE`` or ``--auth file:PATH`` names where the credentials are
(never the secret itself, which would show in ``ps``). Each line is either
``user:password`` (HTTP basic auth) or a bare token, sent as
``Authorization: Bearer TOKEN`` or as the password of basic auth with any user
name (so a browser's login prompt works too).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["TOKEN_USER", "Credentials", "load_credentials"]

#: The user name the audit log shows for a request authenticated with a token.
TOKEN_USER = "token"


@dataclass(frozen=True)
class Credentials:
    """Accepted users (name -> password) and tokens."""

    users: Mapping[str, str] = field(default_factory=dict)
    tokens: tuple[str, ...] = ()

    def check(self, authorization: str | None) -> str | None:
        """The user an ``Authorization`` header authenticates, or ``None``."""
        if not authorization:
            return None
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            return TOKEN_USER if self._token_ok(value) else None
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, password = decoded.partition(":")
        if not sep:
            return None
        expected = self.users.get(user)
        if expected is not None and hmac.compare_digest(expected.encode(), password.encode()):
            return user
        return TOKEN_USER if self._token_ok(password) else None

    def _token_ok(self, candidate: str) -> bool:
        # Compare with every token (no early exit) so timing says nothing.
        ok = False
        for token in self.tokens:
            ok |= hmac.compare_digest(token.encode(), candidate.encode())
        return ok


def _parse(text: str, source: str) -> Credentials:
    users: dict[str, str] = {}
    tokens: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if sep:
            if not user or not password:
                raise ValueError(f"{source}: a line 'user:password' needs both parts")
            users[user] = password
        else:
            tokens.append(line)
    if not users and not tokens:
        raise ValueError(f"{source} holds no credentials (one 'user:password' or token a line)")
    for token in tokens:
        if len(token) < 16:
            raise ValueError(f"{source}: a token must be at least 16 characters long")
    return Credentials(users, tuple(tokens))


def load_credentials(spec: str, environ: Mapping[str, str] | None = None) -> Credentials:
    """Credentials from ``env:VARIABLE`` or ``file:PATH``; ``ValueError`` says what is wrong."""
    kind, sep, where = spec.partition(":")
    if not sep or kind not in ("env", "file") or not where:
        raise ValueError(
            f"--auth {spec!r}: use env:VARIABLE or file:PATH (the credentials' place, "
            "not the secret itself)"
        )
    if kind == "env":
        variables = os.environ if environ is None else environ
        if not variables.get(where):
            raise ValueError(f"--auth {spec!r}: variable {where} is not set or empty")
        return _parse(variables[where], f"variable {where}")
    try:
        text = Path(where).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"--auth {spec!r}: cannot read {where}: {exc.strerror}") from None
    return _parse(text, f"file {where}")
