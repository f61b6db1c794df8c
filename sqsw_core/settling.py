"""Settling received messages: ack, retry after a delay, release. The only place it happens.

Every path that finishes with a message, the job runner, bulk jobs, long
delays, the engine's stops and FIFO ordering, goes through a
:class:`Settler`: it stops the visibility heartbeat keeping the message
(``forget``) and then

* **acks** it (deletes it: the job succeeded),
* **retries** it: visible again after the backoff policy's delay (the job failed),
* **delays** it: visible again after a given number of seconds (a FIFO group
  mate of a failed job, a message given back unrun, a long delay's next hop), or
* **releases** it: visible again at once, without running (a stop, a dead
  worker process's messages, messages a dead-letter push-back passes over), or
* **discards** it: deletes it without running (a drain; a push-back, whose copy
  is already upstream).

Acks and delays are batched by the :class:`Acker` (10 per SQS call, sent at
the latest ``max_delay`` seconds after the first); releases go out at once.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from sqsw_core.backoff_policies import clamp_visibility
from sqsw_core.limits import MAX_BATCH_ENTRIES, chunks
from sqsw_core.log_text import log_extra
from sqsw_core.sqs_calls import ReceivedMessage, change_visibility, delete_messages

if TYPE_CHECKING:
    from sqsw_core.backoff_policies import BackoffPolicy
    from sqsw_core.messages import Message
    from sqsw_core.queue_handle import QueueHandle

logger = logging.getLogger("sqsw.settling")

#: The batch delete of a session in this process that takes receipt handles, not entries
#: (the in-memory SQS's ``delete_message_handles``; see :meth:`Acker._send_deletes`).
HANDLES_DELETE = "delete_message_handles"


def visibility_timeout(queue: QueueHandle) -> int:
    """The queue's visibility timeout in seconds (SQS's default, 30, if unknown)."""
    return int(queue.attributes.get("VisibilityTimeout", "30"))


def retry_delay(queue: QueueHandle, message: Message, policy: BackoffPolicy | None) -> int | None:
    """Seconds until a failed ``message`` is delivered again, from the backoff policy.

    ``policy`` defaults to the queue's. ``None`` when the policy itself
    failed: the message is then left hidden until its visibility timeout runs
    out, never made visible at once by mistake.
    """
    policy = policy or queue.backoff_policy
    try:
        return clamp_visibility(policy.get_visibility_timeout(message))
    except Exception:
        logger.exception(
            "Backoff policy %r failed for message %s on %s; it is delivered again when "
            "its visibility timeout runs out",
            policy,
            message.message_id,
            queue.name,
            extra=log_extra(queue, message, policy),
        )
        return None


def _log_not_held(queue: QueueHandle, message: ReceivedMessage, what: str) -> None:
    logger.info(
        "Message %s of %s is not %s: this worker no longer holds it (a stop released it "
        "while its job ran, or it ran past max_job_duration); SQS delivers it again as it is",
        message.message_id,
        queue.name,
        what,
    )


class Keeper(Protocol):
    """What settling needs of the visibility heartbeat (:class:`~sqsw_core.heartbeat.
    VisibilityKeeper`): stop keeping a message (one being acked without waiting for an
    extension in progress), and the lock its extensions go under."""

    @property
    def lock(self) -> AbstractContextManager[Any]: ...

    @property
    def drop_acked(self) -> Callable[[str, None], object]: ...

    def forget(self, message: ReceivedMessage) -> bool: ...


#: Seconds without a pending ack or retry after which the acker's flusher sleeps
#: until woken (before that it looks every ``max_delay`` on its own).
IDLE_AFTER = 1.0


class Acker:
    """Deletes succeeded messages and delays failed ones, 10 per SQS call.

    Entries are flushed when 10 are pending or when the oldest has waited
    ``max_delay`` seconds (a background thread sees to that), so a finished
    job is never held back by the jobs after it.
    """

    def __init__(
        self,
        queue: QueueHandle,
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
        #: Whether the session's client has HANDLES_DELETE (None: not asked yet).
        self._handles_delete: bool | None = None
        if type(self).ack is Acker.ack:  # a subclass's own ack() stays
            self.ack = functools.partial(self._add, self._deletes, None)  # type: ignore[method-assign]

    def ack(self, message: Message) -> None:
        # Replaced per instance by a partial of _add (one Python call less per job).
        self._add(self._deletes, None, message)

    def ack_after(self, drop: Callable[[str, None], object]) -> Callable[[Message], None]:
        """:meth:`ack` that first calls ``drop(message.receipt_handle, None)`` (the
        visibility heartbeat's ``drop_acked``), in the same Python call."""
        if type(self).ack is not Acker.ack:
            ack = self.ack

            def ack_dropped(message: Message) -> None:
                drop(message.receipt_handle, None)
                ack(message)

            return ack_dropped
        return functools.partial(self._add, self._deletes, drop)

    def retry(self, message: Message, visibility_timeout: int) -> None:
        self._add(self._changes, None, (message, visibility_timeout))

    def _add(
        self, pending: list[Any], drop: Callable[[str, None], object] | None, item: Any
    ) -> None:
        if drop is not None:  # an ack's (see ack_after)
            drop(item.receipt_handle, None)
        # The plain lock, not the Condition: this runs once per message.
        # (flush() empties the pending lists in place, never replaces them.)
        with self._lock:
            pending.append(item)
            if self._oldest is None:
                self._oldest = time.monotonic()
                if self._thread is None:
                    self._start_thread()
                elif self._idle:
                    # Wake the flusher only from its untimed wait (see _run).
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
        # While entries keep coming, the flusher looks every max_delay by itself: woken
        # by _add, it would cost a thread switch per batch (job threads send full
        # batches themselves). After IDLE_AFTER seconds without entries it sleeps
        # until the next one wakes it.
        quiet_since: float | None = None
        while True:
            with self._cond:
                if self._closed:
                    return
                now = time.monotonic()
                oldest = self._oldest
                if oldest is None:
                    quiet_since = quiet_since or now
                    if now - quiet_since < IDLE_AFTER:
                        self._cond.wait(self.max_delay)
                        continue
                    self._idle = True
                    self._cond.wait()
                    self._idle = False
                    quiet_since = None
                    continue
                quiet_since = None
                wait = oldest + self.max_delay - now
                if wait > 0:
                    self._cond.wait(wait)
                    continue
            self.flush()

    def flush(self, full_only: bool = False) -> None:
        """Send pending deletes and visibility changes now.

        ``full_only`` sends only complete batches of 10 and leaves the rest for
        the timer, so concurrent job threads do not cause many small requests.
        """
        at_least = MAX_BATCH_ENTRIES if full_only else 1
        pending_deletes, pending_changes = self._deletes, self._changes
        if not pending_deletes and not pending_changes:
            # Nothing to send (a batch's last ack sent them): no lock taken. An entry
            # being added now is sent by the thread completing its batch, or the timer.
            return
        more = True
        while more:
            with self._lock:  # the Condition's lock: entering that costs a Python call more
                deletes = self._take(pending_deletes, at_least)
                changes = self._take(pending_changes, at_least)
                if not pending_deletes and not pending_changes:
                    self._oldest = None
                # Another batch to send after these? (Entries added while they are sent
                # are for the thread that completes a batch, or for the timer.)
                more = len(pending_deletes) >= at_least or len(pending_changes) >= at_least
            if deletes:
                self._send_deletes(deletes)
            if changes:
                with self.visibility_lock:
                    change_visibility(self.queue, changes)

    @staticmethod
    def _take(pending: list[Any], at_least: int) -> list[Any]:
        """Remove and return up to 10 entries of ``pending``, if it holds ``at_least``."""
        if len(pending) < at_least:
            return []
        taken = pending[:MAX_BATCH_ENTRIES]
        del pending[:MAX_BATCH_ENTRIES]
        return taken

    def _send_deletes(self, messages: list[Message]) -> None:
        if self._handles_delete is not False:
            messages = self._delete_handles(messages)
            if not messages:
                return
        # Not ``self.failed_acks += delete_messages(...)``: that reads the counter
        # before the (slow) call, and concurrent flushes would overwrite each other.
        failed = delete_messages(self.queue, messages)
        if failed:
            with self._lock:
                self.failed_acks += failed

    def _delete_handles(self, messages: list[Message]) -> list[Message]:
        """Delete by HANDLES_DELETE where the session's client has it (the in-memory SQS);
        the messages left to delete the SQS way: all of them if it has none (a client
        wrapped to watch its SQS calls, say) or the call failed, else those it refused
        (DeleteMessageBatch then sends, and logs, them as usual)."""
        queue = self.queue
        if self._handles_delete is None:
            self._handles_delete = queue.process_local
            if not self._handles_delete:
                return messages
        try:
            response = queue.call(
                HANDLES_DELETE, ReceiptHandles=[m.receipt_handle for m in messages]
            )
        except AttributeError:
            self._handles_delete = False
            return messages
        except Exception:
            return messages
        return [messages[int(f["Id"])] for f in response.get("Failed", ())]

    def close(self) -> None:
        """Flush and stop the background thread."""
        self.flush()
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class Settler:
    """Settles the messages of one queue (thread-safe); see the module's docstring."""

    def __init__(
        self,
        queue: QueueHandle,
        acker: Acker | None = None,
        keeper: Keeper | None = None,
    ) -> None:
        self.queue = queue
        self.acker = acker or Acker(queue)
        #: Set once, here: ``ack`` is the acker's own, which drops the keeper's hold
        #: first if there is a keeper (a Python call less per message).
        self.keeper = keeper
        if type(self).ack is Settler.ack:
            acker_ack: Callable[[Message], None] = (
                self.acker.ack if keeper is None else self.acker.ack_after(keeper.drop_acked)
            )
            self.ack = acker_ack  # type: ignore[method-assign,assignment]

    def forget(self, message: ReceivedMessage) -> bool:
        """Stop keeping ``message`` invisible: it is being settled, or left to its timeout.
        Whether it was kept until now (always, without a keeper)."""
        if self.keeper is not None:
            return self.keeper.forget(message)
        return True

    def ack(self, message: Message) -> None:
        """The job succeeded: delete the message."""
        keeper = self.keeper
        if keeper is not None:
            keeper.drop_acked(message.receipt_handle, None)
        self.acker.ack(message)

    def retry(self, message: Message, policy: BackoffPolicy | None = None) -> int:
        """The job failed: deliver the message again after the backoff (``policy``, else
        the queue's). Returns the delay; a failing policy leaves the message hidden
        until its visibility timeout runs out, and that timeout is returned.

        A message the keeper no longer holds is left as it is (0 returned): a stop
        released it while its job ran (a cold stop, or a warm stop's grace period
        over), or the heartbeat gave it up (``max_job_duration``). It may be in another
        worker's hands by now, and a visibility change would cut that worker's short."""
        if not self.forget(message):
            _log_not_held(self.queue, message, "retried")
            return 0
        delay = retry_delay(self.queue, message, policy)
        if delay is None:
            return visibility_timeout(self.queue)
        self.acker.retry(message, delay)
        return delay

    def delay(self, message: Message, seconds: int) -> None:
        """Deliver the message again after ``seconds``, unrun (batched with the acks); a
        message the keeper no longer holds is left as it is (see :meth:`retry`)."""
        if not self.forget(message):
            _log_not_held(self.queue, message, "delayed")
            return
        self.acker.retry(message, seconds)

    def release(
        self,
        messages: Iterable[ReceivedMessage],
        visibility_timeout: int = 0,
        refused_level: int = logging.WARNING,
    ) -> int:
        """Make messages visible again now (after ``visibility_timeout`` s), unrun; how
        many SQS accepted. Sent at once, under the heartbeat's lock, so no extension
        of the same messages can come after it. Entries SQS refuses (a handle no
        longer valid) are logged at ``refused_level``."""
        messages = list(messages)
        released = 0
        lock = self.keeper.lock if self.keeper is not None else self.acker.visibility_lock
        with lock:
            for message in messages:
                self.forget(message)
            for chunk in chunks(messages):
                released += change_visibility(
                    self.queue, [(m, visibility_timeout) for m in chunk], refused_level
                )
        return released

    def discard(self, messages: Iterable[ReceivedMessage], if_left: str) -> int:
        """Delete messages at once without running them (a drain, a push-back: their job
        is done elsewhere); how many SQS did not delete, logged with ``if_left`` saying
        what one left in the queue means."""
        messages = list(messages)
        left = 0
        for message in messages:
            self.forget(message)
        for chunk in chunks(messages):
            left += delete_messages(self.queue, chunk, if_left)
        return left

    def flush(self) -> None:
        """Send the batched acks and delays now."""
        self.acker.flush()
