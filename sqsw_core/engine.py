"""The engine behind ``process_queue``: one queue, run by threads until stopped.

One engine serves one queue: pollers (poller.py) long-poll SQS (10 messages
per call) into the scheduler's bounded buffer (scheduler.py); ``concurrency``
job threads (job_threads.py) run the jobs through the job runner; acks and
retry delays go out in batches (settling.py); a visibility heartbeat
(heartbeat.py) keeps every held message invisible until it is settled. This
module builds those parts, runs them, and stops them.

A warm stop (the first SIGTERM/SIGINT/SIGHUP, or the shutdown policy) starts
no new receive and no new job. Receives already in progress are waited for
(the in-memory session ends them at once; on SQS they end within
``wait_seconds``), then every message that did not run, the prefetched ones
and whatever those receives returned, is released in one go, so a stop costs
a waiting message exactly one receive. Running jobs finish within
``grace_period``; acks are flushed. A cold stop (a second signal a second or
more after the first, or SIGQUIT) abandons running jobs: their messages are
released with the rest, after the receives in progress ended, so nothing is
left in flight when the process exits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from sqsw_core.async_jobs import DEFAULT_ASYNC_CONCURRENCY, AsyncJobs
from sqsw_core.engine_options import check_engine_options
from sqsw_core.heartbeat import VisibilityKeeper
from sqsw_core.job_runner import JobRunner
from sqsw_core.job_threads import JobThread
from sqsw_core.limits import MAX_BATCH_ENTRIES, POLL_END_SLACK
from sqsw_core.poller import MISSING_QUEUE_ATTEMPTS, RECEIVE_RETRY_DELAYS, Poller
from sqsw_core.results import BatchProcessingResult, EngineStats
from sqsw_core.scheduler import JobScheduler
from sqsw_core.settling import Acker, Settler, visibility_timeout
from sqsw_core.shutdown_policies import (
    NEVER_SHUTDOWN,
    NeverShutdown,
    ShutdownPolicy,
    jobs_ended_hook,
)
from sqsw_core.solo_thread import SoloThread
from sqsw_core.stop_signals import StopSignals

if TYPE_CHECKING:
    from sqsw_core.messages import Message
    from sqsw_core.queue_handle import QueueHandle
    from sqsw_core.slots import SlotAllocator

logger = logging.getLogger("sqsw.engine")

#: Threads running jobs when none is asked for: sized for I/O-bound jobs.
DEFAULT_CONCURRENCY = 16


__all__ = [
    "DEFAULT_CONCURRENCY",
    "MISSING_QUEUE_ATTEMPTS",
    "POLL_END_SLACK",
    "RECEIVE_RETRY_DELAYS",
    "EngineStats",
    "QueueEngine",
]


def _pollers_and_prefetch(
    queue: QueueHandle, concurrency: int, pollers: int | None, prefetch: int | None
) -> tuple[int, int]:
    """The number of pollers and the prefetch, where not given.

    Enough pollers to keep the job threads fed while a receive is in flight,
    and room for each to have a full batch of 10 on its way, and for the
    largest bulk job to fill up. A FIFO queue gets one poller, so batches of a
    group arrive in order even from servers that hand out a group's messages to
    parallel receives.
    """
    pollers = pollers or (1 if queue.is_fifo else max(4, min(8, -(-concurrency // 4))))
    if prefetch is None:
        largest_bulk = max((p.max_jobs for p in queue.bulk_processors.values()), default=0)
        prefetch = max(MAX_BATCH_ENTRIES * pollers, largest_bulk + MAX_BATCH_ENTRIES)
    return pollers, prefetch


class QueueEngine:
    """Runs the jobs of one queue with threads until stopped."""

    def __init__(
        self,
        queue: QueueHandle,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        prefetch: int | None = None,
        pollers: int | None = None,
        wait_seconds: float = 20,
        shutdown_policy: ShutdownPolicy = NEVER_SHUTDOWN,
        grace_period: float = 30.0,
        max_job_duration: float = 12 * 3600,
        async_concurrency: int | None = None,
        stats_interval: float = 60.0,
        handle_signals: bool = True,
        slots: SlotAllocator | None = None,
        shared_stop: bool = False,
    ) -> None:
        check_engine_options(
            concurrency=concurrency,
            async_concurrency=async_concurrency,
            pollers=pollers,
            prefetch=prefetch,
            wait_seconds=wait_seconds,
            grace_period=grace_period,
            max_job_duration=max_job_duration,
            stats_interval=stats_interval,
        )
        self.queue = queue
        self.concurrency = concurrency
        #: One thread receives and runs (solo_thread.py): one job at a time from a
        #: queue in this process, where a receive has no network wait to overlap.
        self.solo = concurrency == 1 and pollers is None and slots is None and queue.process_local
        #: Coroutines of async jobs in flight at most (async_jobs.py), beside the
        #: ``concurrency`` job threads; the engine holds that many more messages, and
        #: has the pollers to keep them fed.
        self.async_concurrency = async_concurrency or DEFAULT_ASYNC_CONCURRENCY
        async_room = self.async_concurrency if queue.has_async_jobs else 0
        self.pollers, self.prefetch = _pollers_and_prefetch(
            queue, concurrency + async_room, 1 if self.solo else pollers, prefetch
        )
        self.capacity = concurrency + async_room + self.prefetch
        self.wait_seconds = int(wait_seconds)  # SQS takes whole seconds
        self.shutdown_policy = shutdown_policy
        self.grace_period = grace_period
        self.max_job_duration = max_job_duration
        self.stats_interval = stats_interval
        self.handle_signals = handle_signals
        #: Other worker processes on this queue stop with this one (a supervisor's
        #: children): unrun messages are released only once their receives, started
        #: before the same stop, have ended too, or those would take them again.
        self.shared_stop = shared_stop
        self.slots = slots
        self.stats = EngineStats()

        self.scheduler = JobScheduler(
            self.capacity, queue.is_fifo, queue.bulk_processors, solo=self.solo
        )
        # A policy that never stops needs no per-job bookkeeping.
        self.policy = None if isinstance(shutdown_policy, NeverShutdown) else shutdown_policy
        #: How a job's end is told to the policy without a result built per job, if it can be.
        self.policy_jobs_ended = jobs_ended_hook(self.policy)
        self.stop_requests = 0  # 1: warm stop asked, 2: cold stop asked
        self.stopped = threading.Event()  # set with the first stop request
        #: Wakes the main thread (a stop, an empty receive).
        self.wake = threading.Event()
        #: Why the engine gave up (a queue that no longer exists), raised by run().
        self._fatal: BaseException | None = None
        self._threads: list[threading.Thread] = []

    # -- control --------------------------------------------------------------

    def request_stop(self, cold: bool = False) -> None:
        """Ask the engine to stop, warm (the default) or cold; asking again changes
        nothing unless it asks for a cold stop."""
        self.stop_requests = max(self.stop_requests, 2 if cold else 1)
        self.stopped.set()
        self.wake.set()

    def fail(self, error: BaseException) -> None:
        """Give up (a queue that no longer exists): stop, and have ``run`` raise ``error``."""
        self._fatal = error
        self.request_stop()

    def held(self) -> list[Message]:
        """Every message this engine holds now: prefetched, running or being released."""
        return self.keeper.held()

    def waiting(self) -> list[Message]:
        """The held messages whose job has not started (prefetched or being gathered)."""
        with self.scheduler.lock:
            return self.scheduler.waiting()

    def health(self) -> dict[str, object]:
        """What a health check reports of this engine: ``running`` (its threads have
        started), ``stopping`` (a stop was asked) and ``dead_threads``, the names of its
        job, poller and visibility-heartbeat threads that have ended (all of them end
        during a stop)."""
        keeper = getattr(self, "keeper", None)
        threads = list(self._threads)
        if keeper is not None and keeper._thread is not None:
            threads.append(keeper._thread)
        return {
            "running": bool(threads),
            "stopping": self.stop_requests > 0,
            "dead_threads": [t.name for t in threads if not t.is_alive()],
        }

    # -- running --------------------------------------------------------------

    def run(self) -> EngineStats:
        """Process the queue until stopped; returns the run's counters."""
        queue = self.queue
        visibility = visibility_timeout(queue)
        self.keeper = VisibilityKeeper(
            queue, visibility, max_job_duration=self.max_job_duration, on_extended=self._extended
        )
        self.acker = Acker(queue, visibility_lock=self.keeper.lock)
        self.settler = Settler(queue, self.acker, self.keeper)
        self.runner = JobRunner(queue, self.settler)
        self.async_jobs = AsyncJobs(self, self.async_concurrency)
        signals = StopSignals(self.request_stop, f"queue {queue.name}")
        if self.handle_signals:
            signals.install()
        logger.info(
            "Processing %s: concurrency=%d prefetch=%d pollers=%d%s visibility=%ds",
            queue.name,
            self.concurrency,
            self.prefetch,
            self.pollers,
            " (solo: the job thread receives)" if self.solo else "",
            visibility,
        )
        try:
            self.keeper.start()
            if self.solo:
                self._spawn(SoloThread(self).run, f"sqsw-job-{queue.name}-0")
            else:
                for i in range(self.concurrency):
                    self._spawn(JobThread(self).run, f"sqsw-job-{queue.name}-{i}")
                for i in range(self.pollers):
                    self._spawn(Poller(self, i).run, f"sqsw-poll-{queue.name}-{i}")
            self._supervise()
            self._shutdown()
        finally:
            signals.restore()
        logger.info("Stopped processing %s: %s", queue.name, self.stats)
        if self._fatal is not None:
            raise self._fatal
        return self.stats

    def _spawn(self, target: Callable[[], None], name: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    def _extended(self, count: int) -> None:
        self.stats.extended += count

    def _supervise(self) -> None:
        """Main thread: flush gathered bulk jobs, feed the shutdown policy, log counters,
        wait for a stop."""
        next_stats = time.monotonic() + self.stats_interval
        scheduler = self.scheduler
        while self.stop_requests == 0:
            self.wake.wait(0.05 if scheduler.bulk_processors else 0.1)
            self.wake.clear()
            if scheduler.gathering:
                with scheduler.lock:
                    scheduler.flush_gathered(time.monotonic())
            if self.policy is not None:
                with scheduler.lock:
                    self.note_idle()
            self.stats.failed_acks = self.acker.failed_acks
            now = time.monotonic()
            if now >= next_stats:
                logger.info("%s: %s", self.queue.name, self.stats)
                next_stats = now + self.stats_interval

    def note_idle(self) -> None:
        """Tell the shutdown policy the queue is idle, if it is (under the scheduler's lock)."""
        scheduler = self.scheduler
        policy = self.policy
        if (
            policy is not None
            and scheduler.last_poll_empty
            and not scheduler.buffer
            and scheduler.running == 0
        ):
            try:
                policy.update_state(BatchProcessingResult(self.queue.name))
                if self.stop_requests == 0 and policy.need_shutdown():
                    self.policy_says_stop()
            except Exception as exc:
                self.policy_failed(exc)

    def policy_says_stop(self) -> None:
        """The shutdown policy said stop (under the scheduler's lock): a warm stop."""
        logger.info("Shutdown policy %r: stopping %s", self.policy, self.queue.name)
        self.request_stop()

    def policy_failed(self, error: Exception) -> None:
        """The shutdown policy raised (under the scheduler's lock): a policy that cannot say
        when to stop is not asked again, the engine stops warm, and ``run`` raises
        ``error`` once the stop is done (every unrun message released, acks sent)."""
        if self.policy is None:
            return  # it failed already; a job thread that had it in hand asked again
        logger.error(
            "Shutdown policy %r of %s raised; stopping (warm), then raising it",
            self.policy,
            self.queue.name,
            exc_info=error,
        )
        self.policy = self.policy_jobs_ended = None
        self.fail(error)

    # -- stopping -------------------------------------------------------------

    def _shutdown(self) -> None:
        scheduler = self.scheduler
        with scheduler.lock:
            scheduler.stop_intake()
        self._interrupt_receives()
        self._wait_for_stop()
        with scheduler.lock:
            running = scheduler.running
        if running:
            abandoned = self.keeper.held()
            if abandoned:
                logger.warning(
                    "Releasing %d unfinished message(s) of %s (%s)",
                    len(abandoned),
                    self.queue.name,
                    "cold stop" if self.stop_requests >= 2 else "grace period over",
                )
                self.release(abandoned)
            self.async_jobs.cancel()  # their messages were just released
        self.async_jobs.close()
        self.acker.close()
        self.keeper.stop()
        self.stats.failed_acks = self.acker.failed_acks
        with scheduler.lock:
            self.stats.in_flight = len(self.keeper)  # abandoned jobs' messages were released

    def _wait_for_stop(self) -> None:
        """Release the unrun messages once the receives in progress have ended; wait for
        the running jobs (not after a cold stop, nor past the grace period)."""
        scheduler = self.scheduler
        started = time.monotonic()
        grace_deadline = started + self.grace_period
        # Receives started before the stop end within their wait (plus the server's slack).
        receives_deadline = started + self.wait_seconds + POLL_END_SLACK
        while True:
            now = time.monotonic()
            if not scheduler.unrun_released and not self._receiving(
                now, started, receives_deadline
            ):
                # Only now: released earlier, they could come straight back to one
                # of these receives and gain a second receive from one stop.
                self._release_unrun()
            with scheduler.lock:
                running = scheduler.running
            cold = self.stop_requests >= 2
            if scheduler.unrun_released and (running == 0 or cold or now >= grace_deadline):
                return
            self.wake.wait(0.05)
            self.wake.clear()

    def _receiving(self, now: float, started: float, deadline: float) -> bool:
        """Whether receives started before the stop may still return messages."""
        with self.scheduler.lock:
            receiving = self.scheduler.receives > 0
            unrun = bool(self.scheduler.unrun)
        if self.shared_stop and unrun and now < deadline:
            return True  # the other processes' receives, ended by the deadline
        if receiving and now >= deadline:
            logger.warning(
                "A receive from %s has not returned %.0f s after the stop; releasing "
                "the unrun messages now (that receive releases its own when it ends)",
                self.queue.name,
                now - started,
            )
            return False
        return receiving

    def _release_unrun(self) -> None:
        """Release the messages of the stop that did not run, once (receives have ended)."""
        with self.scheduler.lock:
            unrun = self.scheduler.take_unrun()
        self.release(unrun)

    def _interrupt_receives(self) -> None:
        """End this queue's receives in progress now, where the session can (in-memory SQS);
        on SQS itself they end within ``wait_seconds``."""
        try:
            self.queue.interrupt_receives()
        except Exception:  # only a faster stop is lost
            logger.debug("Could not interrupt the receives of %s", self.queue.name, exc_info=True)

    def release(self, messages: Iterable[Message], visibility_timeout: int = 0) -> None:
        """Make messages visible again (at once by default), without running them."""
        messages = list(messages)
        if not messages:
            return
        self.settler.release(messages, visibility_timeout)
        with self.scheduler.lock:  # job threads and the stopping thread release concurrently
            self.stats.released += len(messages)
