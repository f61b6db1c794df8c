"""Retries of transient SQS failures: throttling, server errors, dropped connections.

:class:`~sqsw_core.sqs_api.SQSApi` calls SQS directly and enters
:func:`call_with_retries` (tenacity) only once a call has failed with an error
that :func:`is_transient` accepts, so a call that succeeds costs nothing more.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
)

from sqsw_core.exceptions import ConfigurationError

logger = logging.getLogger("sqsw.retries")

#: Error codes of a request refused because the caller sends too fast.
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "AWS.SimpleQueueService.RequestThrottled",
        "TooManyRequestsException",
        "SlowDown",
        "KMS.ThrottlingException",
    }
)
#: Error codes of a request the service failed to serve this time.
SERVER_ERROR_CODES = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
    }
)
TRANSIENT_CODES = THROTTLING_CODES | SERVER_ERROR_CODES
#: botocore errors of a connection that failed or dropped before a response arrived.
CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    EndpointConnectionError,
    ConnectionClosedError,
    ReadTimeoutError,
    ConnectTimeoutError,
)
#: What :meth:`SQSApi.call` inspects after a failure (anything else propagates as is).
RETRYABLE_TYPES: tuple[type[Exception], ...] = (ClientError, *CONNECTION_ERRORS)


@dataclass(frozen=True)
class RetryPolicy:
    """How transient SQS failures are retried: ``SQSEnv(retry=RetryPolicy(...))``.

    ``max_attempts`` counts the first call (``1`` turns retries off); waits
    grow exponentially from ``initial`` seconds, plus random jitter of up to
    ``initial`` seconds, capped at ``max_wait`` seconds.
    """

    max_attempts: int = 5
    initial: float = 0.05
    max_wait: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError(
                f"RetryPolicy.max_attempts must be at least 1, got {self.max_attempts!r}"
            )
        if self.initial < 0 or self.max_wait < self.initial:
            raise ConfigurationError(
                f"RetryPolicy needs 0 <= initial <= max_wait, got initial={self.initial!r}, "
                f"max_wait={self.max_wait!r}"
            )

    def wait(self, state: RetryCallState) -> float:
        """Seconds to wait after failed attempt ``state.attempt_number`` (1, 2, ...)."""
        backoff: float = self.initial * 2.0 ** (state.attempt_number - 1)
        return min(self.max_wait, backoff + random.uniform(0, self.initial))


DEFAULT_RETRY_POLICY = RetryPolicy()


def error_code(exc: BaseException) -> str:
    """The SQS error code of a ``ClientError`` (``""`` for anything else)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def describe_error(exc: BaseException) -> str:
    """``Code: message`` for an SQS error, ``Type: text`` for anything else."""
    if isinstance(exc, ClientError):
        text = exc.response.get("Error", {}).get("Message") or str(exc)
        return f"{error_code(exc)}: {text}"
    return f"{type(exc).__name__}: {exc}"


def is_transient(exc: BaseException) -> bool:
    """Whether the same call may succeed if simply made again a little later."""
    if isinstance(exc, ClientError):
        if error_code(exc) in TRANSIENT_CODES:
            return True
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return isinstance(status, int) and (status >= 500 or status == 429)
    return isinstance(exc, CONNECTION_ERRORS)


def call_with_retries(
    call: Callable[[], dict[str, Any]],
    first_error: BaseException,
    policy: RetryPolicy,
    operation: str,
    queue_name: str | None,
) -> dict[str, Any]:
    """Retry ``call``, whose first attempt failed with the transient ``first_error``.

    Returns the first successful response. A permanent error is raised as it
    is; after ``policy.max_attempts`` failed attempts, :class:`tenacity.RetryError`
    (its ``last_attempt`` holds the last error).
    """
    pending = [first_error]

    def attempt() -> dict[str, Any]:
        if pending:  # attempt 1 is the call that already failed
            raise pending.pop()
        return call()

    def log_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        sleep = state.next_action.sleep if state.next_action is not None else 0.0
        logger.warning(
            "SQS %s on queue %s failed (attempt %d of %d): %s; retrying in %.2f s",
            operation,
            repr(queue_name) if queue_name else "-",
            state.attempt_number,
            policy.max_attempts,
            describe_error(error) if error is not None else "?",
            sleep,
            extra={"queue_name": queue_name, "operation": operation},
        )

    retrying = Retrying(
        stop=stop_after_attempt(policy.max_attempts),
        wait=policy.wait,
        retry=retry_if_exception(is_transient),
        before_sleep=log_retry,
    )
    return retrying(attempt)
