"""Standard queues: at-least-once, best-effort order."""

from __future__ import annotations

from collections import deque
from heapq import heappush
from typing import ClassVar

from sqsw_memory.message import INFLIGHT, VISIBLE, Message
from sqsw_memory.queue import Queue, QueueContext, Received
from sqsw_memory.validation import STANDARD_DEFAULTS, RedriveTarget

__all__ = ["StandardQueue"]


class StandardQueue(Queue):
    """A standard queue: receivable messages wait in one deque, oldest first.

    The deque may hold entries of messages deleted while visible; they are
    dropped when they reach the front (checking ``state``), never searched for.
    A message that becomes visible again goes to the back.
    """

    fifo: ClassVar[bool] = False
    defaults: ClassVar[dict[str, str]] = STANDARD_DEFAULTS

    def __init__(
        self,
        ctx: QueueContext,
        name: str,
        attributes: dict[str, str],
        tags: dict[str, str],
        redrive: RedriveTarget | None = None,
    ) -> None:
        self.visible: deque[Message] = deque()
        super().__init__(ctx, name, attributes, tags, redrive)

    def _enqueue(self, m: Message) -> None:
        self.visible.append(m)
        if self.waiting:
            self.cond.notify()

    def _take(
        self,
        count: int,
        visibility: int,
        now: float,
        max_receives: int,
        out: list[Received],
        dead: list[Message],
    ) -> None:
        # Queue._claim and Queue._hide inlined: this is the hot path of every receive
        visible = self.visible
        popleft = visible.popleft
        prefix = self.handle_prefix
        retention = self.retention
        deadline = now + visibility
        by_handle = self.handles
        append = out.append
        first_ms = 0
        hidden: list[Message] = []  # one heap entry for all (Queue.inflight)
        kept: list[Message] = []
        room = count - len(out)
        while room > 0 and visible:
            m = popleft()
            if m.state != VISIBLE:
                continue
            if now - m.sent_at >= retention:
                self._remove(m)  # retention ran out: SQS deletes it
                continue
            received = m.receive_count + 1
            if max_receives and received > max_receives:
                self._remove(m)
                dead.append(m)
                continue
            m.receive_count = received
            if not m.first_receive_ms:
                if not first_ms:
                    first_ms = int(self.ctx.wall_clock() * 1000)
                m.first_receive_ms = first_ms
            m.received_at = now
            if visibility:
                m.state = INFLIGHT
                m.deadline = deadline
                hidden.append(m)
            else:
                kept.append(m)
            handle = f"{prefix}{m.seq}.{received}"
            if m.handle is not None:
                del by_handle[m.handle]
            m.handle = handle
            by_handle[handle] = m
            append((m, handle, received))
            room -= 1
        self._finish_take(deadline, hidden, kept)

    def _finish_take(self, deadline: float, hidden: list[Message], kept: list[Message]) -> None:
        """After :meth:`_take`: count the messages it hid (in flight until ``deadline``),
        requeue those it left visible."""
        if hidden:
            self.n_visible -= len(hidden)
            self.n_inflight += len(hidden)
            heap = self.inflight
            heappush(heap, (deadline, next(self._tick), hidden))
            if self.waiting and heap[0][2] is hidden:
                # an earlier deadline than long polls are waiting for: let them recompute
                self.cond.notify_all()
            if len(heap) > 2 * self.n_inflight + 1024:
                self._compact_inflight()
        if kept:
            # received with VisibilityTimeout=0: visible again at once, but not twice per call
            self.visible.extend(kept)

    def _cleared(self) -> None:
        self.visible.clear()
