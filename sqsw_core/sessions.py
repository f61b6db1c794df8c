"""Sessions: where SQS clients come from.

A session plugin (group ``sqsw.sessions``) is a factory of objects with a
boto3-shaped ``client("sqs")`` method. The core ships ``aws`` (boto3); a
``boto3.Session`` passed as an object works as it is.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Protocol, runtime_checkable

#: Environment variables read by :class:`AWSSession` when an option is not given.
ENV_ENDPOINT_URL = "SQSW_ENDPOINT_URL"
ENV_REGION = "SQSW_REGION"
ENV_PROFILE = "SQSW_PROFILE"


@runtime_checkable
class Session(Protocol):
    """Anything that makes boto3-shaped SQS clients."""

    def client(self, service_name: str, **kwargs: Any) -> Any: ...


def is_session(obj: Any) -> bool:
    return callable(getattr(obj, "client", None))


def is_process_local(session: Any) -> bool:
    """Whether ``session`` keeps its queues in this process (the in-memory SQS), so that
    other processes (``workers=N``) cannot share them."""
    return bool(getattr(session, "process_local", False))


class AWSSession:
    """SQS clients from boto3, for AWS or any SQS-compatible endpoint.

    Credentials and region follow boto3's usual chain (environment,
    ``~/.aws``, instance roles); ``endpoint_url``, ``region_name`` and
    ``profile_name`` may be given here or by ``SQSW_ENDPOINT_URL``,
    ``SQSW_REGION`` and ``SQSW_PROFILE``.
    """

    def __init__(
        self,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        profile_name: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        max_pool_connections: int = 50,
        connect_timeout: float = 5,
        read_timeout: float = 30,
        botocore_config: Any = None,
        parameter_validation: bool = False,
        direct_requests: bool = True,
    ) -> None:
        self.endpoint_url = endpoint_url or os.environ.get(ENV_ENDPOINT_URL) or None
        self.region_name = region_name or os.environ.get(ENV_REGION) or None
        self.profile_name = profile_name or os.environ.get(ENV_PROFILE) or None
        self._credentials = {
            "aws_access_key_id": aws_access_key_id,
            "aws_secret_access_key": aws_secret_access_key,
            "aws_session_token": aws_session_token,
        }
        self.max_pool_connections = max_pool_connections
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.botocore_config = botocore_config
        #: Whether botocore checks each request's parameters in the client. Off by
        #: default: sqsw checks the requests it builds from your input itself (with
        #: botocore's validator) and skips the check for the receives, deletes and
        #: visibility changes it builds from what SQS returned (a few percent of the
        #: client's CPU per request). Clients you use directly (``sqs.sqs_client``)
        #: then leave the checking to SQS; True restores botocore's check everywhere.
        self.parameter_validation = parameter_validation
        #: Whether the worker's receives, deletes and visibility changes on this
        #: session's clients skip botocore's per-call pipeline (sqsw_core.direct_requests:
        #: botocore's signer, HTTP session and error classes, without its events, endpoint
        #: rules and shape walking per call; about half the client CPU of a worker). False
        #: sends every call through botocore's full pipeline, e.g. for event handlers
        #: registered on ``sqs.sqs_client.meta.events``. Instrumented botocore
        #: (OpenTelemetry, X-Ray) is detected and always gets every call.
        self.direct_requests = direct_requests
        self._lock = threading.Lock()
        self._session: Any = None

    def _boto3_session(self) -> Any:
        import boto3

        with self._lock:  # boto3.Session creation is not thread-safe
            if self._session is None:
                self._session = boto3.Session(
                    profile_name=self.profile_name,
                    region_name=self.region_name,
                    **{k: v for k, v in self._credentials.items() if v is not None},
                )
            return self._session

    def client(self, service_name: str = "sqs", **kwargs: Any) -> Any:
        """A new boto3 client (thread-safe to share between threads)."""
        from botocore.config import Config

        config = Config(
            max_pool_connections=self.max_pool_connections,
            connect_timeout=self.connect_timeout,
            # Long polls wait up to 20 s: the read timeout must be longer.
            read_timeout=max(self.read_timeout, 25),
            # One retry layer: sqsw's SQSApi retries transient failures itself (logged,
            # bounded by SQSEnv(retry=...)); botocore retrying inside each of those
            # attempts would multiply the attempts and the waits, unseen. (botocore's
            # "max_attempts" counts retries only: "total_max_attempts" is the total.)
            retries={"mode": "standard", "total_max_attempts": 1},
            # See parameter_validation above (sqs_api.OWN_REQUESTS).
            parameter_validation=self.parameter_validation,
        )
        if self.botocore_config is not None:
            config = config.merge(self.botocore_config)
        kwargs.setdefault("config", config)
        if self.endpoint_url is not None:
            kwargs.setdefault("endpoint_url", self.endpoint_url)
        session = self._boto3_session()
        with self._lock:
            return session.client(service_name, **kwargs)

    def __repr__(self) -> str:
        where = self.endpoint_url or "AWS"
        return f"AWSSession({where}, region={self.region_name or 'default'})"
