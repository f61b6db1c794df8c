"""The engine's job threads: take the next job from the scheduler, run it, count it.

The job runner settles every message (ack, or retry after the backoff); a
job thread then counts the outcome, tells the shutdown policy, frees the
message's FIFO group (after a failure, the group's buffered messages go back
to run after the failed one) and wakes a poller when there is room for a
full batch. A job's ``SystemExit`` or ``KeyboardInterrupt`` does not end the
job thread: its message is settled and logged like any failure.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqsw_core.results import NOT_DUE, SUCCEEDED, BatchProcessingResult, Outcome

if TYPE_CHECKING:
    from sqsw_core.engine import QueueEngine
    from sqsw_core.messages import Message

logger = logging.getLogger("sqsw.engine")

#: The outcome of a job whose settling failed before it had one.
FAILED = Outcome(Outcome.FAILED)


class JobThread:
    """One job thread's loop (``run``) for an engine."""

    def __init__(self, engine: QueueEngine) -> None:
        self.engine = engine
        self.scheduler = engine.scheduler
        self.runner = engine.runner
        self.stats = engine.stats
        self.queue_name = engine.queue.name

    def run(self) -> None:
        """Run jobs until the engine stops taking new ones and none is left to run."""
        engine, scheduler = self.engine, self.scheduler
        slots = engine.slots
        holding = False  # a shared job slot, kept from one job to the next
        try:
            while True:
                with scheduler.lock:
                    job = None if engine.stop_requests else scheduler.next_job()
                    while job is None:
                        if holding:
                            assert slots is not None
                            slots.release()
                            holding = False
                        if scheduler.stopping:
                            return
                        scheduler.jobs.wait()
                        job = None if engine.stop_requests else scheduler.next_job()
                    scheduler.running += 1
                if slots is not None:
                    slots.acquire(engine.queue.name, handing_back=holding)
                    holding = True
                self.run_job(job)
        finally:
            if holding:
                assert slots is not None
                slots.release()

    def run_job(self, job: Message | list[Message]) -> None:
        """Run a job taken from the scheduler (counted in ``running``): one message, or
        the gathered messages of a bulk job."""
        if isinstance(job, list):
            self._run_bulk(job)
        else:
            self._run_one(job)

    def _run_one(self, message: Message) -> None:
        """Run one message's job and count it; an async job is handed to the engine's
        async jobs, which settle and count it when its coroutine ends."""
        outcome: Outcome | None = FAILED
        try:
            outcome = self.engine.async_jobs.start(self, message)
        except BaseException:  # the runner never raises; if settling did, retry here
            engine = self.engine
            if engine.keeper.is_held(message):
                logger.exception(
                    "Settling message %s of %s failed", message.message_id, self.queue_name
                )
                outcome = Outcome(Outcome.FAILED, engine.settler.retry(message))
        finally:
            if outcome is not None:
                self.done_one(message, outcome)

    def done_one(self, message: Message, outcome: Outcome) -> None:
        """Count one settled job (:meth:`_done` for one message, without its lists: this
        runs once per job)."""
        scheduler, stats, engine = self.scheduler, self.stats, self.engine
        with scheduler.lock:
            scheduler.running -= 1
            scheduler.held -= 1
            if outcome is SUCCEEDED:
                stats.succeeded += 1
            else:
                stats.count(outcome)
            policy = engine.policy
            if policy is not None and outcome is not NOT_DUE:
                if outcome is SUCCEEDED:
                    policy.update_state(BatchProcessingResult(self.queue_name, [message]))
                else:
                    policy.update_state(BatchProcessingResult(self.queue_name, [], [message]))
                engine.check_policy()
            stats.in_flight = engine.keeper.held_count()  # received, not settled yet
            dropped = scheduler.free_group(message, outcome.ok) if scheduler.fifo else None
            if not scheduler.solo and scheduler.capacity - scheduler.held >= scheduler.batch_room:
                scheduler.room.notify()  # a poller can receive a full batch now
        if dropped:
            # Visible just after the failed message, so they run after it.
            self.engine.release(dropped, outcome.retry_delay + 1)

    def _run_bulk(self, messages: list[Message]) -> None:
        """Run the gathered messages of one bulk job together; count them."""
        engine = self.engine
        outcomes = [FAILED] * len(messages)
        try:
            outcomes, _ = self.runner.run_bulk(messages)
        except BaseException:  # the runner never raises; if settling did, retry here
            logger.exception("Settling a bulk job of %s failed", engine.queue.name)
            for message in messages:
                if engine.keeper.is_held(message):
                    engine.settler.retry(message)
        finally:
            self._done(messages, outcomes)

    def _done(self, messages: list[Message], outcomes: list[Outcome]) -> None:
        """Count the settled jobs of a bulk job (FIFO queues have none)."""
        engine, scheduler = self.engine, self.scheduler
        with scheduler.lock:
            scheduler.running -= 1
            scheduler.held -= len(messages)
            for outcome in outcomes:
                engine.stats.count(outcome)
            policy = engine.policy
            if policy is not None:
                ok = [m for m, o in zip(messages, outcomes, strict=True) if o.ok]
                failed = [m for m, o in zip(messages, outcomes, strict=True) if o.ok is False]
                if ok or failed:
                    policy.update_state(BatchProcessingResult(engine.queue.name, ok, failed))
                    engine.check_policy()
            engine.stats.in_flight = engine.keeper.held_count()  # received, not settled yet
            if scheduler.has_room():
                scheduler.room.notify()  # a poller can receive a full batch now
