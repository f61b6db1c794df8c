"""AWS Signature Version 4 for the worker's direct requests.

The algorithm is AWS's ("Create a signed AWS API request" in the IAM user
guide). botocore implements it for any request, through case-insensitive
header classes that cost more than the hashing itself. A direct request
(:mod:`sqsw_core.direct_requests`) is always the same shape: POST to the
endpoint's root, no query string, the headers botocore sent for the same
operation, a JSON body. For that shape this signs with hashlib and hmac, the
signing key derived once per day and secret key. Anything else (another
signature version, a signing region or name from the endpoint rules, an
unsigned payload, no credentials) stays with botocore's signer.

tests/test_direct_requests.py verifies each signature sent with botocore's
own SigV4 code over the bytes on the wire, with and without a session token.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import SIGNED_HEADERS_BLACKLIST

ALGORITHM = "AWS4-HMAC-SHA256"
_UNSIGNED = frozenset(SIGNED_HEADERS_BLACKLIST)


def host_header(url: str) -> str:
    """The Host header botocore signs for ``url``: the port only when not the scheme's."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    if parts.port is not None and parts.port != {"http": 80, "https": 443}.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def signable(url: str, context: dict[str, Any], request_signer: Any) -> bool:
    """Whether a request to ``url`` with this signing context is the shape signed here."""
    parts = urlsplit(url)
    return (
        parts.path in ("", "/")
        and not parts.query
        and getattr(request_signer, "signature_version", None) == "v4"
        and getattr(request_signer, "_credentials", None) is not None
        and "signing" not in context
        and context.get("auth_type") in (None, "v4")
        and context.get("payload_signing_enabled", True)
        and not context.get("unsigned_payload")
    )


class SigV4Signer:
    """Signs direct requests for one client: its credentials, region and service."""

    def __init__(self, request_signer: Any) -> None:
        self._credentials = request_signer._credentials
        self._region = request_signer.region_name
        self._service = request_signer.signing_name
        self._key: tuple[str, str, bytes] = ("", "", b"")  # secret key, day, signing key

    def sign(self, url_host: str, headers: dict[str, str], body: bytes) -> None:
        """Add X-Amz-Date, the session token if any, and Authorization to ``headers``."""
        credentials = self._credentials.get_frozen_credentials()
        amz_date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        day = amz_date[:8]
        headers["X-Amz-Date"] = amz_date
        if credentials.token:
            headers["X-Amz-Security-Token"] = credentials.token
        signed = {
            name.lower(): " ".join(value.split())
            for name, value in headers.items()
            if name.lower() not in _UNSIGNED
        }
        signed.setdefault("host", url_host)
        names = sorted(signed)
        signed_names = ";".join(names)
        canonical = "POST\n/\n\n{}\n{}\n{}".format(
            "".join(f"{name}:{signed[name]}\n" for name in names),
            signed_names,
            hashlib.sha256(body).hexdigest(),
        )
        scope = f"{day}/{self._region}/{self._service}/aws4_request"
        to_sign = "\n".join(
            (ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest())
        )
        key = self._signing_key(credentials.secret_key, day)
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (
            f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={signed_names}, Signature={signature}"
        )

    def _signing_key(self, secret: str, day: str) -> bytes:
        known_secret, known_day, key = self._key
        if known_secret == secret and known_day == day:
            return key
        key = f"AWS4{secret}".encode()
        for part in (day, self._region, self._service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        self._key = (secret, day, key)
        return key
