"""Running received messages' jobs: the :class:`JobRunner`.

``process_batch`` uses a JobRunner directly; the engine's job threads share
one. Every run ends in :meth:`JobRunner.settle` (from a ``finally``), which
hands the message to the :class:`~sqsw_core.settling.Settler`: ack on
success, retry after the backoff on anything raised, ``BaseException``
included.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from sqsw_core.early_messages import hold_back_early, hold_back_if_early
from sqsw_core.exceptions import JobError, RetryJob
from sqsw_core.job_loop import JOB_LOOP
from sqsw_core.limits import MAX_BATCH_ENTRIES
from sqsw_core.log_text import log_extra, shorten
from sqsw_core.long_delays import DUE_AT_ATTR
from sqsw_core.messages import Message
from sqsw_core.results import NOT_DUE, SUCCEEDED, BatchProcessingResult, Outcome
from sqsw_core.settling import Settler
from sqsw_core.sqs_calls import receive_messages

if TYPE_CHECKING:
    from sqsw_core.backoff_policies import BackoffPolicy
    from sqsw_core.bulk_jobs import BulkProcessor
    from sqsw_core.queue_handle import QueueHandle

logger = logging.getLogger("sqsw.jobs")

#: The receive of a session in this process that answers with rows, not response dicts
#: (the in-memory SQS's ``receive_message_rows``; see :meth:`JobRunner.receive`).
ROWS_RECEIVE = "receive_message_rows"

#: run_message's answers that carry no failure (shared, not built per message).
_SUCCEEDED: tuple[Outcome, None] = (SUCCEEDED, None)
_NOT_DUE: tuple[Outcome, None] = (NOT_DUE, None)


__all__ = ["BulkJobFailure", "JobRunner", "log_extra", "log_job_failure", "result_add"]


def log_job_failure(queue: QueueHandle, message: Message, exc: BaseException) -> None:
    """Log why the job of ``message`` did not succeed (it is retried after the backoff)."""
    job = shorten(message.job_name)
    policy = getattr(exc, "backoff_policy", None) if isinstance(exc, RetryJob) else None
    extra = log_extra(queue, message, policy)
    if isinstance(exc, RetryJob):
        logger.info(
            "Retrying %s.%s (message %s) as the job asked",
            queue.name,
            job,
            message.message_id,
            extra=extra,
        )
    elif isinstance(exc, JobError):
        logger.error(
            "Cannot run message %s from %s: %s", message.message_id, queue.name, exc, extra=extra
        )
    elif isinstance(exc, Exception):
        logger.exception(
            "Error while processing %s.%s (message %s, delivery %d)",
            queue.name,
            job,
            message.message_id,
            message.receive_count,
            extra=extra,
        )
    else:
        logger.error(
            "Job %s.%s (message %s, delivery %d) raised %s; it is retried after its backoff",
            queue.name,
            job,
            message.message_id,
            message.receive_count,
            type(exc).__name__,
            exc_info=True,
            extra=extra,
        )


class JobRunner:
    """Receives, runs and settles the messages of one queue (thread-safe)."""

    def __init__(self, queue: QueueHandle, settler: Settler | None = None) -> None:
        self.queue = queue
        self.settler = settler or Settler(queue)
        #: Whether the session's client has ROWS_RECEIVE (None: not asked yet).
        self._rows: bool | None = None

    @property
    def acker(self) -> Any:
        """The settler's batched acker (``flush()``, ``failed_acks``)."""
        return self.settler.acker

    def receive(self, wait_seconds: float = 0, max_messages: int = 10) -> list[Message]:
        """Receive up to ``max_messages`` (at most 10) messages.

        On a session in this process whose client has ``receive_message_rows``
        (the in-memory SQS) that receive is used: the same receive, its messages
        as rows instead of response dicts built and read again.
        """
        if self._rows or (self._rows is None and self.queue.process_local):
            messages = self._receive_rows(wait_seconds, max_messages)
            if messages is not None:
                return messages
        return receive_messages(self.queue, wait_seconds, max_messages)

    def _receive_rows(self, wait_seconds: float, max_messages: int) -> list[Message] | None:
        """:meth:`receive` by ROWS_RECEIVE; ``None`` if the client has none (a client
        wrapped to watch its SQS calls, say): the SQS operation is used from then on."""
        queue = self.queue
        try:
            response = queue.call(
                ROWS_RECEIVE,
                MaxNumberOfMessages=max(1, min(max_messages, MAX_BATCH_ENTRIES)),
                WaitTimeSeconds=int(wait_seconds),
            )
        except AttributeError:
            self._rows = False
            return None
        self._rows = True
        return Message.from_rows(queue.name, response["Rows"], time.monotonic())

    # -- one message -------------------------------------------------------------

    def run_message(self, message: Message) -> tuple[Outcome, BaseException | None]:
        """Run one message's job and settle it: ack on success, else retry after the backoff.

        Never raises. Returns the outcome, and the ``KeyboardInterrupt`` or
        ``SystemExit`` the job raised (else ``None``) for the caller to raise
        again when it means to stop: the message is settled as a failure first,
        like anything else a job raises. ``NOT_DUE``: not due yet (``SqswDueAt``),
        sent on to its due time, neither run nor counted.
        """
        try:
            if DUE_AT_ATTR in message.message_attributes and hold_back_if_early(
                self.settler, message
            ):
                return _NOT_DUE
            job = self.queue.handle_message(message)
            if job is not None and inspect.isawaitable(job):  # an async job: run it, wait
                JOB_LOOP.run(job)
        except BaseException as exc:
            return self._failed(message, exc)
        self.settler.ack(message)
        return _SUCCEEDED

    def _failed(self, message: Message, exc: BaseException) -> tuple[Outcome, BaseException | None]:
        log_job_failure(self.queue, message, exc)
        interrupt = exc if isinstance(exc, KeyboardInterrupt | SystemExit) else None
        return self.settle(message, exc), interrupt

    def start_message(
        self, message: Message
    ) -> tuple[Outcome, BaseException | None] | Awaitable[Any]:
        """:meth:`run_message` that does not run an async job.

        A sync job runs here and its outcome is returned. For an async job its
        awaitable is returned, not started: the caller runs it (on the job loop)
        and settles the message with :meth:`finish_async` when it has ended.
        """
        try:
            if DUE_AT_ATTR in message.message_attributes and hold_back_if_early(
                self.settler, message
            ):
                return _NOT_DUE
            job = self.queue.handle_message(message)
        except BaseException as exc:
            return self._failed(message, exc)
        if job is None or not inspect.isawaitable(job):
            self.settler.ack(message)
            return _SUCCEEDED
        return job

    def finish_async(self, message: Message, failure: BaseException | None) -> Outcome:
        """Settle the message of an async job that ended, raising ``failure`` (``None``:
        it succeeded); its outcome."""
        if failure is None:
            self.settler.ack(message)
            return SUCCEEDED
        return self._failed(message, failure)[0]

    def process_message(self, message: Message) -> bool | None:
        """Run and settle one message: ``True`` (succeeded), ``False`` or ``None`` (not
        due yet). A job's ``KeyboardInterrupt`` or ``SystemExit`` goes on once settled."""
        outcome, interrupt = self.run_message(message)
        if interrupt is not None:
            raise interrupt
        return outcome.ok

    def settle(self, message: Message, failure: BaseException | None) -> Outcome:
        """Settle a message whose job ran: ack it (``failure`` None) or retry it after
        the backoff (``RetryJob``'s own policy, if it gave one)."""
        if failure is None:
            self.settler.ack(message)
            return SUCCEEDED
        policy: BackoffPolicy | None = None
        status = Outcome.FAILED
        if isinstance(failure, RetryJob):
            policy, status = failure.backoff_policy, Outcome.RETRIED
        return Outcome(status, self.settler.retry(message, policy))

    # -- a received batch --------------------------------------------------------

    def process_messages(self, messages: list[Message]) -> BatchProcessingResult:
        """Run and settle received messages in order (FIFO groups stop at a failure).

        If a job raises ``KeyboardInterrupt`` or ``SystemExit`` (settled itself),
        the messages after it go back to the queue unrun before it propagates.
        """
        messages = hold_back_early(self.settler, messages)  # not due: neither run nor counted
        result = BatchProcessingResult(self.queue.name)
        fifo = self.queue.is_fifo
        blocked_groups: dict[str | None, int] = {}
        bulk_jobs = self.queue.bulk_processors if not fifo else {}
        gathered: dict[str, list[Message]] = {}
        run_message, succeeded = self.run_message, result.succeeded.append
        if not fifo and not bulk_jobs:  # the usual batch, its messages run one by one
            for position, message in enumerate(messages):
                outcome, interrupt = run_message(message)
                if outcome is SUCCEEDED:
                    succeeded(message)
                    continue
                if outcome.ok is False:
                    result.failed.append(message)
                if interrupt is not None:
                    self._give_back(messages[position + 1 :], interrupt, 0)
                    raise interrupt
            return result
        for position, message in enumerate(messages):
            name = message.job_name if bulk_jobs else None
            if name is not None and name in bulk_jobs:
                gathered.setdefault(name, []).append(message)
                continue
            group = message.group_id if fifo else None
            if fifo and group in blocked_groups:
                # A FIFO group stops at its first failure: later messages of the
                # group go back untouched, visible just after the failed one so
                # they run after it, in order (servers that requeue a message at
                # the end of its group when it becomes visible agree too).
                self.settler.delay(message, blocked_groups[group] + 1)
                continue
            outcome, interrupt = run_message(message)
            if outcome is SUCCEEDED:
                succeeded(message)
                continue
            if outcome.ok is False:
                result.failed.append(message)
                if fifo:
                    blocked_groups[group] = outcome.retry_delay
            if interrupt is not None:
                rest = messages[position + 1 :] + [m for g in gathered.values() for m in g]
                self._give_back(rest, interrupt, outcome.retry_delay + 1 if fifo else 0)
                raise interrupt
        groups = list(gathered.values())
        for index, group_messages in enumerate(groups):
            outcomes, interrupt = self.run_bulk(group_messages)
            for message, outcome in zip(group_messages, outcomes, strict=True):
                result_add(result, message, outcome)
            if interrupt is not None:
                self._give_back([m for rest in groups[index + 1 :] for m in rest], interrupt, 0)
                raise interrupt
        return result

    def _give_back(self, messages: list[Message], exc: BaseException, delay: int) -> None:
        """Return messages that never ran, visible after ``delay`` (FIFO: after the failed one)."""
        if not messages:
            return
        logger.warning(
            "%s stopped a batch of %s: %d message(s) that did not run go back to the queue",
            type(exc).__name__,
            self.queue.name,
            len(messages),
            extra=self._batch_extra(messages),
        )
        for message in messages:
            self.settler.delay(message, delay)
        self.settler.flush()

    def _batch_extra(self, messages: list[Message]) -> dict[str, Any]:
        """The ``extra`` of a record about several messages: the four job fields (the job
        name if they share one, ``message_id`` ``None``) and every ``message_ids``."""
        names = {m.job_name for m in messages}
        extra = log_extra(self.queue, messages[0] if len(names) == 1 else None)
        extra["message_id"] = None
        extra["message_ids"] = [m.message_id for m in messages]
        return extra

    def process_batch(self, wait_seconds: float = 0) -> BatchProcessingResult:
        """Receive one batch (up to 10 messages), run it, and settle every message."""
        result = self.process_messages(self.receive(wait_seconds))
        self.settler.flush()
        return result

    # -- bulk jobs ---------------------------------------------------------------

    def run_bulk(self, messages: list[Message]) -> tuple[list[Outcome], BaseException | None]:
        """Run messages of one bulk job in one call; settle each; one outcome each.

        A message that cannot be decoded, or whose due time is bad, fails alone;
        the others still run. Never raises: a ``KeyboardInterrupt`` or
        ``SystemExit`` from the function is returned, once every message is
        settled, for the caller to raise again (as :meth:`run_message` does).
        """
        processor = self.queue.bulk_processors[messages[0].job_name or ""]
        outcomes: dict[int, Outcome] = {}
        runnable: list[int] = []
        jobs = []
        for index, message in enumerate(messages):
            try:
                if DUE_AT_ATTR in message.message_attributes and hold_back_if_early(
                    self.settler, message
                ):
                    outcomes[index] = NOT_DUE
                    continue
                jobs.append(self.queue.decode_job(message))
                runnable.append(index)
            except JobError as exc:
                log_job_failure(self.queue, message, exc)
                outcomes[index] = self.settle(message, exc)
        failure, failed_jobs = self._call_bulk(processor, [messages[i] for i in runnable], jobs)
        for position, index in enumerate(runnable):
            error = failure if position in failed_jobs else None
            outcomes[index] = self.settle(messages[index], error)
        interrupt = failure if isinstance(failure, KeyboardInterrupt | SystemExit) else None
        return [outcomes[i] for i in range(len(messages))], interrupt

    def _call_bulk(
        self, processor: BulkProcessor, messages: list[Message], jobs: list[Any]
    ) -> tuple[BaseException | None, set[int]]:
        """Call a bulk job's function; what failed it (if anything) and the failed indices."""
        if not jobs:
            return None, set()
        queue = self.queue
        job_name = shorten(processor.job_name)
        try:
            failed = queue.run_bulk_job(processor, messages, jobs)
        except RetryJob as retry:
            logger.info(
                "Retrying a bulk job of %d %s.%s jobs as asked",
                len(jobs),
                queue.name,
                job_name,
                extra=self._batch_extra(messages),
            )
            return retry, set(range(len(jobs)))
        except BaseException as exc:
            self._log_bulk_failure(messages, job_name, exc)
            return exc, set(range(len(jobs)))
        if failed and len(failed) < len(jobs):
            logger.error(
                "%d of %d %s.%s jobs of a bulk job failed; retrying those only",
                len(failed),
                len(jobs),
                queue.name,
                job_name,
                extra=self._batch_extra([messages[i] for i in sorted(failed)]),
            )
        if failed:
            return BulkJobFailure(), failed
        return None, set()

    def _log_bulk_failure(self, messages: list[Message], job_name: str, exc: BaseException) -> None:
        extra = self._batch_extra(messages)
        if isinstance(exc, Exception):
            logger.exception(
                "Error while processing a bulk job of %d %s.%s jobs; retrying all of them",
                len(messages),
                self.queue.name,
                job_name,
                extra=extra,
            )
        else:
            logger.error(
                "A bulk job of %d %s.%s jobs raised %s; retrying all of them after the backoff",
                len(messages),
                self.queue.name,
                job_name,
                type(exc).__name__,
                exc_info=True,
                extra=extra,
            )


def result_add(result: BatchProcessingResult, message: Message, outcome: Outcome) -> None:
    """Count a settled message in a batch's result (not-due messages are not counted)."""
    ok = outcome.ok
    if ok:
        result.succeeded.append(message)
    elif ok is False:
        result.failed.append(message)


class BulkJobFailure(Exception):
    """Stands for the jobs a bulk job's function reported as failed without raising."""
