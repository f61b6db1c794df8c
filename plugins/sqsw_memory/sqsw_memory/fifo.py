"""FIFO queues: strict order per message group, deduplication, sequence numbers."""

from __future__ import annotations

from collections import deque
from typing import ClassVar

from sqsw_memory.errors import SQSError
from sqsw_memory.message import GONE, INFLIGHT, VISIBLE, Message
from sqsw_memory.queue import DEDUP_WINDOW, Queue, QueueContext, Received
from sqsw_memory.validation import FIFO_DEFAULTS, RedriveTarget

__all__ = ["FifoQueue", "Group"]


class Group:
    """One message group: its messages in send order, including in-flight ones."""

    __slots__ = ("group_id", "messages", "queued")

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.messages: deque[Message] = deque()
        #: whether the group is in the queue's ready deque
        self.queued = False


class FifoQueue(Queue):
    """A FIFO queue.

    A group can be received from while its oldest message is visible; messages
    are then handed out in order until one is not visible (in flight or
    delayed), so a group with a message in flight blocks the messages after it,
    while other groups are served. As on AWS, one receive takes as many messages
    of a group as it can before moving to the next ready group. Groups wait for
    service in a deque in the order they became ready.
    """

    fifo: ClassVar[bool] = True
    defaults: ClassVar[dict[str, str]] = FIFO_DEFAULTS

    def __init__(
        self,
        ctx: QueueContext,
        name: str,
        attributes: dict[str, str],
        tags: dict[str, str],
        redrive: RedriveTarget | None = None,
    ) -> None:
        self.groups: dict[str, Group] = {}
        self.ready: deque[Group] = deque()
        self.dedup: dict[str | tuple[str, str], tuple[float, str, str | None]] = {}
        self.dedup_order: deque[tuple[float, str | tuple[str, str]]] = deque()
        self.attempts: dict[str, tuple[float, list[tuple[Message, int]]]] = {}
        self.attempt_order: deque[tuple[float, str]] = deque()
        self.group_scope = False
        self._taking = False
        super().__init__(ctx, name, attributes, tags, redrive)
        self._next_sequence = int(ctx.wall_clock()) << 33

    def _attributes_changed(self) -> None:
        self.content_dedup = self.attributes["ContentBasedDeduplication"] == "true"
        self.group_scope = self.attributes["DeduplicationScope"] == "messageGroup"

    # -- sending --------------------------------------------------------------------

    def _add_one(self, m: Message, delay: int, now: float) -> tuple[str, str | None]:
        dedup, order = self.dedup, self.dedup_order
        while order and order[0][0] <= now:
            expires, old = order.popleft()
            entry = dedup.get(old)
            if entry is not None and entry[0] == expires:
                del dedup[old]
        assert m.dedup_id is not None
        assert m.group_id is not None
        key: str | tuple[str, str] = (m.group_id, m.dedup_id) if self.group_scope else m.dedup_id
        seen = dedup.get(key)
        if seen is not None:
            # a duplicate within 5 minutes: accepted, not stored, same MessageId
            return seen[1], seen[2]
        result = self._store(m, delay, now)
        expires = now + DEDUP_WINDOW
        dedup[key] = (expires, result[0], result[1])
        order.append((expires, key))
        return result

    def _place(self, m: Message) -> None:
        self._next_sequence += 1
        m.sequence_number = f"{self._next_sequence:020d}"
        assert m.group_id is not None
        group = self.groups.get(m.group_id)
        if group is None:
            group = self.groups[m.group_id] = Group(m.group_id)
        m.group = group
        group.messages.append(m)

    def _enqueue(self, m: Message) -> None:
        self._check_group(m.group)

    def _removed(self, m: Message) -> None:
        if not self._taking:  # _take re-checks the groups it visited itself
            self._check_group(m.group)

    def _check_group(self, group: Group) -> None:
        """Queue ``group`` for service if its oldest message can be received."""
        messages = group.messages
        while messages and messages[0].state == GONE:
            messages.popleft()
        if not messages:
            if self.groups.get(group.group_id) is group:
                del self.groups[group.group_id]
            return
        if messages[0].state == VISIBLE and not group.queued:
            group.queued = True
            self.ready.append(group)
            if self.waiting:
                self.cond.notify()

    # -- receiving ------------------------------------------------------------------

    def _take(
        self,
        count: int,
        visibility: int,
        now: float,
        max_receives: int,
        out: list[Received],
        dead: list[Message],
    ) -> None:
        ready = self.ready
        visited: list[Group] = []
        claim = self._claim
        handle = self.handle
        self._taking = True
        try:
            while ready and len(out) < count:
                group = ready.popleft()
                group.queued = False
                visited.append(group)
                for m in group.messages:
                    state = m.state
                    if state == GONE:
                        continue
                    if state != VISIBLE:
                        break
                    received = claim(m, now, max_receives, dead)
                    if not received:
                        continue
                    if visibility:
                        self._hide(m, now, visibility)
                    out.append((m, handle(m, received), received))
                    if len(out) == count:
                        break
        finally:
            self._taking = False
        for group in visited:
            self._check_group(group)

    def _replay(self, attempt_id: str, visibility: int, now: float) -> list[Received] | None:
        attempts, order = self.attempts, self.attempt_order
        while order and order[0][0] <= now:
            expires, old = order.popleft()
            entry = attempts.get(old)
            if entry is not None and entry[0] == expires:
                del attempts[old]
        entry = attempts.get(attempt_id)
        if entry is None or not entry[1] or not visibility:
            return None
        received = entry[1]
        if any(m.state != INFLIGHT or m.receive_count != count for m, count in received):
            return None
        # the same messages and handles again, with a fresh visibility timeout
        for m, _ in received:
            self._push_inflight(m, now + visibility)
        return [(m, self.handle(m, count), count) for m, count in received]

    def _remember(self, attempt_id: str, out: list[Received], now: float) -> None:
        expires = now + DEDUP_WINDOW
        self.attempts[attempt_id] = (expires, [(m, count) for m, _, count in out])
        self.attempt_order.append((expires, attempt_id))

    # -- deleting and changing visibility -------------------------------------------

    def _check_delete(self, m: Message, receive_count: int, handle: str) -> SQSError | None:
        # FIFO handles expire: once the visibility timeout ran out (or the message was
        # received again) the handle no longer deletes (AWS-validated message).
        if m.state != INFLIGHT or m.receive_count != receive_count:
            return SQSError(
                "InvalidParameterValue",
                f"Value {handle} for parameter ReceiptHandle is invalid. Reason: The receipt "
                "handle has expired.",
            )
        return None

    def _check_change(self, m: Message, receive_count: int, handle: str) -> SQSError | None:
        # the same rule as for deleting: an expired FIFO handle no longer changes anything
        return self._check_delete(m, receive_count, handle)

    def _cleared(self) -> None:
        self.groups.clear()
        self.ready.clear()
        self.dedup.clear()
        self.dedup_order.clear()
        self.attempts.clear()
        self.attempt_order.clear()
