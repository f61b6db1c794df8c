"""The one place sqsw calls SQS: errors become messages that name the queue.

Every SQS call of the product goes through :meth:`SQSApi.call`, so error
translation and retries of transient failures (:mod:`sqsw_core.retries`) live
here only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from botocore.exceptions import ClientError
from botocore.validate import validate_parameters
from tenacity import RetryError

from sqsw_core.direct_requests import DIRECT_OPERATIONS, DirectRequests
from sqsw_core.direct_requests import usable as direct_usable
from sqsw_core.exceptions import QueueNotFoundError, SQSCallError
from sqsw_core.retries import (
    DEFAULT_RETRY_POLICY,
    RETRYABLE_TYPES,
    RetryPolicy,
    call_with_retries,
    describe_error,
    error_code,
    is_transient,
)

__all__ = [
    "ACTIVITY",
    "NONEXISTENT_QUEUE_CODES",
    "OWN_REQUESTS",
    "SQSActivity",
    "SQSApi",
    "error_code",
]

logger = logging.getLogger("sqsw.sqs")

#: Requests sqsw builds only from what SQS returned (receipt handles) and numbers it
#: has already checked (batch sizes, clamped timeouts and waits): botocore's client-side
#: parameter check adds nothing to them, once per request of the hot path.
OWN_REQUESTS = frozenset(
    {
        "receive_message",
        "delete_message",
        "delete_message_batch",
        "change_message_visibility",
        "change_message_visibility_batch",
    }
)

#: Error codes SQS uses for a queue that does not exist (query and JSON protocols).
NONEXISTENT_QUEUE_CODES = frozenset(
    {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
)


class SQSActivity:
    """How this process's SQS calls went: health checks and metrics plugins read it.

    ``last_success`` and ``last_error`` are ``time.monotonic()`` values (``None``:
    not yet); ``last_error_text`` describes the last failure. Every failed
    attempt, retried or not, calls each of ``error_listeners`` with the
    operation (the boto3 method name, ``receive_message``) and the error's code
    (the SQS error code, or the exception's type name for a connection error);
    a listener must be quick and must not raise (what it raises is logged and
    dropped). One per process, shared by every ``SQSEnv``; forked worker
    processes inherit the listeners.
    """

    __slots__ = ("error_listeners", "last_error", "last_error_text", "last_success")

    def __init__(self) -> None:
        self.last_success: float | None = None
        self.last_error: float | None = None
        self.last_error_text = ""
        self.error_listeners: list[Callable[[str, str], None]] = []

    def failed(self, operation: str, exc: BaseException) -> None:
        """Note a failed attempt of ``operation`` and tell the listeners."""
        self.last_error = time.monotonic()
        self.last_error_text = f"{operation}: {describe_error(exc)}"
        code = error_code(exc) or type(exc).__name__
        for listener in self.error_listeners:
            try:
                listener(operation, code)
            except Exception:
                logger.exception("SQS error listener %r failed; ignored", listener)


#: The SQS calls of this process (see :class:`SQSActivity`).
ACTIVITY = SQSActivity()


class SQSApi:
    """A boto3-shaped SQS client wrapped with error translation and retries."""

    def __init__(
        self,
        client: Any,
        retry: RetryPolicy | None = None,
        check_params: bool = False,
        direct: bool = False,
    ) -> None:
        self.client = client
        meta = getattr(client, "meta", None)
        self.endpoint: str | None = getattr(meta, "endpoint_url", None)
        self.retry = retry or DEFAULT_RETRY_POLICY
        #: ``check_params``: the client is a botocore client made without parameter
        #: validation (AWSSession's default). Every request but OWN_REQUESTS is then
        #: checked here, by botocore's own validator, so what sqsw sends from a user's
        #: input fails as it did with a validating client.
        self.checks_params = check_params and getattr(meta, "service_model", None) is not None
        self._input_shapes: dict[str, Any] = {}
        #: ``direct``: the client is one sqsw made; its receives, deletes and visibility
        #: changes skip botocore's per-call pipeline (:mod:`sqsw_core.direct_requests`).
        self.direct = DirectRequests(client) if direct and direct_usable(client) else None

    def call(self, operation: str, queue_name: str | None, **params: Any) -> dict[str, Any]:
        """Call ``operation`` (a boto3 method name) for ``queue_name``.

        Transient failures are retried as ``self.retry`` says; permanent ones
        raise at once, translated (:meth:`translate`).
        """
        direct = self.direct
        if direct is not None and operation in DIRECT_OPERATIONS:
            method: Callable[..., dict[str, Any]] = partial(direct.call, operation)
        else:
            method = getattr(self.client, operation)
        if self.checks_params and operation not in OWN_REQUESTS:
            self._check_params(operation, params)
        try:
            response: dict[str, Any] = method(**params)
        except RETRYABLE_TYPES as exc:
            ACTIVITY.failed(operation, exc)
            if self.retry.max_attempts > 1 and is_transient(exc):
                response = self._retry(operation, queue_name, partial(method, **params), exc)
            elif isinstance(exc, ClientError):
                raise self.translate(exc, operation, queue_name) from exc
            else:
                raise
        ACTIVITY.last_success = time.monotonic()
        return response

    def _check_params(self, operation: str, params: dict[str, Any]) -> None:
        """Raise botocore's ``ParamValidationError`` for ``params``, as a validating client
        would."""
        shape = self._input_shapes.get(operation)
        if shape is None:
            meta = self.client.meta
            api_name = meta.method_to_api_mapping[operation]
            shape = self._input_shapes[operation] = meta.service_model.operation_model(
                api_name
            ).input_shape
        validate_parameters(params, shape)

    def _retry(
        self,
        operation: str,
        queue_name: str | None,
        call: Callable[[], dict[str, Any]],
        first_error: Exception,
    ) -> dict[str, Any]:
        # SendMessage(Batch) is not idempotent: a retry after a timeout whose request
        # did reach SQS sends the message twice. SQS delivers at least once anyway,
        # so jobs must tolerate duplicates; FIFO sends keep their
        # MessageDeduplicationId (or body hash) across retries, so SQS drops the copy.

        def attempt() -> dict[str, Any]:
            try:
                return call()
            except RETRYABLE_TYPES as exc:
                ACTIVITY.failed(operation, exc)
                raise

        try:
            return call_with_retries(attempt, first_error, self.retry, operation, queue_name)
        except ClientError as exc:  # a permanent error on a later attempt
            raise self.translate(exc, operation, queue_name) from exc
        except RetryError as exc:
            last = exc.last_attempt.exception()
            target = f" on queue {queue_name!r}" if queue_name else ""
            where = f" at {self.endpoint}" if self.endpoint else ""
            raise SQSCallError(
                f"SQS {operation}{target}{where} failed after {self.retry.max_attempts} "
                f"attempts: {describe_error(last) if last is not None else 'unknown error'}",
                operation=operation,
                queue_name=queue_name,
                code=(error_code(last) if last is not None else "") or None,
            ) from last

    def translate(self, exc: ClientError, operation: str, queue_name: str | None) -> Exception:
        code = error_code(exc)
        text = exc.response.get("Error", {}).get("Message") or str(exc)
        where = f" at {self.endpoint}" if self.endpoint else ""
        if code in NONEXISTENT_QUEUE_CODES and queue_name is not None:
            return QueueNotFoundError(
                queue_name,
                f"SQS queue {queue_name!r} does not exist{where} ({operation}). "
                f"Create it (create_standard_queue(sqs, {queue_name!r}), or "
                "create_fifo_queue for a name ending in .fifo), or check the queue "
                "name, queue_prefix, region and endpoint.",
            )
        target = f" on queue {queue_name!r}" if queue_name else ""
        return SQSCallError(
            f"SQS {operation}{target}{where} failed: {code}: {text}",
            operation=operation,
            queue_name=queue_name,
            code=code or None,
        )
