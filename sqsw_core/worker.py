"""Receiving, running and settling messages: the Worker and its batched Acker.

``process_batch`` uses a Worker directly; the concurrent engine (engine.py)
runs one Worker from many threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from sqsw_core.backoff_policies import BackoffPolicy, clamp_visibility
from sqsw_core.exceptions import JobError, QueueNotFoundError, RetryJob
from sqsw_core.limits import MAX_BATCH_ENTRIES
from sqsw_core.log_text import shorten
from sqsw_core.long_delays import DUE_AT_ATTR, hold_back_early, hold_back_if_early
from sqsw_core.messages import Message
from sqsw_core.processors import HandlerCall
from sqsw_core.results import BatchProcessingResult

if TYPE_CHECKING:
    from sqsw_core.batch_jobs import BatchProcessor
    from sqsw_core.heartbeat import VisibilityKeeper
    from sqsw_core.queue import GenericQueue

logger = logging.getLogger("sqsw.worker")

#: Sends of a delete entry that SQS failed on its side (not the sender's fault).
DELETE_ENTRY_ATTEMPTS = 3


#: What a message left undeleted means, for the log, when a job succeeded.
ACK_LEFT = "the job succeeded: expect duplicates"


def delete_messages(queue: GenericQueue, messages: list[Message], if_left: str = ACK_LEFT) -> int:
    """Delete up to 10 settled messages in one call; how many could not be deleted.

    Entries SQS failed on its own side (SenderFault false: InternalError,
    ServiceUnavailable...) are sent again, up to ``DELETE_ENTRY_ATTEMPTS``
    sends: each one not deleted would come back (for an ack: a succeeded job
    that would run a second time). What still fails is logged, with ``if_left``
    saying what a message left in the queue means.
    """
    failures = 0
    for attempt in range(1, DELETE_ENTRY_ATTEMPTS + 1):
        entries = [
            {"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(messages)
        ]
        try:
            response = queue.call("delete_message_batch", Entries=entries)
        except Exception as exc:
            logger.error(
                "Could not delete %d message(s) from %s; they will be delivered again after "
                "their visibility timeout (%s): %s",
                len(messages),
                queue.name,
                if_left,
                exc,
                exc_info=exc if not isinstance(exc, QueueNotFoundError) else None,
            )
            return failures + len(messages)
        again: list[Message] = []
        for failed in response.get("Failed", []):
            message = messages[int(failed["Id"])]
            if not failed.get("SenderFault", True) and attempt < DELETE_ENTRY_ATTEMPTS:
                again.append(message)
                continue
            failures += 1
            logger.warning(
                "Could not delete message %s from %s: %s (%s); %s",
                message.message_id,
                queue.name,
                failed.get("Code"),
                failed.get("Message"),
                if_left,
            )
        if not again:
            break
        messages = again
    return failures


class ReceivedMessage(Protocol):
    """What a visibility change needs of a message: its id (for logs) and receipt handle."""

    @property
    def message_id(self) -> str: ...

    @property
    def receipt_handle(self) -> str: ...


def change_visibility(
    queue: GenericQueue,
    changes: Sequence[tuple[ReceivedMessage, int]],
    refused_level: int = logging.WARNING,
) -> int:
    """Set the visibility timeout of up to 10 held messages in one call; how many changed.

    Failures are logged: the whole call at ERROR, entries SQS refused (a handle no
    longer valid, say) at ``refused_level``.
    """
    entries = [
        {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": timeout}
        for i, (m, timeout) in enumerate(changes)
    ]
    try:
        response = queue.call("change_message_visibility_batch", Entries=entries)
    except Exception as exc:
        logger.error(
            "Could not change the visibility of %d message(s) on %s; they become visible "
            "again after the queue's visibility timeout: %s",
            len(changes),
            queue.name,
            exc,
            exc_info=exc if not isinstance(exc, QueueNotFoundError) else None,
        )
        return 0
    refused = response.get("Failed", [])
    for failed in refused:
        message = changes[int(failed["Id"])][0]
        logger.log(
            refused_level,
            "Could not change the visibility of message %s on %s: %s (%s)",
            message.message_id,
            queue.name,
            failed.get("Code"),
            failed.get("Message"),
        )
    return len(changes) - len(refused)


class Acker:
    """Deletes succeeded messages and delays failed ones, 10 per SQS call.

    Entries are flushed when 10 are pending or when the oldest has waited
    ``max_delay`` seconds (a background thread sees to that), so a finished
    job is never held back by the jobs after it.
    """

    def __init__(
        self,
        queue: GenericQueue,
        max_delay: float = 0.1,
        visibility_lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        self.queue = queue
        self.max_delay = max_delay
        # Held while visibility changes are sent, shared with the heartbeat.
        self.visibility_lock = visibility_lock or threading.Lock()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._deletes: list[Message] = []
        self._changes: list[tuple[Message, int]] = []
        self._oldest: float | None = None
        self._thread: threading.Thread | None = None
        self._idle = False
        self._closed = False
        self.failed_acks = 0

    def ack(self, message: Message) -> None:
        self._add(self._deletes, message)

    def retry(self, message: Message, visibility_timeout: int) -> None:
        self._add(self._changes, (message, visibility_timeout))

    def _add(self, pending: list[Any], item: Any) -> None:
        # The plain lock, not the Condition: this runs once per message.
        # (flush() empties the pending lists in place, never replaces them.)
        with self._lock:
            pending.append(item)
            if self._oldest is None:
                self._oldest = time.monotonic()
                if self._thread is None:
                    self._start_thread()
                elif self._idle:
                    # Wake the flusher only from its untimed wait: a thread
                    # switch per batch would cost more than the batching saves.
                    self._cond.notify()
            full = len(pending) >= MAX_BATCH_ENTRIES
        if full:
            self.flush(full_only=True)

    def _start_thread(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"sqsw-acker-{self.queue.name}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._oldest is None and not self._closed:
                    self._idle = True
                    self._cond.wait()
                    self._idle = False
                if self._closed:
                    return
                assert self._oldest is not None
                wait = self._oldest + self.max_delay - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
            self.flush()

    def flush(self, full_only: bool = False) -> None:
        """Send pending deletes and visibility changes now.

        ``full_only`` sends only complete batches of 10 and leaves the rest for
        the timer, so concurrent workers do not cause many small requests.
        """
        while True:
            with self._cond:
                if full_only:
                    deletes = self._take(self._deletes, MAX_BATCH_ENTRIES)
                    changes = self._take(self._changes, MAX_BATCH_ENTRIES)
                else:
                    deletes = self._take(self._deletes, 1)
                    changes = self._take(self._changes, 1)
                if not self._deletes and not self._changes:
                    self._oldest = None
            if not deletes and not changes:
                return
            if deletes:
                self._send_deletes(deletes)
            if changes:
                self._send_changes(changes)

    def _take(self, pending: list[Any], at_least: int) -> list[Any]:
        """Remove and return up to 10 entries of ``pending``, if it holds ``at_least``."""
        if len(pending) < at_least:
            return []
        taken = pending[:MAX_BATCH_ENTRIES]
        del pending[:MAX_BATCH_ENTRIES]
        return taken

    def _send_deletes(self, messages: list[Message]) -> None:
        # Not ``self.failed_acks += delete_messages(...)``: that reads the counter
        # before the (slow) call, and concurrent flushes would overwrite each other.
        failed = delete_messages(self.queue, messages)
        if failed:
            with self._lock:
                self.failed_acks += failed

    def _send_changes(self, changes: list[tuple[Message, int]]) -> None:
        with self.visibility_lock:
            change_visibility(self.queue, changes)

    def close(self) -> None:
        """Flush and stop the background thread."""
        self.flush()
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class Worker:
    """Receives, runs and settles the messages of one queue (thread-safe)."""

    def __init__(
        self,
        queue: GenericQueue,
        acker: Acker | None = None,
        keeper: VisibilityKeeper | None = None,
    ) -> None:
        self.queue = queue
        self.acker = acker or Acker(queue)
        self.keeper = keeper
        self._failure = threading.local()

    def receive(
        self, wait_seconds: float = 0, max_messages: int = MAX_BATCH_ENTRIES
    ) -> list[Message]:
        """Receive up to ``max_messages`` (at most 10) messages."""
        response = self.queue.call(
            "receive_message",
            MaxNumberOfMessages=max(1, min(max_messages, MAX_BATCH_ENTRIES)),
            WaitTimeSeconds=int(wait_seconds),
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        now = time.monotonic()
        name = self.queue.name
        return [Message.from_sqs(name, raw, now) for raw in response.get("Messages", ())]

    def retry_delay(self, message: Message, policy: BackoffPolicy | None) -> int | None:
        """Seconds until a failed ``message`` is delivered again, from the backoff policy.

        ``None`` when the policy itself failed: the message is then left hidden until
        its visibility timeout runs out, never made visible at once by mistake.
        """
        policy = policy or self.queue.backoff_policy
        try:
            return clamp_visibility(policy.get_visibility_timeout(message))
        except Exception:
            logger.exception(
                "Backoff policy %r failed for message %s on %s; it is delivered again when "
                "its visibility timeout runs out",
                policy,
                message.message_id,
                self.queue.name,
            )
            return None

    def process_message(self, message: Message) -> bool | None:
        """Run one message and settle it: ack on success, else retry after the backoff.

        ``None``: not due yet (``SqswDueAt``): sent on to its due time, neither run
        nor counted. Whatever the job raises, ``BaseException`` included, settles
        the message as a failure first; ``KeyboardInterrupt`` and ``SystemExit``
        are raised again after that.
        """
        queue = self.queue
        ok: bool | None = False
        policy: BackoffPolicy | None = None
        asked = False
        try:
            if DUE_AT_ATTR in message.message_attributes and hold_back_if_early(self, message):
                ok = None
                return None
            queue.handle_message(message)
            ok = True
        except RetryJob as retry:
            policy = retry.backoff_policy
            asked = True
            logger.info(
                "Retrying %s.%s (message %s) as the job asked",
                queue.name,
                shorten(message.job_name),
                message.message_id,
                extra=self._log_extra(message),
            )
        except JobError as exc:
            logger.error(
                "Cannot run message %s from %s: %s",
                message.message_id,
                queue.name,
                exc,
                extra=self._log_extra(message),
            )
        except Exception:
            logger.exception(
                "Error while processing %s.%s (message %s, delivery %d)",
                queue.name,
                shorten(message.job_name),
                message.message_id,
                message.receive_count,
                extra=self._log_extra(message),
            )
        except BaseException as exc:
            logger.error(
                "Job %s.%s (message %s, delivery %d) raised %s; it is retried after its backoff",
                queue.name,
                shorten(message.job_name),
                message.message_id,
                message.receive_count,
                type(exc).__name__,
                exc_info=True,
                extra=self._log_extra(message),
            )
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
        finally:
            if ok is not None:
                self.settle(message, ok, policy, asked)
        return ok

    def settle(
        self,
        message: Message,
        ok: bool,
        policy: BackoffPolicy | None = None,
        asked: bool = False,
    ) -> None:
        """The one place a run message is settled: ack it, or retry it after the backoff."""
        if self.keeper is not None:
            self.keeper.forget(message)
        if ok:
            self.acker.ack(message)
            return
        delay = self.retry_delay(message, policy)
        failure = self._failure
        if delay is None:  # left to its visibility timeout
            failure.delay = int(self.queue.attributes.get("VisibilityTimeout", "30"))
        else:
            failure.delay = delay
        failure.asked = asked
        if delay is not None:
            self.acker.retry(message, delay)

    def _log_extra(self, message: Message) -> dict[str, Any]:
        return {"queue_name": self.queue.name, "message_id": message.message_id}

    def last_retry_delay(self) -> int:
        """The retry delay of the last message that failed in this thread."""
        return int(getattr(self._failure, "delay", 0))

    def last_failure_asked(self) -> bool:
        """Whether the last job that did not succeed in this thread raised ``RetryJob``."""
        return bool(getattr(self._failure, "asked", False))

    def process_messages(self, messages: list[Message]) -> BatchProcessingResult:
        """Run and settle received messages in order (FIFO groups stop at a failure).

        If a job raises ``KeyboardInterrupt`` or ``SystemExit`` (settled itself),
        the messages after it go back to the queue unrun before it propagates.
        """
        messages = hold_back_early(self, messages)  # not due yet: neither run nor counted
        result = BatchProcessingResult(self.queue.name)
        unrun = {m.receipt_handle: m for m in messages}
        try:
            self._run_messages(messages, result, unrun)
        except BaseException as exc:
            self._give_back(list(unrun.values()), exc)
            raise
        return result

    def _run_messages(
        self,
        messages: list[Message],
        result: BatchProcessingResult,
        unrun: dict[str, Message],
    ) -> None:
        succeeded, failed = result.succeeded, result.failed
        process_message = self.process_message
        if not self.queue.is_fifo:
            batch_jobs = self.batch_job_names()
            gathered: dict[str, list[Message]] = {}
            for message in messages:
                name = message.job_name if batch_jobs else None
                if name is not None and name in batch_jobs:
                    gathered.setdefault(name, []).append(message)
                    continue
                del unrun[message.receipt_handle]
                if process_message(message):
                    succeeded.append(message)
                else:
                    failed.append(message)
            for batch in gathered.values():
                for message in batch:
                    del unrun[message.receipt_handle]
                for message, ok in zip(batch, self.process_job_batch(batch), strict=True):
                    if ok is not None:
                        (succeeded if ok else failed).append(message)
            return
        blocked_groups: dict[str | None, int] = {}
        for message in messages:
            del unrun[message.receipt_handle]
            group = message.group_id
            if group in blocked_groups:
                # A FIFO group stops at its first failure: later messages of the
                # group go back untouched, visible just after the failed one so
                # they run after it, in order (servers that requeue a message at
                # the end of its group when it becomes visible agree too).
                self.acker.retry(message, blocked_groups[group] + 1)
                continue
            outcome = process_message(message)
            if outcome:
                succeeded.append(message)
            elif outcome is False:
                failed.append(message)
                blocked_groups[group] = self.last_retry_delay()

    def _give_back(self, messages: list[Message], exc: BaseException) -> None:
        """Return messages that never ran, visible at once (FIFO: after the failed one)."""
        if not messages:
            return
        logger.warning(
            "%s stopped a batch of %s: %d message(s) that did not run go back to the queue",
            type(exc).__name__,
            self.queue.name,
            len(messages),
        )
        delay = self.last_retry_delay() + 1 if self.queue.is_fifo else 0
        for message in messages:
            if self.keeper is not None:
                self.keeper.forget(message)
            self.acker.retry(message, delay)
        self.acker.flush()

    def batch_job_names(self) -> frozenset[str]:
        """Job names of this queue handled by batch processors."""
        return frozenset(getattr(self.queue, "batch_processors", ()))

    def process_job_batch(self, messages: list[Message]) -> list[bool | None]:
        """Run messages of one batch job in one call; settle each. Success per message
        (``None``: not due yet, sent on to its due time).

        A message that cannot be decoded, or whose due time is bad, fails alone;
        the others still run.
        """
        queue = self.queue
        processor: BatchProcessor = queue.batch_processors[messages[0].job_name]  # type: ignore[attr-defined]
        outcome: dict[int, bool | None] = {}
        runnable: list[int] = []
        jobs = []
        for index, message in enumerate(messages):
            try:
                if DUE_AT_ATTR in message.message_attributes and hold_back_if_early(self, message):
                    outcome[index] = None  # not due yet: sent on, neither run nor counted
                    continue
                jobs.append(queue.env.decode_job(message))
                runnable.append(index)
            except JobError as exc:
                logger.error(
                    "Cannot run message %s from %s: %s",
                    message.message_id,
                    queue.name,
                    exc,
                    extra=self._log_extra(message),
                )
                outcome[index] = False
        policy: BackoffPolicy | None = None
        asked = False
        failed_jobs: set[int] = set()
        interrupted: BaseException | None = None
        job_name = shorten(processor.job_name)
        if jobs:
            call = HandlerCall(queue, [messages[i] for i in runnable], processor.job_name)
            try:
                with queue.env.processor_class.handling(call):
                    failed_jobs = call.failed = processor.run(jobs)
            except RetryJob as retry:
                policy = retry.backoff_policy
                asked = True
                failed_jobs = set(range(len(jobs)))
                logger.info(
                    "Retrying a batch of %d %s.%s jobs as asked", len(jobs), queue.name, job_name
                )
            except Exception:
                failed_jobs = set(range(len(jobs)))
                logger.exception(
                    "Error while processing a batch of %d %s.%s jobs; retrying all of them",
                    len(jobs),
                    queue.name,
                    job_name,
                )
            except BaseException as exc:
                failed_jobs = set(range(len(jobs)))
                logger.error(
                    "A batch of %d %s.%s jobs raised %s; retrying all of them after the backoff",
                    len(jobs),
                    queue.name,
                    job_name,
                    type(exc).__name__,
                    exc_info=True,
                )
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    interrupted = exc
            if failed_jobs and len(failed_jobs) < len(jobs):
                logger.error(
                    "%d of %d %s.%s jobs of a batch failed; retrying those only",
                    len(failed_jobs),
                    len(jobs),
                    queue.name,
                    job_name,
                )
        for position, index in enumerate(runnable):
            outcome[index] = position not in failed_jobs
        results = []
        for index, message in enumerate(messages):
            ok = outcome[index]
            if ok is not None:
                self.settle(message, ok, policy, asked)
            results.append(ok)
        self._failure.asked = asked
        if interrupted is not None:
            raise interrupted
        return results

    def process_batch(self, wait_seconds: float = 0) -> BatchProcessingResult:
        """Receive one batch (up to 10 messages), run it, and settle every message."""
        result = self.process_messages(self.receive(wait_seconds))
        self.acker.flush()
        return result
