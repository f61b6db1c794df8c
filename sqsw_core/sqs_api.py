"""The one place sqsw calls SQS: errors become messages that name the queue.

Every SQS call of the product goes through :meth:`SQSApi.call`, so error
translation (and retries of transient failures) live here only.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from sqsw_core.exceptions import QueueNotFoundError, SQSCallError

#: Error codes SQS uses for a queue that does not exist (query and JSON protocols).
NONEXISTENT_QUEUE_CODES = frozenset(
    {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class SQSApi:
    """A boto3-shaped SQS client wrapped with error translation."""

    def __init__(self, client: Any, endpoint: str | None = None) -> None:
        self.client = client
        self.endpoint = endpoint or getattr(getattr(client, "meta", None), "endpoint_url", None)

    def call(self, operation: str, queue_name: str | None, **params: Any) -> dict[str, Any]:
        """Call ``operation`` (a boto3 method name) for ``queue_name``."""
        try:
            response: dict[str, Any] = getattr(self.client, operation)(**params)
            return response
        except ClientError as exc:
            raise self.translate(exc, operation, queue_name) from exc

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
