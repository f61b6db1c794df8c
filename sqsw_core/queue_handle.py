"""``QueueHandle``: what the runtime needs of a queue, and nothing more.

The runtime (SQS calls, settling, the visibility heartbeat, the job runner,
the engine) works on this protocol, not on :class:`~sqsw_core.queue.GenericQueue`
and its environment: a queue object of any kind that has these members can be
received from, run and settled. :class:`~sqsw_core.queue.GenericQueue`
implements it for every queue type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sqsw_core.backoff_policies import BackoffPolicy
    from sqsw_core.bulk_jobs import BulkProcessor
    from sqsw_core.context import JobContext
    from sqsw_core.messages import Message


class QueueHandle(Protocol):
    """A named SQS queue the runtime receives from, runs and settles."""

    @property
    def name(self) -> str: ...

    @property
    def backoff_policy(self) -> BackoffPolicy: ...

    @property
    def is_fifo(self) -> bool: ...

    @property
    def has_async_jobs(self) -> bool:
        """Whether some of the queue's jobs are ``async def`` functions."""
        ...

    @property
    def process_local(self) -> bool:
        """Whether the queue lives in this process (the in-memory SQS): a receive
        never waits on the network."""
        ...

    @property
    def attributes(self) -> dict[str, str]:
        """The queue's SQS attributes (``VisibilityTimeout``...)."""
        ...

    @property
    def max_delay_hop(self) -> int:
        """The longest delay of one hop of a long-delayed job (seconds)."""
        ...

    @property
    def bulk_processors(self) -> Mapping[str, BulkProcessor]:
        """Job name -> the processor that runs many jobs of that name in one call."""
        ...

    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """Call an SQS operation on this queue (``QueueUrl`` filled in)."""
        ...

    def handle_message(self, message: Message) -> Any:
        """Run one received message's job; raise to fail it. An async job returns its
        coroutine instead (unrun): the runtime runs it on the job loop and settles it
        when it ends."""
        ...

    def run_bulk_job(
        self, processor: BulkProcessor, messages: list[Message], jobs: list[Any]
    ) -> set[int]:
        """Call a bulk job's function on decoded ``jobs`` (of ``messages``) inside the
        processors' ``handling`` hooks; the indices of the jobs it reported failed."""
        ...

    def decode_job(self, message: Message) -> tuple[dict[str, Any], JobContext]:
        """A job message's keyword arguments and context."""
        ...

    def interrupt_receives(self) -> None:
        """End this queue's receives in progress now, where the session can."""
        ...
