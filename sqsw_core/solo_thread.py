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

if TYPE_CHECKING:
    from sqsw_core.engine import QueueEngine


class SoloThread(JobThread):
    """A job thread that is also the engine's only poller."""

    def __init__(self, engine: QueueEngine) -> None:
        super().__init__(engine)
        self.poller = Poller(engine, 0, solo=True)

    def run(self) -> None:
        """Run ready jobs; receive when none is ready; end at a stop."""
        engine, scheduler = self.engine, self.scheduler
        poll_once, run_one, run_bulk = self.poller.poll_once, self._run_one, self._run_bulk
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
            elif isinstance(job, list):  # run_job() inlined: this runs once per job
                run_bulk(job)
            else:
                run_one(job)
