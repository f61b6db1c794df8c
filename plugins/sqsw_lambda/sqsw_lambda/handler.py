"""The Lambda handler: an SQS event in, a partial batch response out.

``handler = sqsw_lambda.handler(sqs)`` in the function's module makes a
:class:`LambdaHandler`; Lambda calls it with the event its SQS event source
mapping built and the context object. Each record runs the processor
registered for it on the environment's queue named by ``eventSourceARN``;
the answer lists the records that did not succeed, as
``{"batchItemFailures": [{"itemIdentifier": MESSAGE_ID}, ...]}`` (turn on
``ReportBatchItemFailures`` on the mapping). The handler never raises for a
record: a record that cannot run is reported as failed with a log line, so
one bad message never sends the whole batch back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqsw_core.exceptions import ConfigurationError
from sqsw_core.limits import chunks
from sqsw_core.sqs_calls import change_visibility
from sqsw_lambda.batch_run import BatchRun
from sqsw_lambda.invocation import reset_lambda_context, set_lambda_context
from sqsw_lambda.records import BadRecordError, QueueArn, message_from_record

if TYPE_CHECKING:
    from sqsw_core.env import SQSEnv
    from sqsw_core.messages import Message
    from sqsw_core.queue import GenericQueue

__all__ = ["LambdaHandler", "NotAnSQSEventError", "handler"]

logger = logging.getLogger("sqsw.lambda")

#: Seconds of an invocation's remaining time under which no further job starts.
DEFAULT_TIME_MARGIN = 1.0


class NotAnSQSEventError(ConfigurationError):
    """The function was invoked with an event that is not an SQS event source batch."""


def handler(
    env: SQSEnv,
    *,
    change_visibility: bool = True,
    time_margin: float = DEFAULT_TIME_MARGIN,
    concurrency: int = 1,
) -> LambdaHandler:
    """The Lambda handler running ``env``'s registered jobs (see :class:`LambdaHandler`)."""
    return LambdaHandler(
        env,
        change_visibility=change_visibility,
        time_margin=time_margin,
        concurrency=concurrency,
    )


class LambdaHandler:
    """Runs the records of SQS events on the processors registered on ``env``'s queues.

    ``change_visibility``: give failed records their backoff delay (and keep
    FIFO groups in order) with ``ChangeMessageVisibility``, which needs
    ``sqs:ChangeMessageVisibility`` (and ``sqs:GetQueueUrl``, once per
    container) in the function's role. Off, failed records come back after the
    queue's visibility timeout, as Lambda does on its own.

    ``time_margin``: once the invocation has fewer seconds left than this, the
    records not yet run are reported as failed (visible again at once) rather
    than left to a timeout, which would deliver the whole batch again. The
    first record of an invocation always runs.

    ``concurrency``: jobs of a standard queue run on this many threads at once
    (for I/O-bound jobs; FIFO queues always run in order, one at a time).
    """

    def __init__(
        self,
        env: SQSEnv,
        *,
        change_visibility: bool = True,
        time_margin: float = DEFAULT_TIME_MARGIN,
        concurrency: int = 1,
    ) -> None:
        if time_margin < 0:
            raise ConfigurationError(f"time_margin must be >= 0 seconds, got {time_margin!r}")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError(f"concurrency must be an int >= 1, got {concurrency!r}")
        self.concurrency = concurrency
        self.env = env
        self.change_visibility = change_visibility
        self.time_margin = time_margin
        self._queues: dict[str, GenericQueue] = {}

    def __repr__(self) -> str:
        return f"<LambdaHandler {self.env!r}>"

    def __call__(self, event: Any, context: Any = None) -> dict[str, list[dict[str, str]]]:
        records = _records_of(event)
        unnamed = [r for r in records if not _message_id(r)]
        if unnamed:
            return _fail_all(records)
        token = set_lambda_context(context)
        try:
            failed: set[str] = set()
            for arn, batch in _by_source(records).items():
                failed |= self._run_source(arn, batch, _out_of_time(context, self.time_margin))
        finally:
            reset_lambda_context(token)
        ids = [_message_id(r) for r in records]
        return {
            "batchItemFailures": [{"itemIdentifier": i} for i in dict.fromkeys(ids) if i in failed]
        }

    # -- one queue's records -----------------------------------------------------

    def queue_for(self, arn: str) -> GenericQueue:
        """The environment's queue whose SQS name ends ``arn`` (cached per ARN)."""
        queue = self._queues.get(arn)
        if queue is not None:
            return queue
        name = QueueArn(arn).name
        for candidate in list(self.env.queues.values()):
            url = candidate.queue_url
            if candidate.get_sqs_queue_name() == name or (url and url.endswith(f"/{name}")):
                self._queues[arn] = candidate
                return candidate
        known = ", ".join(sorted(q.get_sqs_queue_name() for q in self.env.queues.values()))
        raise ConfigurationError(
            f"no queue of this environment is SQS queue {name!r} (from eventSourceARN "
            f"{arn}); register its processors in the function's module with "
            f"sqs.queue(...) and the same queue_prefix (queues known: {known or 'none'})"
        )

    def _run_source(
        self, arn: str, records: list[dict[str, Any]], out_of_time: Callable[[], bool]
    ) -> set[str]:
        """Run one queue's records; the message ids to report as failed."""
        try:
            queue = self.queue_for(arn)
        except (ConfigurationError, BadRecordError) as exc:
            logger.error("%d record(s) reported as failed: %s", len(records), exc)
            return {_message_id(r) for r in records}
        messages, bad = _messages(queue, records)
        if bad and queue.is_fifo:
            # Nothing after a bad record may run before it: the records after it come
            # back with it, after the queue's visibility timeout (none is changed).
            first = min(bad)
            run_now = [m for i, m in messages if i < first]
            held = [m for i, m in messages if i > first]
        else:
            run_now, held = [m for _, m in messages], []
        batch = BatchRun(queue, out_of_time, self.concurrency)
        batch.run(run_now)
        failed = [m for m in run_now + held if not batch.verdicts.succeeded(m)]
        if self.change_visibility:
            self._delay(queue, batch, failed)
        return {_message_id(records[i]) for i in bad} | {m.message_id for m in failed}

    def _delay(self, queue: GenericQueue, batch: BatchRun, failed: list[Message]) -> None:
        """Apply the delays the core chose for the failed messages (backoff, FIFO order)."""
        changes = [(m, d) for m in failed if (d := batch.verdicts.delay_of(m)) is not None]
        if queue.is_fifo:
            # Later records first: a group's head becomes visible last, never before the
            # records after it (servers that requeue what became visible would skip them).
            changes.reverse()
        for chunk in chunks(changes):
            change_visibility(queue, chunk)


def _records_of(event: Any) -> list[dict[str, Any]]:
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        raise NotAnSQSEventError(
            "the Lambda event has no Records list, so it is not from an SQS event source "
            "mapping; invoke this handler only through the queue's event source mapping"
        )
    return records


def _message_id(record: Any) -> str:
    value = record.get("messageId") if isinstance(record, dict) else None
    return value if isinstance(value, str) else ""


def _fail_all(records: list[Any]) -> dict[str, list[dict[str, str]]]:
    """A record without a message id cannot be reported alone: the whole batch goes back
    (an empty ``itemIdentifier`` makes Lambda treat the batch as failed), nothing ran."""
    logger.error(
        "%d of %d record(s) of the event have no messageId: none ran, and the whole batch "
        "is reported as failed",
        sum(1 for r in records if not _message_id(r)),
        len(records),
    )
    ids = dict.fromkeys(_message_id(r) for r in records)
    return {"batchItemFailures": [{"itemIdentifier": i} for i in ids]}


def _by_source(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Records by ``eventSourceARN``, each queue's in the event's order."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault(str(record.get("eventSourceARN", "")), []).append(record)
    return grouped


def _messages(
    queue: GenericQueue, records: list[dict[str, Any]]
) -> tuple[list[tuple[int, Message]], list[int]]:
    """The records as messages (with their index), and the indices of the bad ones (logged)."""
    messages: list[tuple[int, Message]] = []
    bad: list[int] = []
    for index, record in enumerate(records):
        try:
            messages.append((index, message_from_record(queue.name, record)))
        except BadRecordError as exc:
            logger.error(
                "Record %s of %s is not an SQS message as Lambda delivers it (%s); it is "
                "reported as failed",
                _message_id(record),
                queue.name,
                exc,
            )
            bad.append(index)
    return messages, bad


def _out_of_time(context: Any, margin: float) -> Callable[[], bool]:
    """Whether the invocation has less than ``margin`` seconds left (never, without a
    context that tells)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining) or margin <= 0:
        return lambda: False
    limit = margin * 1000
    return lambda: bool(remaining() < limit)
