"""``DeadLetterQueue``: put the messages of a dead-letter queue back where they failed.

::

    foo = env.queue("foo")
    foo_dead = env.queue("foo_dead", DeadLetterQueue.maker(foo))
    foo_dead.process_queue(shutdown_policy=IdleShutdown(10))

Every message is copied to the upstream queue (body, every message attribute,
FIFO group) and deleted from the dead-letter queue only once the upstream
queue accepted the copy. A filter selects which messages go back; the others
stay. ``start_redrive()`` asks SQS to do the move itself (standard queues):
that is :class:`~sqsw_deadletter.server_redrive.ServerSideRedrive`, mixed in here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from sqsw_core.backoff_policies import ConstantBackoff, clamp_visibility
from sqsw_core.exceptions import ConfigurationError, RetryJob
from sqsw_core.limits import MAX_BATCH_ENTRIES, MAX_DELAY_SECONDS
from sqsw_core.messages import Message
from sqsw_core.queue import GenericQueue
from sqsw_core.results import BatchProcessingResult, EngineStats
from sqsw_core.sending import add_raw_job, message_size, size_chunks
from sqsw_core.settling import Settler
from sqsw_core.shutdown_policies import NEVER_SHUTDOWN, ShutdownPolicy
from sqsw_core.sqs_calls import receive_messages
from sqsw_deadletter.exceptions import PushBackError
from sqsw_deadletter.push_back import push_back_entry
from sqsw_deadletter.selection import (
    Predicate,
    RedriveCandidate,
    Selector,
    as_predicate,
    partition,
)
from sqsw_deadletter.server_redrive import MAX_MOVE_RATE as MAX_MOVE_RATE
from sqsw_deadletter.server_redrive import ServerSideRedrive, queue_arn

if TYPE_CHECKING:
    from sqsw_core.backoff_policies import BackoffPolicy
    from sqsw_core.env import SQSEnv

__all__ = ["DeadLetterQueue", "RedriveReport"]

logger = logging.getLogger("sqsw.deadletter")


@dataclass
class RedriveReport:
    """What a push-back did: messages moved, left in place, and not accepted upstream."""

    moved: int = 0
    skipped: int = 0
    failed: int = 0

    def __str__(self) -> str:
        return f"{self.moved} moved, {self.skipped} not selected, {self.failed} failed"


@dataclass
class _PushBackRun:
    """One push-back pass: the state that spans its batches."""

    queue: DeadLetterQueue
    select: Predicate | None
    max_messages_per_second: float | None = None
    report: RedriveReport = field(default_factory=RedriveReport)
    skipped: dict[str, Message] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    received: int = 0
    #: Messages of the last batch not selected and not seen before in this run.
    newly_skipped: int = 0
    _ready_at: float = 0.0

    def batch_size(self, limit: int | None = None) -> int:
        size = MAX_BATCH_ENTRIES
        if self.max_messages_per_second is not None:
            size = max(1, min(size, int(self.max_messages_per_second)))
        if limit is not None:
            size = max(1, min(size, limit))
        return size

    def throttle(self, pushed: int) -> None:
        rate = self.max_messages_per_second
        if rate is None or pushed == 0:
            return
        now = time.monotonic()
        self._ready_at = max(self._ready_at, now) + pushed / rate
        if self._ready_at > now:
            time.sleep(self._ready_at - now)

    def batch(self, wait_seconds: float, limit: int | None = None) -> BatchProcessingResult:
        """Receive one batch and push back what is selected; skipped messages don't count."""
        queue = self.queue
        result = BatchProcessingResult(queue.name)
        messages = receive_messages(queue, wait_seconds, self.batch_size(limit))
        self.received = len(messages)
        self.newly_skipped = 0
        if not messages:
            return result
        selected, skipped, held = partition(messages, self.select, queue.is_fifo)
        known = self.held.union(self.skipped)
        self.newly_skipped = sum(m.message_id not in known for m in (*skipped, *held))
        if skipped:
            # Hidden for the rest of the run so the run gets past them; released at its end.
            for message in skipped:
                self.skipped[message.message_id] = message
            queue.settler.release(skipped, queue.skip_visibility_timeout)
        if held:
            self.held.update(m.message_id for m in held)
            queue.settler.release(held)
        if selected:
            accepted, refused = queue._push(selected)
            queue._discard(accepted)
            queue._retry(refused)
            for message in accepted:
                result.update_with_message(message, True)
            for message in refused:
                result.update_with_message(message, False)
                self.failed.add(message.message_id)
            self.report.moved += len(accepted)
            self.throttle(len(selected))
        self.report.skipped = len(self.held.union(self.skipped))
        self.report.failed = len(self.failed)
        return result

    def finish(self) -> None:
        """Make the messages that were not selected visible again."""
        if self.skipped:
            self.queue.settler.release(self.skipped.values())
            self.skipped.clear()


class DeadLetterQueue(ServerSideRedrive, GenericQueue):
    """A dead-letter queue whose processing pushes each message back upstream.

    Options (``DeadLetterQueue.maker(upstream, ...)`` or
    ``sqs.queue(name, "deadletter", upstream=..., ...)``):

    ``upstream`` / ``upstream_queue``
        The queue messages go back to: a queue object or a queue name.
    ``delay_seconds``
        Delay of each copy on a standard upstream queue (default 1 second, as
        sqs-workers did). FIFO queues have no per-message delay.
    ``filter``
        A :class:`~sqsw_deadletter.RedriveFilter` or a ``Message -> bool``:
        only selected messages go back; the others stay in this queue.
    ``keep_deduplication_id``
        FIFO: send the copy with the original deduplication id instead of a
        derived one. SQS drops it silently if the original was sent less than
        5 minutes ago; only use it when that cannot happen.
    ``skip_visibility_timeout``
        How long a message that is not selected stays hidden while a run
        goes past it (default 300 s); it is made visible again when the run ends.
    """

    def __init__(
        self,
        env: SQSEnv,
        name: str,
        backoff_policy: BackoffPolicy | None = None,
        *,
        queue_url: str | None = None,
        upstream: GenericQueue | str | None = None,
        upstream_queue: GenericQueue | str | None = None,
        delay_seconds: int = 1,
        filter: Selector = None,
        keep_deduplication_id: bool = False,
        skip_visibility_timeout: int = 300,
        **options: Any,
    ) -> None:
        super().__init__(env, name, backoff_policy, queue_url=queue_url, **options)
        if upstream is not None and upstream_queue is not None and upstream is not upstream_queue:
            raise ConfigurationError(
                f"dead-letter queue {name!r}: give upstream= or upstream_queue=, not both"
            )
        target = upstream if upstream is not None else upstream_queue
        if target is not None and not isinstance(target, GenericQueue | str):
            raise ConfigurationError(
                f"dead-letter queue {name!r}: upstream must be a queue or a queue name, "
                f"got {target!r}"
            )
        if isinstance(target, GenericQueue | str) and _queue_name(target) == name:
            raise ConfigurationError(f"dead-letter queue {name!r} cannot be its own upstream")
        if not 0 <= delay_seconds <= MAX_DELAY_SECONDS:
            raise ConfigurationError(
                f"dead-letter queue {name!r}: delay_seconds must be 0 to {MAX_DELAY_SECONDS}, "
                f"got {delay_seconds!r}"
            )
        self._upstream = target
        self.delay_seconds = int(delay_seconds)
        self.filter = filter
        self._select = as_predicate(filter)
        self.keep_deduplication_id = keep_deduplication_id
        self.skip_visibility_timeout = clamp_visibility(skip_visibility_timeout)
        self._arn: str | None = None

    @classmethod
    def maker(
        cls, upstream_queue: GenericQueue | str | None = None, **kwargs: Any
    ) -> Callable[..., DeadLetterQueue]:
        """A factory for ``env.queue(name, DeadLetterQueue.maker(upstream))``."""
        if upstream_queue is not None:
            kwargs["upstream_queue"] = upstream_queue
        return partial(cls, **kwargs)

    def __repr__(self) -> str:
        target = _queue_name(self._upstream) if self._upstream is not None else None
        return f"<{type(self).__name__} {self.name} -> {target}>"

    #: ``add_raw_job(message_body, _delay_seconds=None, _deduplication_id=None,
    #: _group_id=None, *, message_attributes=None)``: send a message to this queue
    #: as is, as on a raw queue (sqs-workers' dead-letter queue is one); see
    #: :func:`sqsw_core.sending.add_raw_job`.
    add_raw_job = add_raw_job

    # -- the queues involved --------------------------------------------------

    @property
    def upstream(self) -> GenericQueue:
        """The queue messages are pushed back to (resolved from its name on first use)."""
        target = self._upstream
        if target is None:
            raise ConfigurationError(
                f"dead-letter queue {self.name!r} has no upstream queue to push messages "
                f"back to: use DeadLetterQueue.maker(upstream_queue) or sqs.queue("
                f"{self.name!r}, 'deadletter', upstream=...). (start_redrive() alone works "
                "without one: SQS sends each message back to its source queue.)"
            )
        if isinstance(target, str):
            target = self._upstream = self.env.queue(target)
        return target

    @property
    def has_upstream(self) -> bool:
        return self._upstream is not None

    @property
    def arn(self) -> str:
        """This queue's ARN (looked up once)."""
        if self._arn is None:
            self._arn = queue_arn(self)
        return self._arn

    # -- settling on this queue -------------------------------------------------

    @property
    def settler(self) -> Settler:
        """Settles this queue's messages: releases, discards (pushed back), retries."""
        return self.runner.settler

    def _discard(self, messages: list[Message]) -> None:
        """Delete pushed-back messages (a failed one is pushed back again later)."""
        self.settler.discard(messages, "it is already upstream: expect a duplicate there")

    def _retry(self, messages: list[Message]) -> None:
        """Messages upstream refused: back in this queue after its backoff."""
        for message in messages:
            self.settler.retry(message)
        self.settler.flush()

    def _push(self, messages: list[Message]) -> tuple[list[Message], list[Message]]:
        """Send copies of ``messages`` upstream; returns (accepted, refused).

        Copies go out in ``SendMessageBatch`` calls (10 entries, and at most
        ``max_message_size`` bytes, per call). A refused message is logged and
        stays in this queue.
        """
        upstream = self.upstream
        pending = [
            (m, push_back_entry(m, upstream, self.delay_seconds, self.keep_deduplication_id))
            for m in messages
        ]
        accepted: list[Message] = []
        refused: list[Message] = []
        for chunk in size_chunks(
            pending, lambda item: message_size(item[1]), self.env.max_message_size
        ):
            ok, bad = self._send_chunk(upstream, chunk)
            accepted += ok
            refused += bad
        return accepted, refused

    def _send_chunk(
        self, upstream: GenericQueue, chunk: list[tuple[Message, dict[str, Any]]]
    ) -> tuple[list[Message], list[Message]]:
        entries = [{"Id": str(i), **entry} for i, (_, entry) in enumerate(chunk)]
        try:
            response = upstream.call("send_message_batch", Entries=entries)
        except Exception:
            logger.exception(
                "Could not push %d message(s) from %s back to %s; they stay in the "
                "dead-letter queue and are retried after its backoff",
                len(chunk),
                self.name,
                upstream.name,
            )
            return [], [m for m, _ in chunk]
        accepted_ids = {ok["Id"] for ok in response.get("Successful", [])}
        for failed in response.get("Failed", []):
            message = chunk[int(failed["Id"])][0]
            logger.warning(
                "%s refused message %s pushed back from %s: %s (%s); it stays in the "
                "dead-letter queue",
                upstream.name,
                message.message_id,
                self.name,
                failed.get("Code"),
                failed.get("Message"),
            )
        accepted = [m for i, (m, _) in enumerate(chunk) if str(i) in accepted_ids]
        refused = [m for i, (m, _) in enumerate(chunk) if str(i) not in accepted_ids]
        return accepted, refused

    # -- push-back --------------------------------------------------------------

    def _run(
        self, selector: Selector, max_messages_per_second: float | None = None
    ) -> _PushBackRun:
        self.upstream  # noqa: B018 - fail before receiving anything if there is none
        select = as_predicate(selector) if selector is not None else self._select
        if max_messages_per_second is not None and max_messages_per_second <= 0:
            raise ValueError(f"max_messages_per_second must be > 0, got {max_messages_per_second}")
        return _PushBackRun(self, select, max_messages_per_second)

    def handle_message(self, message: Message) -> None:
        """Push one message back (the generic worker's path; batches use ``process_batch``)."""
        if self._select is not None and not self._select(message):
            raise RetryJob(ConstantBackoff(self.skip_visibility_timeout))
        _, refused = self._push([message])
        if refused:
            raise PushBackError(
                f"{self.upstream.name!r} did not accept message {message.message_id} pushed "
                f"back from {self.name!r}; it stays in the dead-letter queue"
            )

    def process_batch(
        self, wait_seconds: float = 0, **worker_options: Any
    ) -> BatchProcessingResult:
        """Push back one batch (up to 10 messages); the result counts pushed and failed ones.

        Messages the filter does not select are left visible in this queue
        and counted in neither list.
        """
        _ignored(worker_options)
        run = self._run(None)
        try:
            return run.batch(wait_seconds)
        finally:
            run.finish()

    def process_queue(
        self,
        shutdown_policy: ShutdownPolicy = NEVER_SHUTDOWN,
        wait_seconds: float = 10,
        **worker_options: Any,
    ) -> EngineStats:
        """Push messages back until ``shutdown_policy`` stops the run (seed API).

        Only pushed and failed messages are reported to the policy: a batch of
        messages the filter skipped (for the first time) counts as neither
        work nor idleness. Returns the run's counters, as for any queue:
        ``succeeded`` pushed back, ``failed`` not accepted upstream.
        """
        _ignored(worker_options)
        started_at = time.monotonic()
        run = self._run(None)
        logger.info("Start pushing back %s to %s", self.name, self.upstream.name)
        try:
            while True:
                result = run.batch(wait_seconds)
                if run.newly_skipped and result.total_count() == 0:
                    continue
                shutdown_policy.update_state(result)
                if shutdown_policy.need_shutdown():
                    break
        finally:
            run.finish()
        logger.info("Stop pushing back %s to %s: %s", self.name, self.upstream.name, run.report)
        return EngineStats(
            received=run.report.moved + run.report.failed + run.report.skipped,
            succeeded=run.report.moved,
            failed=run.report.failed,
            released=run.report.skipped,
            started_at=started_at,
        )

    def push_back(
        self,
        filter: Selector = None,
        *,
        wait_seconds: float = 1,
        max_messages: int | None = None,
        max_messages_per_second: float | None = None,
    ) -> RedriveReport:
        """Push back what the queue holds now, then return what was done.

        Stops when a receive (long-polling ``wait_seconds``) finds nothing, or
        after ``max_messages`` were pushed (or failed). ``filter`` replaces the
        queue's own for this call.
        """
        run = self._run(filter, max_messages_per_second)
        try:
            while True:
                done = run.report.moved + run.report.failed
                if max_messages is not None and done >= max_messages:
                    break
                limit = None if max_messages is None else max_messages - done
                run.batch(wait_seconds, limit)
                if not run.received:
                    break
        finally:
            run.finish()
        logger.info("Pushed back %s to %s: %s", self.name, self.upstream.name, run.report)
        return run.report

    def dry_run(
        self,
        filter: Selector = None,
        *,
        wait_seconds: float = 0,
        max_messages: int | None = None,
        hold_seconds: int = 60,
    ) -> list[RedriveCandidate]:
        """List the messages a push-back would move, moving nothing.

        Messages are received (hidden for up to ``hold_seconds`` while the scan
        goes on) and all made visible again before returning. Receiving counts:
        each message's receive count goes up by one. On a FIFO queue SQS only
        delivers the messages at the head of each group, so later ones may be
        missing from the list.
        """
        select = as_predicate(filter) if filter is not None else self._select
        seen: dict[str, Message] = {}
        candidates: list[RedriveCandidate] = []
        now = time.time()
        try:
            while max_messages is None or len(seen) < max_messages:
                wanted = MAX_BATCH_ENTRIES if max_messages is None else max_messages - len(seen)
                got = receive_messages(self, wait_seconds, wanted, visibility_timeout=hold_seconds)
                new = [m for m in got if m.message_id not in seen]
                seen.update((m.message_id, m) for m in got)
                if not new:
                    break
                selected, _, _ = partition(new, select, self.is_fifo)
                candidates += [RedriveCandidate.of(m, now) for m in selected]
        finally:
            self.settler.release(seen.values())
        return candidates


def _ignored(worker_options: dict[str, Any]) -> None:
    if worker_options:
        logger.warning(
            "Dead-letter push-back runs its own loop; ignoring worker options %s",
            sorted(worker_options),
        )


def _queue_name(queue: GenericQueue | str) -> str:
    return queue if isinstance(queue, str) else queue.name
