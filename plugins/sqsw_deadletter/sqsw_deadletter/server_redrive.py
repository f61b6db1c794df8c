"""Server-side redrive: SQS moves a dead-letter queue's messages itself.

``StartMessageMoveTask`` (standard queues, no filter), watched with
``ListMessageMoveTasks`` and stopped with ``CancelMessageMoveTask``; the
methods :class:`~sqsw_deadletter.DeadLetterQueue` gets from
:class:`ServerSideRedrive`. Push-back by this process (``push_back()``,
``process_queue()``) is in :mod:`sqsw_deadletter.deadletter_queue`.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

from sqsw_deadletter.exceptions import NoRedriveRunningError
from sqsw_deadletter.move_tasks import RedriveTask

if TYPE_CHECKING:
    from sqsw_core.env import SQSEnv
    from sqsw_core.queue import GenericQueue
    from sqsw_deadletter.deadletter_queue import RedriveReport
    from sqsw_deadletter.selection import Predicate

__all__ = ["MAX_MOVE_RATE", "ServerSideRedrive", "queue_arn"]

logger = logging.getLogger("sqsw.deadletter")

#: SQS accepts at most 500 messages per second for a move task.
MAX_MOVE_RATE = 500


def queue_arn(queue: GenericQueue) -> str:
    """The queue's ARN (one ``GetQueueAttributes`` call)."""
    response = queue.call("get_queue_attributes", AttributeNames=["QueueArn"])
    arn: str = response["Attributes"]["QueueArn"]
    return arn


class _RedriveSource(Protocol):
    """What server-side redrive uses of its dead-letter queue."""

    env: SQSEnv
    name: str
    _select: Predicate | None

    @property
    def is_fifo(self) -> bool: ...

    @property
    def arn(self) -> str: ...

    @property
    def upstream(self) -> GenericQueue: ...

    @property
    def has_upstream(self) -> bool: ...

    def push_back(
        self, *, wait_seconds: float, max_messages_per_second: float | None
    ) -> RedriveReport: ...

    def redrive_tasks(self, max_results: int = 10) -> list[RedriveTask]: ...

    def redrive_status(self) -> RedriveTask | None: ...


class ServerSideRedrive:
    """Server-side redrive methods of :class:`~sqsw_deadletter.DeadLetterQueue`."""

    def start_redrive(
        self: _RedriveSource, max_messages_per_second: int | None = None, *, wait_seconds: float = 1
    ) -> RedriveTask:
        """Have SQS move the messages back itself (``StartMessageMoveTask``).

        Messages go to the upstream queue if this queue has one, else each to
        the queue it came from. Returns at once; see :meth:`redrive_status`,
        :meth:`wait_for_redrive`, :meth:`cancel_redrive`. A FIFO queue, or one
        with a filter, is pushed back by this process instead (logged): the
        returned task is then already finished (``server_side=False``).
        """
        if max_messages_per_second is not None and not (
            1 <= max_messages_per_second <= MAX_MOVE_RATE
        ):
            raise ValueError(
                f"max_messages_per_second must be 1 to {MAX_MOVE_RATE}, "
                f"got {max_messages_per_second!r}"
            )
        reason = None
        if self.is_fifo:
            reason = "it is a FIFO queue (server-side redrive is for standard queues)"
        elif self._select is not None:
            reason = "it has a filter (SQS moves every message)"
        if reason is not None:
            return _push_back_instead(self, reason, max_messages_per_second, wait_seconds)
        params: dict[str, Any] = {"SourceArn": self.arn}
        destination = queue_arn(self.upstream) if self.has_upstream else None
        if destination is not None:
            params["DestinationArn"] = destination
        if max_messages_per_second is not None:
            params["MaxNumberOfMessagesPerSecond"] = int(max_messages_per_second)
        response = self.env.api.call("start_message_move_task", self.name, **params)
        logger.info(
            "Started server-side redrive of %s to %s",
            self.name,
            self.upstream.name if self.has_upstream else "the source queues",
        )
        return RedriveTask(
            status="RUNNING",
            source_arn=self.arn,
            destination_arn=destination,
            task_handle=response["TaskHandle"],
            max_messages_per_second=max_messages_per_second,
        )

    def redrive_tasks(self: _RedriveSource, max_results: int = 10) -> list[RedriveTask]:
        """The most recent server-side redrives of this queue, newest first."""
        response = self.env.api.call(
            "list_message_move_tasks", self.name, SourceArn=self.arn, MaxResults=max_results
        )
        return [RedriveTask.from_sqs(result) for result in response.get("Results", [])]

    def redrive_status(self: _RedriveSource) -> RedriveTask | None:
        """The latest server-side redrive of this queue, or ``None`` if there was none."""
        tasks = self.redrive_tasks(1)
        return tasks[0] if tasks else None

    def wait_for_redrive(
        self: _RedriveSource, timeout: float | None = None, poll_seconds: float = 1.0
    ) -> RedriveTask | None:
        """Poll :meth:`redrive_status` until the latest redrive is finished."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            task = self.redrive_status()
            if task is None or task.finished:
                return task
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"redrive of {self.name!r} still {task.status} after {timeout} s "
                    f"({task.moved} moved)"
                )
            time.sleep(poll_seconds)

    def cancel_redrive(self: _RedriveSource, task_handle: str | None = None) -> int:
        """Stop the running server-side redrive; returns how many messages it had moved.

        Messages already moved stay in the upstream queue.
        """
        if task_handle is None:
            running = [t for t in self.redrive_tasks() if t.running and t.task_handle]
            if not running:
                raise NoRedriveRunningError(f"no server-side redrive of {self.name!r} is running")
            task_handle = running[0].task_handle
        response = self.env.api.call("cancel_message_move_task", self.name, TaskHandle=task_handle)
        moved = int(response.get("ApproximateNumberOfMessagesMoved", 0))
        logger.info("Cancelled the redrive of %s after %d message(s)", self.name, moved)
        return moved


def _push_back_instead(
    queue: _RedriveSource, reason: str, max_messages_per_second: int | None, wait_seconds: float
) -> RedriveTask:
    """``start_redrive()`` where SQS cannot move the messages: push them back from here."""
    logger.warning(
        "Redrive of %s: %s; pushing messages back to %s from this process instead",
        queue.name,
        reason,
        queue.upstream.name,
    )
    report = queue.push_back(
        wait_seconds=wait_seconds, max_messages_per_second=max_messages_per_second
    )
    failure = f"{report.failed} message(s) not accepted" if report.failed else None
    return RedriveTask(
        status="COMPLETED",
        source_arn=queue.arn,
        destination_arn=queue_arn(queue.upstream),
        max_messages_per_second=max_messages_per_second,
        moved=report.moved,
        to_move=report.moved + report.failed,
        failure_reason=failure,
        server_side=False,
    )
