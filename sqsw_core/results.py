"""What one pass over a batch of received messages did."""

from __future__ import annotations

from sqsw_core.messages import Message


class BatchProcessingResult:
    """Messages of one batch that succeeded (acked) and failed (to be retried)."""

    __slots__ = ("failed", "queue_name", "succeeded")

    def __init__(
        self,
        queue_name: str,
        succeeded: list[Message] | None = None,
        failed: list[Message] | None = None,
    ) -> None:
        self.queue_name = queue_name
        self.succeeded: list[Message] = succeeded if succeeded is not None else []
        self.failed: list[Message] = failed if failed is not None else []

    def update_with_message(self, message: Message, success: bool) -> None:
        (self.succeeded if success else self.failed).append(message)

    def succeeded_count(self) -> int:
        return len(self.succeeded)

    def failed_count(self) -> int:
        return len(self.failed)

    def total_count(self) -> int:
        return len(self.succeeded) + len(self.failed)

    def __repr__(self) -> str:
        return (
            f"<BatchProcessingResult {self.queue_name} succeeded={len(self.succeeded)} "
            f"failed={len(self.failed)}>"
        )
