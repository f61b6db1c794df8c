"""Authentication, CSRF protection and safe response headers.

- :class:`GuardMiddleware` answers 401 to a request without valid ``--auth``
  credentials (when the dashboard has some) and adds headers that keep pages
  out of frames and scripts to the dashboard's own files.
- :class:`CsrfGuard` checks the token every action form (or ``X-CSRF-Token``
  header) carries: a page of another site cannot read it, so it cannot make a
  browser post an action.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sqsw_dashboard.auth import Credentials
from sqsw_dashboard.errors import DashboardError

__all__ = ["CSRF_FIELD", "CSRF_HEADER", "CsrfGuard", "GuardMiddleware"]

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]


class GuardMiddleware:
    """Authentication (when credentials are set) and security headers, for every request."""

    def __init__(self, app: ASGIApp, credentials: Credentials | None) -> None:
        self.app = app
        self.credentials = credentials

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        user: str | None = None
        if self.credentials is not None:
            user = self.credentials.check(Headers(scope=scope).get("authorization"))
            if user is None:
                response = PlainTextResponse(
                    "401 Unauthorized: this dashboard needs its --auth credentials "
                    "(HTTP basic auth, or Authorization: Bearer TOKEN).\n",
                    status_code=401,
                    headers={"WWW-Authenticate": 'Basic realm="sqsw dashboard", charset="UTF-8"'},
                )
                await response(scope, receive, send)
                return
        client = scope.get("client")
        who = user or f"anonymous@{client[0] if client else 'local'}"
        scope.setdefault("state", {})["user"] = who

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class CsrfGuard:
    """The CSRF token of this dashboard process, and its check."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token or secrets.token_urlsafe(32)

    def check(self, form: Mapping[str, Any], headers: Mapping[str, str]) -> None:
        """Raise 403 unless the form field or the header carries the token."""
        sent = form.get(CSRF_FIELD) or headers.get(CSRF_HEADER) or ""
        if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), self.token.encode()):
            raise DashboardError(
                "Refused: the request has no valid CSRF token. Reload the page and try "
                "again (each dashboard start makes a new token).",
                403,
            )
