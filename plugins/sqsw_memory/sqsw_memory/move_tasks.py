"""Message move tasks (DLQ redrive): StartMessageMoveTask and friends.

A task runs in a daemon thread: it takes visible messages from the source (a
dead-letter queue, oldest first) and stores them as new messages (new
MessageId, new SentTimestamp, as SQS redrive does) in the destination queue,
or, without a destination, in the queue each message was dead-lettered from.
``MaxNumberOfMessagesPerSecond`` paces it in real time; without it messages
move in batches as fast as possible. In-flight messages of the source stay.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from sqsw_memory.errors import SQSError
from sqsw_memory.ids import decode_task_handle, encode_task_handle
from sqsw_memory.message import Message
from sqsw_memory.queue import Queue
from sqsw_memory.registry import Registry
from sqsw_memory.validation import check_int, parse_arn

__all__ = ["MoveTask", "cancel_move_task", "list_move_tasks", "start_move_task"]

RUNNING, COMPLETED, CANCELLING, CANCELLED, FAILED = (
    "RUNNING",
    "COMPLETED",
    "CANCELLING",
    "CANCELLED",
    "FAILED",
)
_NO_SUCH_QUEUE = "AWS.SimpleQueueService.NonExistentQueue"


class MoveTask:
    """One message move task and its progress."""

    def __init__(
        self,
        source_arn: str,
        destination_arn: str | None,
        rate: int | None,
        to_move: int,
        started_ms: int,
    ) -> None:
        self.task_id = str(uuid.uuid4())
        self.source_arn = source_arn
        self.destination_arn = destination_arn
        self.rate = rate
        self.to_move = to_move
        self.started_ms = started_ms
        self.moved = 0
        self.status = RUNNING
        self.failure_reason: str | None = None
        self.cancel = threading.Event()
        self.handle = encode_task_handle(self.task_id, source_arn)

    def entry(self) -> dict[str, Any]:
        """The task as ``ListMessageMoveTasks`` shows it."""
        e: dict[str, Any] = {
            "SourceArn": self.source_arn,
            "Status": self.status,
            "ApproximateNumberOfMessagesMoved": self.moved,
            "ApproximateNumberOfMessagesToMove": self.to_move,
            "StartedTimestamp": self.started_ms,
        }
        if self.status == RUNNING:
            e["TaskHandle"] = self.handle
        if self.destination_arn is not None:
            e["DestinationArn"] = self.destination_arn
        if self.rate is not None:
            e["MaxNumberOfMessagesPerSecond"] = self.rate
        if self.failure_reason is not None:
            e["FailureReason"] = self.failure_reason
        return e

    def fail(self, reason: str) -> None:
        self.status = FAILED
        self.failure_reason = reason


def _source(registry: Registry, arn: str) -> Queue:
    if parse_arn(arn) is None:
        raise SQSError(
            "InvalidParameterValue",
            "You must use this format to specify the SourceArn: "
            "arn:<partition>:<service>:<region>:<account-id>:<resource-id>",
        )
    q = registry.find_by_arn(arn)
    if q is None:
        raise SQSError(
            "ResourceNotFoundException",
            "The resource that you specified for the SourceArn parameter doesn't exist.",
        )
    return q


def start_move_task(
    registry: Registry,
    source_arn: str,
    destination_arn: str | None,
    rate: int | None,
    wall_ms: int,
) -> MoveTask:
    """StartMessageMoveTask: validate, register and start a task."""
    source = _source(registry, source_arn)
    if not registry.is_dead_letter_queue(source_arn):
        raise SQSError(
            "InvalidParameterValue", "Source queue must be configured as a Dead Letter Queue."
        )
    if destination_arn is not None:
        destination = registry.find_by_arn(destination_arn)
        if destination is None:
            raise SQSError(
                "ResourceNotFoundException",
                "The resource that you specified for the DestinationArn parameter doesn't exist.",
            )
        if destination.fifo != source.fifo:
            raise SQSError(
                "InvalidParameterValue",
                "The destination queue must be the same type as the source queue.",
            )
    if rate is not None:
        check_int("MaxNumberOfMessagesPerSecond", rate, 1, 500, "Must be between 1 and 500.")
    with registry.lock:
        for task in registry.move_tasks:
            if task.source_arn == source_arn and task.status in (RUNNING, CANCELLING):
                raise SQSError(
                    "InvalidParameterValue",
                    "There is already a task running. Only one active task is allowed for a "
                    "source queue arn at a given time.",
                )
        to_move = int(
            source.get_attributes(["ApproximateNumberOfMessages"])["ApproximateNumberOfMessages"]
        )
        task = MoveTask(source_arn, destination_arn, rate, to_move, wall_ms)
        registry.move_tasks.append(task)
    thread = threading.Thread(
        target=_run, args=(registry, task), name=f"sqsw-memory-move-{task.task_id}", daemon=True
    )
    thread.start()
    return task


def list_move_tasks(registry: Registry, source_arn: str, max_results: int) -> list[MoveTask]:
    """ListMessageMoveTasks: the most recent tasks of a source queue, newest first."""
    _source(registry, source_arn)
    check_int("MaxResults", max_results, 1, 10)
    tasks = [t for t in registry.move_tasks if t.source_arn == source_arn]
    return tasks[::-1][:max_results]


def cancel_move_task(registry: Registry, handle: str) -> MoveTask:
    """CancelMessageMoveTask: ask a running task to stop."""
    try:
        task_id, source_arn = decode_task_handle(handle)
    except ValueError:
        raise SQSError("InvalidParameterValue", "Value for parameter TaskHandle is invalid.")
    _source(registry, source_arn)
    for task in registry.move_tasks:
        if task.task_id == task_id and task.source_arn == source_arn and task.status == RUNNING:
            task.status = CANCELLING
            task.cancel.set()
            return task
    raise SQSError("ResourceNotFoundException", "Task does not exist.")


def _deliver(registry: Registry, task: MoveTask, messages: list[Message]) -> list[Message]:
    """Store moved messages in their destination(s); return those that could not be."""
    targets: dict[str, list[Message]] = {}
    for m in messages:
        arn = task.destination_arn or m.dlq_source_arn or ""
        targets.setdefault(arn, []).append(m)
    undelivered: list[Message] = []
    for arn, batch in targets.items():
        destination = registry.find_by_arn(arn) if arn else None
        try:
            if destination is None:
                raise SQSError("QueueDoesNotExist", arn)
            destination.add([(destination.copy_in(m, False, None), -1) for m in batch], dedup=False)
        except SQSError:
            undelivered.extend(batch)
    return undelivered


def _run(registry: Registry, task: MoveTask) -> None:
    try:
        batch = 1 if task.rate else 100
        while not task.cancel.is_set():
            source = registry.find_by_arn(task.source_arn)
            if source is None:
                task.fail(_NO_SUCH_QUEUE)
                return
            if (
                task.destination_arn is not None
                and registry.find_by_arn(task.destination_arn) is None
            ):
                task.fail(_NO_SUCH_QUEUE)
                return
            try:
                messages = source.take_visible(batch)
            except SQSError:
                task.fail(_NO_SUCH_QUEUE)
                return
            if not messages:
                break
            undelivered = _deliver(registry, task, messages)
            task.moved += len(messages) - len(undelivered)
            if undelivered:
                source.put_back(undelivered)
                task.fail(_NO_SUCH_QUEUE)
                return
            if task.rate:
                task.cancel.wait(1.0 / task.rate)
    except Exception as exc:  # pragma: no cover - defensive: a task never kills the process
        task.fail(type(exc).__name__)
        return
    task.status = CANCELLED if task.cancel.is_set() else COMPLETED
