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
        try:
            started = self.runner.start_message(message)
            if isinstance(started, tuple):
                outcome: Outcome | None = started[0]
            else:
                outcome = self.engine.async_jobs.start_awaitable(message, started)
        except BaseException:  # the runner never raises; if settling did, retry here
            outcome = self.settle_unsettled(message)
        if outcome is not None:
            self.done_one(message, outcome)

    def settle_unsettled(self, message: Message) -> Outcome:
        """Retry ``message`` after its settling raised, if it is still held; the outcome to
        count. Should the retry raise too, the job is counted as failed before that goes on."""
        engine = self.engine
        try:
            if engine.keeper.is_held(message):
                logger.exception(
                    "Settling message %s of %s failed", message.message_id, self.queue_name
                )
                return Outcome(Outcome.FAILED, engine.settler.retry(message))
        except BaseException:
            self.done_one(message, FAILED)
            raise
        return FAILED

    def done_one(self, message: Message, outcome: Outcome) -> None:
        """Count one settled job and wake a poller if there is room for a full batch."""
        scheduler = self.scheduler
        with scheduler.lock:
            dropped = self.count_one(message, outcome)
            if scheduler.capacity - scheduler.held >= scheduler.batch_room:
                # A poller can receive a full batch now (a solo thread too: its own jobs
                # are counted without this call, but an async job ends on another thread).
                scheduler.room.notify()
        if dropped:
            # Visible just after the failed message, so they run after it.
            self.engine.release(dropped, outcome.retry_delay + 1)

    def count_one(self, message: Message, outcome: Outcome) -> list[Message] | None:
        """Count one settled job (under the scheduler's lock; :meth:`_done` for one message,
        without its lists: this runs once per job): the counters, the shutdown policy, the
        message's FIFO group. On a FIFO queue, the group's buffered messages taken out after
        a failure are returned, for the caller to release after the lock."""
        scheduler, stats, engine = self.scheduler, self.stats, self.engine
        scheduler.running -= 1
        scheduler.held -= 1
        if outcome is SUCCEEDED:
            stats.succeeded += 1
        else:
            stats.count(outcome)
        policy = engine.policy
        if policy is not None and outcome is not NOT_DUE:
            try:
                jobs_ended = engine.policy_jobs_ended
                if jobs_ended is not None:
                    jobs_ended(1, 0) if outcome is SUCCEEDED else jobs_ended(0, 1)
                elif outcome is SUCCEEDED:
                    policy.update_state(BatchProcessingResult(self.queue_name, [message]))
                else:
                    policy.update_state(BatchProcessingResult(self.queue_name, [], [message]))
                if not engine.stop_requests and policy.need_shutdown():
                    engine.policy_says_stop()
            except Exception as exc:
                engine.policy_failed(exc)
        stats.in_flight = engine.keeper.held_count()  # received, not settled yet
        return scheduler.free_group(message, outcome.ok) if scheduler.fifo else None

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
                try:
                    if ok or failed:
                        policy.update_state(BatchProcessingResult(engine.queue.name, ok, failed))
                        if not engine.stop_requests and policy.need_shutdown():
                            engine.policy_says_stop()
                except Exception as exc:
                    engine.policy_failed(exc)
            engine.stats.in_flight = engine.keeper.held_count()  # received, not settled yet
            if scheduler.has_room():
                scheduler.room.notify()  # a poller can receive a full batch now
