"""The engine's pollers: each long-polls SQS for full batches while the scheduler has room.

A poller receives only full batches (10, or what the buffer can take): fewer
requests, and SQS answers a small ``MaxNumberOfMessages`` with a small batch
even from a deep queue. While the queue is found empty, or receives fail,
only the first poller polls. A stop starts no new receive; what a receive in
progress returns after the stop began is released with the other unrun
messages, never run.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING

from sqsw_core.exceptions import QueueNotFoundError
from sqsw_core.shutdown_policies import receive_wait_limit

if TYPE_CHECKING:
    from sqsw_core.engine import QueueEngine
    from sqsw_core.messages import Message

logger = logging.getLogger("sqsw.engine")

#: Consecutive receives that may find the queue gone before the engine gives up.
MISSING_QUEUE_ATTEMPTS = 5
#: Seconds between receives after a failed one: the n-th consecutive failure waits
#: the n-th value (the last one repeats).
RECEIVE_RETRY_DELAYS = (1.0, 1.0, 2.0, 2.0, 5.0)


class Poller:
    """One poller thread's loop (``run``) for an engine."""

    def __init__(self, engine: QueueEngine, index: int, solo: bool = False) -> None:
        self.engine = engine
        self.scheduler = engine.scheduler
        self.index = index
        #: The poller of a solo thread, which runs the jobs too (solo_thread.py).
        self.solo = solo

    def run(self) -> None:
        """Receive until the engine stops (or gives up on a queue that is gone)."""
        while self.poll_once():
            pass

    def poll_once(self) -> bool:
        """Reserve room, receive one batch and hand it on; False once the poller should end
        (a stop, or a queue found gone too often). A solo poller (the engine's only
        thread, see solo_thread.py) does not wait for room while jobs are ready to run:
        it returns True without receiving, for its caller to run them."""
        engine = self.engine
        reserved = self._reserve()
        if reserved is None:
            return False  # no new receive once a stop is asked for
        want, wait = reserved
        if not want:
            return True
        try:
            messages = engine.runner.receive(wait, want)
        except Exception as exc:
            scheduler = self.scheduler
            with scheduler.lock:
                scheduler.held -= want
                scheduler.receives -= 1
                scheduler.receive_failures += 1
                failures = scheduler.receive_failures
                # Only answers that the queue is gone count toward giving up on it: receives
                # that could not reach SQS (a restart, say) say nothing about the queue.
                if isinstance(exc, QueueNotFoundError):
                    scheduler.missing_queue_receives += 1
                else:
                    scheduler.missing_queue_receives = 0
                gone = scheduler.missing_queue_receives
            return self._receive_failed(exc, failures, gone)
        self._received(messages, want)
        if not messages:
            engine.wake.set()
            if not wait:
                engine.stopped.wait(0.05)  # short polls of an empty queue: no hot loop
        return True

    def _reserve(self) -> tuple[int, int] | None:
        """Wait for room for a full batch and reserve it; (batch size, seconds to wait),
        or ``None`` once the engine stops. A solo poller gets (0, 0) instead of waiting
        when jobs are ready to run, and a short poll while a bulk job is being gathered
        (a long poll in its thread would hold that job back)."""
        scheduler, solo = self.scheduler, self.solo
        with scheduler.lock:
            want = scheduler.batch_room
            while not scheduler.stopping and (
                scheduler.capacity - scheduler.held < want
                or (self.index and (scheduler.last_poll_empty or scheduler.receive_failures))
            ):
                if solo and scheduler.buffer:
                    return 0, 0
                scheduler.room.wait()
            if scheduler.stopping or self.engine.stop_requests:
                return None
            scheduler.held += want
            scheduler.receives += 1
            wait = 0 if solo and scheduler.gathering else self._receive_wait()
            return want, wait

    def _received(self, messages: list[Message], want: int) -> None:
        """Hold what a receive returned and hand it to the scheduler (or the stop)."""
        engine, scheduler = self.engine, self.scheduler
        now = time.monotonic()
        engine.keeper.hold_all(messages, now)
        redelivered = len(messages) - [
            m.attributes.get("ApproximateReceiveCount", "1") for m in messages
        ].count("1")
        late: list[Message] = []
        with scheduler.lock:
            scheduler.held -= want - len(messages)
            scheduler.receives -= 1
            if (scheduler.last_poll_empty and messages) or scheduler.receive_failures:
                scheduler.room.notify_all()  # wake the paused pollers
            scheduler.receive_failures = scheduler.missing_queue_receives = 0
            scheduler.last_poll_empty = not messages
            if not messages and engine.policy is not None:
                # Now, before this poller's next receive: its wait depends on it.
                engine.note_idle()
            if scheduler.stopping:
                # Received after the stop began: never run, released with the rest.
                scheduler.held -= len(messages)
                if scheduler.unrun_released:
                    late = messages
                else:
                    scheduler.unrun.extend(messages)
            elif messages:
                engine.stats.received += len(messages)
                engine.stats.redelivered += redelivered
                engine.stats.in_flight = engine.keeper.held_count()  # received, not settled yet
                scheduler.add(messages, now)
        if late:
            engine.release(late)

    def _receive_wait(self) -> int:
        """Seconds the next receive may wait (under the lock): ``wait_seconds``, but never
        past the moment the shutdown policy could stop the engine."""
        engine = self.engine
        if engine.policy is None:
            return engine.wait_seconds
        try:
            limit = receive_wait_limit(engine.policy)
        except Exception as exc:
            engine.policy_failed(exc)
            return 0  # the engine is stopping: no long poll
        if limit is None:
            return engine.wait_seconds
        return max(0, min(engine.wait_seconds, math.ceil(limit)))

    def _receive_failed(self, exc: Exception, failures: int, gone: int) -> bool:
        """Log a failed receive and wait before the next; False: the engine gives up.
        ``failures``: receives failed in a row; ``gone``: of those, the last ones in a row
        that found the queue missing."""
        name = self.engine.queue.name
        if isinstance(exc, QueueNotFoundError):
            if gone >= MISSING_QUEUE_ATTEMPTS:
                logger.error(
                    "Queue %s no longer exists (%d receives in a row found it gone); stopping",
                    name,
                    gone,
                )
                self.engine.fail(exc)
                return False
            logger.warning(
                "Queue %s does not exist (receive %d of %d before the worker stops): %s",
                name,
                gone,
                MISSING_QUEUE_ATTEMPTS,
                exc,
            )
        else:
            # The traceback once per outage, not once per second.
            logger.error(
                "Receiving from %s failed (%d in a row): %s: %s",
                name,
                failures,
                type(exc).__name__,
                exc,
                exc_info=failures == 1,
            )
        delay = RECEIVE_RETRY_DELAYS[min(failures, len(RECEIVE_RETRY_DELAYS)) - 1]
        self.engine.stopped.wait(delay)
        return True
