"""Settling on Lambda: the verdict on each record, for the event source mapping to act on.

In a worker process the core's :class:`~sqsw_core.settling.Settler` deletes a
succeeded message and changes the visibility of a failed one through its
:class:`~sqsw_core.settling.Acker`. On Lambda the event source mapping
deletes the records the function did not report as failed, so the handler
must not delete anything itself: :class:`Verdicts` takes the Acker's place and
only records what the core decided. A record is reported as failed unless the
core acked it (a job that succeeded, or a long-delayed job sent on to its
next hop); the visibility delays the core asked for (backoff, FIFO order,
records given back unrun) are then applied with ``ChangeMessageVisibility``,
which Lambda does not do on its own.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from sqsw_core.settling import Acker

if TYPE_CHECKING:
    from sqsw_core.messages import Message
    from sqsw_core.queue_handle import QueueHandle

__all__ = ["Verdicts"]


class Verdicts(Acker):
    """Records acks and visibility delays of one invocation's messages; sends nothing."""

    def __init__(self, queue: QueueHandle) -> None:
        super().__init__(queue)
        self._verdicts_lock = threading.Lock()
        #: Message ids the core acked (their jobs are done).
        self.acked: set[str] = set()
        #: Message id -> seconds until it is delivered again, for those not acked.
        self.delays: dict[str, int] = {}

    def ack(self, message: Message) -> None:
        with self._verdicts_lock:
            self.delays.pop(message.message_id, None)
            self.acked.add(message.message_id)

    def retry(self, message: Message, visibility_timeout: int) -> None:
        with self._verdicts_lock:
            self.acked.discard(message.message_id)
            self.delays[message.message_id] = visibility_timeout

    def delay_of(self, message: Message) -> int | None:
        """The delay recorded for ``message``, or ``None`` (acked, or left to its timeout)."""
        with self._verdicts_lock:
            return self.delays.get(message.message_id)

    def succeeded(self, message: Message) -> bool:
        """Whether the core acked ``message``: the mapping may delete it."""
        with self._verdicts_lock:
            return message.message_id in self.acked

    def flush(self, full_only: bool = False) -> None:
        """Nothing to send: the event source mapping deletes, the handler delays."""

    def close(self) -> None:
        """Nothing to stop: no thread was started."""
