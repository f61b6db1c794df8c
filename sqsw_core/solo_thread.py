"""The solo thread: one thread that receives and runs, for ``concurrency=1`` in process.

On a queue that lives in this process (the in-memory SQS), a receive never waits
on the network, so a poller thread has nothing to overlap with the job thread:
handing every batch from one thread to the other only costs thread switches.
With ``concurrency=1`` and no ``pollers`` or shared job slots asked for, the
engine runs one solo thread instead: it runs the jobs the scheduler holds and,
when none is ready, receives the next batch itself. Everything else is the
engine's as usual (scheduler, visibility heartbeat, batched acks, stops): a
warm stop ends it after the job in progress, and what it received and did not
run is released with the other unrun messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqsw_core.job_threads import JobThread
from sqsw_core.poller import Poller
from sqsw_core.results import SUCCEEDED

if TYPE_CHECKING:
    from sqsw_core.engine import QueueEngine
    from sqsw_core.messages import Message
    from sqsw_core.results import Outcome


class SoloThread(JobThread):
    """A job thread that is also the engine's only poller."""

    def __init__(self, engine: QueueEngine) -> None:
        super().__init__(engine)
        self.poller = Poller(engine, 0, solo=True)

    def run(self) -> None:
        """Run ready jobs; receive when none is ready; end at a stop.

        A job's count waits for the next time the loop takes the scheduler's lock,
        right after the job was settled: one lock round trip per job instead of
        two. A succeeded job is counted there inline when the shutdown policy needs
        no result built (none, or one with ``jobs_ended``), and the thread stays
        counted as running when it takes the next job at once; any other outcome is
        counted by ``count_one``, as a job thread counts it. A FIFO queue's count may
        hand back the buffered messages of a failed job's group, which are released
        outside the lock: it counts each job as a job thread does (``run_job``).
        """
        engine, scheduler = self.engine, self.scheduler
        if scheduler.fifo:
            return self._run_counting_each()
        lock, buffer, stats = scheduler.lock, scheduler.buffer, self.stats
        poll_once, run_bulk, count_one = self.poller.poll_once, self._run_bulk, self.count_one
        start_message = self.runner.start_message
        start_awaitable = engine.async_jobs.start_awaitable
        held_count = engine.keeper.held_count
        policy, jobs_ended = engine.policy, engine.policy_jobs_ended
        count_inline = policy is None or jobs_ended is not None
        bulk = bool(scheduler.bulk_processors)  # only bulk jobs are lists of messages
        job: Message | list[Message] | None = None
        message: Message | None = None  # the last job run (one message's)
        outcome: Outcome | None = None  # its outcome once settled, until counted
        try:
            while True:
                with lock:
                    if outcome is SUCCEEDED and count_inline:  # count_one's, inline
                        outcome = None
                        scheduler.held -= 1
                        stats.succeeded += 1
                        if jobs_ended is not None:
                            assert policy is not None
                            try:
                                jobs_ended(1, 0)
                                if not engine.stop_requests and policy.need_shutdown():
                                    engine.policy_says_stop()
                            except Exception as exc:
                                engine.policy_failed(exc)
                        stats.in_flight = held_count()  # received, not settled yet
                        job = buffer.popleft() if buffer and not engine.stop_requests else None
                        if job is None:  # still counted as running until now
                            scheduler.running -= 1
                            if scheduler.stopping:
                                return
                    else:
                        if outcome is not None:
                            assert message is not None
                            settled, outcome = outcome, None
                            count_one(message, settled)
                        job = buffer.popleft() if buffer and not engine.stop_requests else None
                        if job is not None:
                            scheduler.running += 1
                        elif scheduler.stopping:
                            return
                if job is None:
                    if not poll_once():
                        return
                elif bulk and isinstance(job, list):
                    run_bulk(job)
                else:  # _run_one() inlined, counted at the next lock: this runs once per job
                    one: Message = job  # type: ignore[assignment]  # lists are bulk jobs
                    message = one
                    try:
                        started = start_message(one)
                        if isinstance(started, tuple):
                            outcome = started[0]
                        else:
                            outcome = start_awaitable(one, started)
                    except BaseException:  # the runner never raises; if settling did, retry
                        outcome = self.settle_unsettled(one)
        finally:
            if outcome is not None:  # the loop ended between a job and its count
                assert message is not None
                self.done_one(message, outcome)

    def _run_counting_each(self) -> None:
        """The loop of :meth:`run` for a FIFO queue: each job counted as it ends."""
        engine, scheduler = self.engine, self.scheduler
        poll_once, run_job = self.poller.poll_once, self.run_job
        while True:
            with scheduler.lock:
                job = None if engine.stop_requests else scheduler.next_job()
                if job is not None:
                    scheduler.running += 1
                elif scheduler.stopping:
                    return
            if job is None:
                if not poll_once():
                    return
            else:
                run_job(job)
