"""Standard queues: at-least-once, best-effort order."""

from __future__ import annotations

from collections import deque
from typing import ClassVar

from sqsw_memory.message import VISIBLE, Message
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
        visible = self.visible
        popleft = visible.popleft
        claim = self._claim
        handle = self.handle
        kept: list[Message] = []
        while visible and len(out) < count:
            m = popleft()
            if m.state != VISIBLE:
                continue
            received = claim(m, now, max_receives, dead)
            if not received:
                continue
            if visibility:
                self._hide(m, now, visibility)
            else:
                kept.append(m)
            out.append((m, handle(m, received), received))
        if kept:
            # received with VisibilityTimeout=0: visible again at once, but not twice per call
            visible.extend(kept)

    def _cleared(self) -> None:
        self.visible.clear()
