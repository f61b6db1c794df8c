"""What standard and FIFO queues share: timers, receipt handles, counters, long polling.

Every operation costs O(1) or O(log n) in the queue's depth: delayed and
in-flight messages sit in heaps keyed by the time they become visible (stale
heap entries are skipped when popped, never searched for), counters are kept
up to date on every state change, and a receipt handle names its message
directly. Time-driven changes (a delay or visibility timeout running out) are
applied lazily, at the start of each operation, in deadline order.

One lock per queue guards its state; long polls wait on a condition of that
lock and are woken by sends, by messages made visible, and by their own
timeout set to the next deadline, so they return as soon as a message can be
received.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from sqsw_memory.errors import SQSError
from sqsw_memory.ids import IdFactory, random_token
from sqsw_memory.message import DELAYED, GONE, INFLIGHT, VISIBLE, Message
from sqsw_memory.validation import RedriveTarget, check_int

__all__ = ["MAX_VISIBILITY", "AttributeFilter", "Queue", "QueueContext", "Received"]

#: a message may stay invisible for at most 12 hours after it was received
MAX_VISIBILITY = 43200
#: FIFO deduplication and receive-attempt window
DEDUP_WINDOW = 300.0
#: wait between two purges of one queue
PURGE_INTERVAL = 60.0

#: (message, receipt handle, receive count at that receive)
Received = tuple[Message, str, int]
#: None = no attributes; True = all; (names, prefixes) = those
AttributeFilter = None | bool | tuple[frozenset[str], tuple[str, ...]]

#: ``str(n)`` of small receive counts
_COUNTS = tuple(str(n) for n in range(100))


class QueueContext:
    """What a queue needs from its session: clocks, ids, and finding other queues."""

    def __init__(
        self,
        region: str,
        account_id: str,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        ids: IdFactory,
        find_by_arn: Callable[[str], Queue | None],
    ) -> None:
        self.region = region
        self.account_id = account_id
        self.clock = clock
        self.wall_clock = wall_clock
        self.ids = ids
        self.find_by_arn = find_by_arn
        self.partition = (
            "aws-cn"
            if region.startswith("cn-")
            else "aws-us-gov"
            if region.startswith("us-gov-")
            else "aws"
        )
        domain = "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com"
        self.url_base = f"https://sqs.{region}.{domain}/{account_id}/"


def _invalid_handle(handle: str) -> SQSError:
    return SQSError(
        "ReceiptHandleIsInvalid",
        f'The input receipt handle "{handle}" is not a valid receipt handle.',
    )


def _not_available(handle: str) -> SQSError:
    return SQSError(
        "InvalidParameterValue",
        f"Value {handle} for parameter ReceiptHandle is invalid. Reason: Message does not exist "
        "or is not available for visibility timeout change.",
    )


class Queue:
    """State and operations common to standard and FIFO queues."""

    fifo: ClassVar[bool] = False
    defaults: ClassVar[dict[str, str]] = {}

    def __init__(
        self,
        ctx: QueueContext,
        name: str,
        attributes: dict[str, str],
        tags: dict[str, str],
        redrive: RedriveTarget | None = None,
    ) -> None:
        self.ctx = ctx
        self.name = name
        self.arn = f"arn:{ctx.partition}:sqs:{ctx.region}:{ctx.account_id}:{name}"
        self.url = ctx.url_base + name
        self.clock = ctx.clock
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        #: long polls waiting on ``cond`` (guarded by ``lock``): notify only when > 0
        self.waiting = 0
        #: Bumped by interrupt_receives(): long polls in progress return at once.
        self.interrupts = 0
        self.deleted = False
        self.tags = dict(tags)
        self.created = self.modified = int(ctx.wall_clock())
        self.attributes = dict(self.defaults)
        self.redrive: RedriveTarget | None = None
        #: FIFO only: ContentBasedDeduplication
        self.content_dedup = False
        self.visibility_timeout = self.delay_seconds = self.max_size = 0
        self.retention = self.wait_time = 0
        self.set_attributes(attributes, redrive, touch=False)
        #: live messages by their per-queue sequence number (receipt handles name these)
        self.messages: dict[int, Message] = {}
        #: standard queues: live messages by their latest receipt handle (spares parsing it)
        self.handles: dict[str, Message] = {}
        self._next_seq = 1
        self._tick = itertools.count()
        self.delayed: list[tuple[float, int, Message]] = []
        #: (deadline, tie-break, message), or the messages one receive hid together
        #: (a list): one entry per receive, not per message
        self.inflight: list[tuple[float, int, Message | list[Message]]] = []
        self.n_visible = self.n_inflight = self.n_delayed = 0
        self.handle_prefix = f"AQEB{random_token(9)}"
        self.last_purge: float | None = None

    # -- attributes -----------------------------------------------------------------

    def set_attributes(
        self, attributes: dict[str, str], redrive: RedriveTarget | None, touch: bool = True
    ) -> None:
        """Apply normalized attributes (``""`` removes an optional one)."""
        for key, value in attributes.items():
            if value == "" and key in (
                "RedrivePolicy",
                "RedriveAllowPolicy",
                "Policy",
                "KmsMasterKeyId",
            ):
                self.attributes.pop(key, None)
                if key == "RedrivePolicy":
                    self.redrive = None
            else:
                self.attributes[key] = value
        if redrive is not None:
            self.redrive = redrive
        if attributes.get("KmsMasterKeyId"):
            self.attributes["SqsManagedSseEnabled"] = "false"
            self.attributes.setdefault("KmsDataKeyReusePeriodSeconds", "300")
        a = self.attributes
        self.visibility_timeout = int(a["VisibilityTimeout"])
        self.delay_seconds = int(a["DelaySeconds"])
        self.max_size = int(a["MaximumMessageSize"])
        self.retention = int(a["MessageRetentionPeriod"])
        self.wait_time = int(a["ReceiveMessageWaitTimeSeconds"])
        self._attributes_changed()
        if touch:
            self.modified = int(self.ctx.wall_clock())

    def _attributes_changed(self) -> None:
        """Hook: refresh attribute caches of a subclass."""

    def get_attributes(self, names: Iterable[str]) -> dict[str, str]:
        """Queue attributes for ``GetQueueAttributes`` (``All`` or the names given)."""
        with self.lock:
            self._advance(self.clock())
            computed = {
                "QueueArn": self.arn,
                "ApproximateNumberOfMessages": str(self.n_visible),
                "ApproximateNumberOfMessagesNotVisible": str(self.n_inflight),
                "ApproximateNumberOfMessagesDelayed": str(self.n_delayed),
                "CreatedTimestamp": str(self.created),
                "LastModifiedTimestamp": str(self.modified),
            }
            everything = {**computed, **self.attributes}
        wanted = set(names)
        if "All" in wanted:
            return everything
        return {k: v for k, v in everything.items() if k in wanted}

    # -- receipt handles ------------------------------------------------------------

    def handle(self, message: Message, receive_count: int) -> str:
        """The receipt handle of one receive of ``message``."""
        return f"{self.handle_prefix}{message.seq}.{receive_count}"

    def parse_handle(self, handle: str) -> tuple[int, int]:
        """``(message seq, receive count)`` of one of this queue's handles (or raise)."""
        prefix = self.handle_prefix
        if handle.startswith(prefix):
            seq, _, count = handle[len(prefix) :].partition(".")
            try:
                return int(seq), int(count)
            except ValueError:
                pass
        raise _invalid_handle(handle)

    # -- time -----------------------------------------------------------------------

    def _advance(self, now: float) -> None:
        """Apply every delay and visibility timeout that has run out by ``now``."""
        delayed = self.delayed
        while delayed and delayed[0][0] <= now:
            deadline, _, m = heapq.heappop(delayed)
            if m.state == DELAYED and m.deadline == deadline:
                m.state = VISIBLE
                self.n_delayed -= 1
                self.n_visible += 1
                self._enqueue(m)
        inflight = self.inflight
        while inflight and inflight[0][0] <= now:
            deadline, _, hidden = heapq.heappop(inflight)
            for h in hidden if isinstance(hidden, list) else (hidden,):
                if h.state == INFLIGHT and h.deadline == deadline:
                    h.state = VISIBLE
                    self.n_inflight -= 1
                    self.n_visible += 1
                    self._enqueue(h)

    def _next_deadline(self) -> float | None:
        tops = [h[0][0] for h in (self.delayed, self.inflight) if h]
        return min(tops) if tops else None

    def _push_inflight(self, m: Message, deadline: float) -> None:
        m.deadline = deadline
        heap = self.inflight
        heapq.heappush(heap, (deadline, next(self._tick), m))
        if self.waiting and heap[0][2] is m:
            # an earlier deadline than long polls are waiting for: let them recompute
            self.cond.notify_all()
        if len(heap) > 2 * self.n_inflight + 1024:
            self._compact_inflight()

    def _compact_inflight(self) -> None:
        """Drop stale entries (amortized O(1): runs once the heap is mostly stale)."""
        self.inflight = [e for e in self.inflight if _still_hidden(e)]
        heapq.heapify(self.inflight)

    # -- sending --------------------------------------------------------------------

    def add(
        self, items: list[tuple[Message, int]], dedup: bool = True
    ) -> list[tuple[str, str | None]]:
        """Store messages (each with its DelaySeconds, -1 = queue default).

        Returns ``(MessageId, SequenceNumber)`` per item; a FIFO duplicate gets the
        original's. ``dedup=False`` skips FIFO deduplication (moves between queues).
        """
        with self.lock:
            if self.deleted:
                raise _queue_gone()
            now = self.clock()
            self._advance(now)
            add_one = self._add_one if dedup and self.fifo else self._store
            result = [add_one(m, delay, now) for m, delay in items]
        return result

    def _add_one(self, m: Message, delay: int, now: float) -> tuple[str, str | None]:
        """Hook: add one sent message (FIFO: deduplicate first)."""
        return self._store(m, delay, now)

    def _store(self, m: Message, delay: int, now: float) -> tuple[str, str | None]:
        m.seq = self._next_seq
        self._next_seq += 1
        if delay < 0:
            delay = self.delay_seconds
        self.messages[m.seq] = m
        if delay > 0:
            m.state = DELAYED
            m.deadline = deadline = now + delay
            self.n_delayed += 1
            heap = self.delayed
            heapq.heappush(heap, (deadline, next(self._tick), m))
            self._place(m)
            if self.waiting and heap[0][2] is m:
                self.cond.notify_all()
        else:
            m.state = VISIBLE
            self.n_visible += 1
            self._place(m)
            self._enqueue(m)
        return m.message_id, m.sequence_number

    def _place(self, m: Message) -> None:
        """Hook: file a newly added message (FIFO: into its group)."""

    def _enqueue(self, m: Message) -> None:
        """Hook: ``m`` just became VISIBLE; make it receivable and wake a waiter."""
        raise NotImplementedError

    def _remove(self, m: Message) -> None:
        """Take ``m`` out of the queue for good (deleted, expired or moved)."""
        state = m.state
        if state == VISIBLE:
            self.n_visible -= 1
        elif state == INFLIGHT:
            self.n_inflight -= 1
        elif state == DELAYED:
            self.n_delayed -= 1
        else:
            return
        m.state = GONE
        del self.messages[m.seq]
        if m.handle is not None:
            del self.handles[m.handle]
        self._removed(m)

    def _removed(self, m: Message) -> None:
        """Hook: ``m`` was removed (FIFO: its group may become receivable)."""

    # -- receiving ------------------------------------------------------------------

    def receive(
        self, count: int, visibility: int, wait: float, attempt_id: str | None = None
    ) -> list[Received]:
        """Receive up to ``count`` messages, long-polling up to ``wait`` seconds."""
        dlq: Queue | None = None
        max_receives = 0
        if self.redrive is not None:
            dlq = self.ctx.find_by_arn(self.redrive.arn)
            if dlq is not None:
                max_receives = self.redrive.max_receive_count
        if wait <= 0 and attempt_id is None:
            # short poll: one look, no waiting
            out: list[Received] = []
            dead: list[Message] = []
            with self.lock:
                if self.deleted:
                    raise _queue_gone()
                now = self.clock()
                if self.delayed or self.inflight:
                    self._advance(now)
                self._take(count, visibility, now, max_receives, out, dead)
            if dead and dlq is not None:
                dlq.accept_dead_letters(dead, self.arn)
            return out
        return self._long_poll(count, visibility, wait, attempt_id, dlq, max_receives)

    def _long_poll(
        self,
        count: int,
        visibility: int,
        wait: float,
        attempt_id: str | None,
        dlq: Queue | None,
        max_receives: int,
    ) -> list[Received]:
        """Receive, waiting up to ``wait`` seconds for a message (FIFO: replay attempts)."""
        clock = self.clock
        out: list[Received] = []
        dead: list[Message] = []
        end = clock() + wait
        real_end = time.monotonic() + wait
        interrupts = self.interrupts
        while True:
            with self.lock:  # the lock of self.cond
                while True:
                    if self.deleted:
                        raise _queue_gone()
                    if self.interrupts != interrupts:
                        return out
                    now = clock()
                    self._advance(now)
                    if attempt_id is not None:
                        replay = self._replay(attempt_id, visibility, now)
                        if replay is not None:
                            return replay
                    self._take(count, visibility, now, max_receives, out, dead)
                    if out or dead or wait <= 0:
                        break
                    timeout = min(end - now, real_end - time.monotonic())
                    due = self._next_deadline()
                    if due is not None:
                        timeout = min(timeout, due - now)
                    if timeout <= 0:
                        break
                    self.waiting += 1
                    try:
                        self.cond.wait(timeout)
                    finally:
                        self.waiting -= 1
                if attempt_id is not None:
                    self._remember(attempt_id, out, now)
            if dead and dlq is not None:
                dlq.accept_dead_letters(dead, self.arn)
                dead = []
                if not out and wait > 0 and clock() < end and time.monotonic() < real_end:
                    continue
            return out

    def interrupt_receives(self) -> None:
        """End the long polls in progress on this queue now (they return what they have)."""
        with self.lock:
            self.interrupts += 1
            self.cond.notify_all()

    def _take(
        self,
        count: int,
        visibility: int,
        now: float,
        max_receives: int,
        out: list[Received],
        dead: list[Message],
    ) -> None:
        """Hook: move up to ``count`` receivable messages into ``out``."""
        raise NotImplementedError

    def _replay(self, attempt_id: str, visibility: int, now: float) -> list[Received] | None:
        """Hook: the result of an earlier receive with the same attempt id (FIFO)."""
        return None

    def _remember(self, attempt_id: str, out: list[Received], now: float) -> None:
        """Hook: record a receive under its attempt id (FIFO)."""

    def _claim(self, m: Message, now: float, max_receives: int, dead: list[Message]) -> int:
        """Count one receive of ``m``: its new receive count, or 0 if it went to the DLQ."""
        if now - m.sent_at >= self.retention:
            self._remove(m)  # retention ran out: SQS deletes it
            return 0
        count = m.receive_count + 1
        if max_receives and count > max_receives:
            self._remove(m)
            dead.append(m)
            return 0
        m.receive_count = count
        if not m.first_receive_ms:
            m.first_receive_ms = int(self.ctx.wall_clock() * 1000)
        m.received_at = now
        return count

    def _hide(self, m: Message, now: float, visibility: int) -> None:
        """Make a just-received VISIBLE message in flight for ``visibility`` seconds."""
        m.state = INFLIGHT
        self.n_visible -= 1
        self.n_inflight += 1
        self._push_inflight(m, now + visibility)

    # -- deleting and changing visibility -------------------------------------------

    def delete(self, handles: list[str]) -> list[SQSError | None]:
        """Delete by receipt handles; one result (None = deleted) per handle."""
        prefix = self.handle_prefix
        start = len(prefix)
        # None: any handle deletes and removing needs no hook (standard queues)
        check = (
            None
            if type(self)._check_delete is Queue._check_delete
            and type(self)._removed is Queue._removed
            else self._check_delete
        )
        results: list[SQSError | None] = []
        with self.lock:
            if self.deleted:
                raise _queue_gone()
            now = self.clock()
            if self.delayed or self.inflight:
                self._advance(now)
            messages = self.messages
            by_handle = self.handles
            for h in handles:
                if check is None:
                    m = by_handle.get(h)
                    if m is not None:
                        # the latest handle of a live message (standard queue)
                        if m.state == INFLIGHT:
                            # Queue._remove inlined for the usual case
                            m.state = GONE
                            self.n_inflight -= 1
                            del messages[m.seq]
                            del by_handle[h]
                        else:
                            self._remove(m)
                        results.append(None)
                        continue
                # parse_handle inlined
                if h.startswith(prefix):
                    seq, _, count = h[start:].partition(".")
                    try:
                        key, receive_count = int(seq), int(count)
                    except ValueError:
                        results.append(_invalid_handle(h))
                        continue
                else:
                    results.append(_invalid_handle(h))
                    continue
                m = messages.get(key)
                if m is None:
                    # already deleted (or purged, expired, moved): SQS accepts it
                    results.append(None)
                    continue
                if check is None:
                    self._remove(m)
                    results.append(None)
                    continue
                error = check(m, receive_count, h)
                if error is None:
                    self._remove(m)
                results.append(error)
        return results

    def _check_delete(self, m: Message, receive_count: int, handle: str) -> SQSError | None:
        """Hook: whether a handle may delete ``m``.

        Standard queues accept any handle ever issued for the message: AWS documents
        that an old handle "succeeds but might not delete", and in practice (and on
        LocalStack) it deletes. We delete, so tests relying on it pass on both.
        """
        return None

    def change_visibility(self, entries: list[tuple[str, int]]) -> list[SQSError | None]:
        """ChangeMessageVisibility for ``(handle, timeout)`` pairs; one result per pair."""
        parsed: list[tuple[int, int] | SQSError] = []
        for h, timeout in entries:
            try:
                check_int("VisibilityTimeout", timeout, 0, MAX_VISIBILITY)
                parsed.append(self.parse_handle(h))
            except SQSError as exc:
                parsed.append(exc)
        results: list[SQSError | None] = []
        with self.lock:
            if self.deleted:
                raise _queue_gone()
            now = self.clock()
            self._advance(now)
            for (h, timeout), p in zip(entries, parsed, strict=True):
                if isinstance(p, SQSError):
                    results.append(p)
                    continue
                results.append(self._change_one(h, p[0], p[1], timeout, now))
        return results

    def _change_one(
        self, handle: str, seq: int, receive_count: int, timeout: int, now: float
    ) -> SQSError | None:
        m = self.messages.get(seq)
        if m is None:
            return _not_available(handle)
        error = self._check_change(m, receive_count, handle)
        if error is not None:
            return error
        if m.state != INFLIGHT:
            # AWS answers OK and changes nothing when the visibility timeout has run out
            return None
        if now - m.received_at + timeout > MAX_VISIBILITY:
            return SQSError(
                "InvalidParameterValue",
                f"Value {timeout} for parameter VisibilityTimeout is invalid. Reason: Total "
                f"VisibilityTimeout for the message is beyond the limit [{MAX_VISIBILITY} seconds]",
            )
        if timeout == 0:
            m.state = VISIBLE
            self.n_inflight -= 1
            self.n_visible += 1
            m.deadline = 0.0
            self._enqueue(m)
        else:
            self._push_inflight(m, now + timeout)
        return None

    def _check_change(self, m: Message, receive_count: int, handle: str) -> SQSError | None:
        """Hook: whether a handle may change ``m``'s visibility.

        On standard queues an older handle of the message still works (AWS-validated:
        LocalStack's ``test_terminate_visibility_timeout_after_receive``).
        """
        return None

    # -- moving messages between queues ---------------------------------------------

    def copy_in(self, m: Message, keep_identity: bool, source_arn: str | None) -> Message:
        """A new message of this queue with ``m``'s content.

        ``keep_identity`` (dead-lettering): same MessageId, SentTimestamp and receive
        count. Otherwise (a move task): a new message, as SQS redrive makes one.
        """
        wall = self.ctx.wall_clock()
        now = self.clock()
        c = Message(
            0,
            m.message_id if keep_identity else self.ctx.ids.next(),
            m.body,
            m.md5_body,
            m.size,
            m.sent_ms if keep_identity else int(wall * 1000),
            m.sent_at if keep_identity and not self.fifo else now,
            m.attributes,
            m.md5_attributes,
            m.system_attributes,
            m.group_id,
            m.dedup_id,
        )
        if keep_identity:
            c.receive_count = m.receive_count
            c.dlq_source_arn = source_arn
            if self.fifo:
                # SQS replaces the deduplication id with the message id in a FIFO DLQ
                c.dedup_id = m.message_id
        elif self.fifo and c.dedup_id is None:
            c.dedup_id = m.message_id
        return c

    def accept_dead_letters(self, messages: list[Message], source_arn: str) -> None:
        """Store messages moved here by a source queue's redrive policy."""
        copies = [(self.copy_in(m, True, source_arn), 0) for m in messages]
        try:
            self.add(copies, dedup=False)
        except SQSError:
            pass  # the DLQ was deleted meanwhile: SQS drops them too

    def take_visible(self, limit: int) -> list[Message]:
        """Remove up to ``limit`` receivable messages, oldest first (move tasks)."""
        with self.lock:
            if self.deleted:
                raise _queue_gone()
            now = self.clock()
            self._advance(now)
            out: list[Received] = []
            dead: list[Message] = []
            self._take(limit, 0, now, 0, out, dead)
            taken = []
            for m, _, _ in out:
                m.receive_count -= 1  # moving is not a receive
                self._remove(m)
                taken.append(m)
            return taken

    def put_back(self, messages: list[Message]) -> None:
        """Return messages taken by :meth:`take_visible` that could not be moved."""
        try:
            self.add([(self.copy_in(m, True, m.dlq_source_arn), 0) for m in messages], dedup=False)
        except SQSError:
            pass

    # -- whole queue ----------------------------------------------------------------

    def purge(self) -> None:
        """PurgeQueue: drop every message (at most once per 60 seconds)."""
        with self.lock:
            now = self.clock()
            if self.last_purge is not None and now - self.last_purge < PURGE_INTERVAL:
                raise SQSError(
                    "PurgeQueueInProgress",
                    f"Only one PurgeQueue operation on {self.name} is allowed every 60 seconds.",
                )
            self.last_purge = now
            for m in self.messages.values():
                m.state = GONE
            self.messages.clear()
            self.handles.clear()
            self.delayed = []
            self.inflight = []
            self.n_visible = self.n_inflight = self.n_delayed = 0
            self._cleared()

    def _cleared(self) -> None:
        """Hook: drop subclass structures after a purge."""

    def close(self) -> None:
        """The queue was deleted: fail waiting and future calls."""
        with self.lock:
            self.deleted = True
            self.cond.notify_all()

    # -- rendering ------------------------------------------------------------------

    def render(
        self,
        received: list[Received],
        system_names: frozenset[str] | None,
        attribute_filter: AttributeFilter,
    ) -> list[dict[str, Any]]:
        """ReceiveMessage ``Messages`` entries for received messages.

        Every entry is built afresh (callers may mutate them). Every attribute asked
        for (sqsw's own receive) is built by :meth:`rows`, the hot path.
        """
        all_system = system_names is not None and "All" in system_names
        if all_system and attribute_filter is True:
            return self._render_all(received)
        account = self.ctx.account_id
        result = []
        for m, handle, count in received:
            d: dict[str, Any] = {
                "MessageId": m.message_id,
                "ReceiptHandle": handle,
                "MD5OfBody": m.md5_body,
                "Body": m.body,
            }
            if system_names:
                attrs = self._system_attributes(m, count, account)
                if not all_system:
                    attrs = {k: v for k, v in attrs.items() if k in system_names}
                d["Attributes"] = attrs
            if attribute_filter is not None:
                stored = m.attributes
                if stored:
                    if attribute_filter is True:
                        d["MD5OfMessageAttributes"] = m.md5_attributes
                        d["MessageAttributes"] = {k: v.copy() for k, v in stored.items()}
                    else:
                        _add_selected_attributes(d, m, stored, attribute_filter)
            result.append(d)
        return result

    def _render_all(self, received: list[Received]) -> list[dict[str, Any]]:
        """:meth:`render` with every attribute asked for (``All``, as sqsw receives): each
        entry built whole from its :meth:`rows` row, the same keys in the same order."""
        result: list[dict[str, Any]] = []
        append = result.append
        for message_id, handle, body, md5_body, attrs, stored, md5_attrs in self.rows(
            received, with_md5=True
        ):
            entry = {
                "MessageId": message_id,
                "ReceiptHandle": handle,
                "MD5OfBody": md5_body,
                "Body": body,
                "Attributes": attrs,
            }
            if stored:
                entry["MD5OfMessageAttributes"] = md5_attrs
                entry["MessageAttributes"] = stored
            append(entry)
        return result

    def rows(self, received: list[Received], with_md5: bool = False) -> list[tuple[Any, ...]]:
        """Received messages as ``(MessageId, ReceiptHandle, Body, MD5OfBody, Attributes,
        MessageAttributes)`` rows, every attribute included, fresh dicts as :meth:`render`
        makes them (``MessageAttributes`` ``None`` when the message has none);
        ``with_md5``: ``MD5OfMessageAttributes`` is added last."""
        account = self.ctx.account_id
        counts = _COUNTS
        extra = self._extra_system_attributes
        sent_ms = first_ms = -1
        sent_str = first_str = ""
        result: list[tuple[Any, ...]] = []
        append = result.append
        for m, handle, count in received:
            if m.sent_ms != sent_ms:
                sent_ms = m.sent_ms
                sent_str = str(sent_ms)
            if m.first_receive_ms != first_ms:
                first_ms = m.first_receive_ms
                first_str = str(first_ms)
            attrs = {
                "SenderId": account,
                "SentTimestamp": sent_str,
                "ApproximateReceiveCount": counts[count] if count < 100 else str(count),
                "ApproximateFirstReceiveTimestamp": first_str,
            }
            if (
                m.group_id is not None
                or m.dedup_id is not None
                or m.sequence_number is not None
                or m.system_attributes
                or m.dlq_source_arn is not None
            ):
                extra(m, attrs)
            stored = m.attributes
            copied = {k: v.copy() for k, v in stored.items()} if stored else None
            if with_md5:
                append((m.message_id, handle, m.body, m.md5_body, attrs, copied, m.md5_attributes))
            else:
                append((m.message_id, handle, m.body, m.md5_body, attrs, copied))
        return result

    def _system_attributes(self, m: Message, count: int, account: str) -> dict[str, str]:
        attrs = {
            "SenderId": account,
            "SentTimestamp": str(m.sent_ms),
            "ApproximateReceiveCount": str(count),
            "ApproximateFirstReceiveTimestamp": str(m.first_receive_ms),
        }
        self._extra_system_attributes(m, attrs)
        return attrs

    @staticmethod
    def _extra_system_attributes(m: Message, attrs: dict[str, str]) -> None:
        """Add the system attributes only some messages have (FIFO, tracing, DLQ)."""
        if m.group_id is not None:
            attrs["MessageGroupId"] = m.group_id
        if m.dedup_id is not None:
            attrs["MessageDeduplicationId"] = m.dedup_id
        if m.sequence_number is not None:
            attrs["SequenceNumber"] = m.sequence_number
        if m.system_attributes:
            attrs["AWSTraceHeader"] = m.system_attributes["AWSTraceHeader"]["StringValue"]
        if m.dlq_source_arn is not None:
            attrs["DeadLetterQueueSourceArn"] = m.dlq_source_arn


def _still_hidden(entry: tuple[float, int, Message | list[Message]]) -> bool:
    """Whether an in-flight heap entry still hides a message until its deadline."""
    deadline, _, hidden = entry
    for m in hidden if isinstance(hidden, list) else (hidden,):
        if m.state == INFLIGHT and m.deadline == deadline:
            return True
    return False


def _select(
    attributes: dict[str, dict[str, Any]], attribute_filter: AttributeFilter
) -> dict[str, dict[str, Any]]:
    if attribute_filter is True:
        return {k: dict(v) for k, v in attributes.items()}
    assert isinstance(attribute_filter, tuple)
    names, prefixes = attribute_filter
    return {
        k: dict(v)
        for k, v in attributes.items()
        if k in names or (prefixes and k.startswith(prefixes))
    }


def _add_selected_attributes(
    d: dict[str, Any],
    m: Message,
    stored: dict[str, dict[str, Any]],
    attribute_filter: AttributeFilter,
) -> None:
    """Add to ``d`` the message attributes the filter selects, if any, and their MD5."""
    selected = _select(stored, attribute_filter)
    if selected:
        d["MD5OfMessageAttributes"] = (
            m.md5_attributes if len(selected) == len(stored) else _md5_of_attributes(selected)
        )
        d["MessageAttributes"] = selected


def _md5_of_attributes(attributes: dict[str, dict[str, Any]]) -> str:
    from sqsw_memory.hashing import md5_of_attributes

    return md5_of_attributes(attributes)


def _queue_gone() -> SQSError:
    return SQSError("QueueDoesNotExist", "The specified queue does not exist.")
