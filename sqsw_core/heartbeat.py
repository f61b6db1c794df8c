"""Visibility heartbeat: keep every held message invisible until it is settled.

A message a worker holds (prefetched or running) would become visible to
other workers when its visibility timeout runs out, and run twice. The
:class:`VisibilityKeeper` extends the timeout of each held message shortly
before it expires, ten per ``ChangeMessageVisibilityBatch`` call, until the
message is settled (acked, retried or released), or until the job has run
for ``max_job_duration``.

Every visibility change of a queue, the keeper's and the acker's (retry
delays, releases), is sent under one lock, and a settled message is
forgotten under that lock first, so an extension never overrides a backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqsw_core.exceptions import QueueNotFoundError
from sqsw_core.limits import MAX_VISIBILITY_TIMEOUT, chunks
from sqsw_core.log_text import log_extra, shorten
from sqsw_core.sqs_calls import change_visibility_batch, log_refused

if TYPE_CHECKING:
    from sqsw_core.messages import Message
    from sqsw_core.queue_handle import QueueHandle
    from sqsw_core.sqs_calls import ReceivedMessage

logger = logging.getLogger("sqsw.heartbeat")


#: A held message's entry is a list ``[deadline, since, message]`` (monotonic times: its
#: visibility runs out, it was received): a list literal per received message costs a
#: fraction of an object's ``__init__``, and the heartbeat changes the deadline in place.
_Held = list[Any]
DEADLINE, SINCE, MESSAGE = 0, 1, 2


class VisibilityKeeper:
    """Extends the visibility timeout of held messages before it runs out."""

    def __init__(
        self,
        queue: QueueHandle,
        visibility_timeout: int,
        *,
        max_job_duration: float = MAX_VISIBILITY_TIMEOUT,
        on_extended: Callable[[int], None] | None = None,
    ) -> None:
        self.queue = queue
        self.visibility_timeout = max(1, visibility_timeout)
        self.max_job_duration = max_job_duration
        # Extend when less than a third of the timeout is left (at least 2 s,
        # since SQS servers apply timeouts with about a second of slack).
        self.margin = max(2.0, self.visibility_timeout / 3)
        self.lock = threading.RLock()
        self._held: dict[str, _Held] = {}
        #: How many messages are held: ``len(keeper)`` without a Python call (the
        #: engine reads it once per job).
        self.held_count: Callable[[], int] = self._held.__len__
        #: ``drop_acked(receipt_handle, None)``: stop keeping an acked message. Without
        #: the lock, unlike :meth:`forget`: a delete needs no order against an extension
        #: in progress (one that reaches SQS after the delete is refused, and not logged,
        #: the message being no longer held). Retries and releases go through ``forget``.
        self.drop_acked: Callable[[str, None], object] = self._held.pop
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_extended = on_extended

    def hold_all(self, messages: list[Message], received_at: float) -> None:
        """Start keeping the messages of one receive (received at ``received_at``,
        monotonic), under one lock."""
        deadline = received_at + self.visibility_timeout
        with self.lock:
            held = self._held
            for message in messages:
                held[message.receipt_handle] = [deadline, received_at, message]

    def forget(self, message: ReceivedMessage) -> bool:
        """Stop extending ``message`` (it is being settled); whether it was held."""
        with self.lock:
            return self._held.pop(message.receipt_handle, None) is not None

    def is_held(self, message: Message) -> bool:
        """Whether ``message`` is still kept (not settled yet)."""
        return message.receipt_handle in self._held

    def held(self) -> list[Message]:
        with self.lock:
            # A snapshot first: drop_acked changes the dict without the lock.
            return [h[MESSAGE] for h in list(self._held.values())]

    def __len__(self) -> int:
        return len(self._held)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"sqsw-heartbeat-{self.queue.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        tick = min(1.0, self.margin / 2)
        failures = 0
        while not self._stop.wait(tick):
            try:
                self.extend_due(time.monotonic())
                failures = 0
            except Exception as exc:  # keep beating: the next tick retries
                failures += 1
                # The traceback once per outage, not at every tick.
                logger.error(
                    "Visibility heartbeat of %s failed (%d in a row): %s: %s",
                    self.queue.name,
                    failures,
                    type(exc).__name__,
                    exc,
                    exc_info=failures == 1 and not isinstance(exc, QueueNotFoundError),
                )

    def extend_due(self, now: float) -> int:
        """Extend every held message that expires within the margin; returns how many."""
        with self.lock:
            due: list[_Held] = []
            for handle, held in list(self._held.items()):
                if held[DEADLINE] - now > self.margin:
                    continue
                if now - held[SINCE] >= self.max_job_duration:
                    if self._held.pop(handle, None) is None:
                        continue  # acked meanwhile (drop_acked)
                    message = held[MESSAGE]
                    logger.warning(
                        "Job %s.%s (message %s) has run for %.0f s, the maximum job duration; "
                        "no longer extending its visibility: it may run again elsewhere",
                        self.queue.name,
                        shorten(message.job_name),
                        message.message_id,
                        now - held[SINCE],
                        extra=log_extra(self.queue, message),
                    )
                    continue
                due.append(held)
            for chunk in chunks(due):
                self._extend(chunk, now)
        if due and self._on_extended is not None:
            self._on_extended(len(due))
        return len(due)

    def _extend(self, chunk: list[_Held], now: float) -> None:
        timeout = self.visibility_timeout
        refused = change_visibility_batch(self.queue, [(h[MESSAGE], timeout) for h in chunk])
        for i, held in enumerate(chunk):
            failure = refused.get(i)
            if failure is None:
                held[DEADLINE] = now + timeout
                continue
            message = held[MESSAGE]
            if self._held.pop(message.receipt_handle, None) is not None:
                # Not logged for a message acked meanwhile (see drop_acked): it is deleted.
                log_refused(self.queue, message, failure, "extend the visibility of")
