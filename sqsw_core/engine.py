"""The concurrent worker engine behind ``process_queue``.

One engine serves one queue: poller threads long-poll SQS (10 messages per
call) into a bounded prefetch buffer; ``concurrency`` worker threads run the
jobs; acks and retry delays go out in batches; a visibility heartbeat keeps
every held message invisible until it is settled.

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

import collections
import logging
import math
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqsw_core.engine_options import check_engine_options
from sqsw_core.exceptions import QueueNotFoundError
from sqsw_core.heartbeat import VisibilityKeeper
from sqsw_core.job_runner import JobRunner
from sqsw_core.limits import MAX_BATCH_ENTRIES
from sqsw_core.results import BatchProcessingResult, EngineStats, Outcome
from sqsw_core.settling import Acker, Settler, visibility_timeout
from sqsw_core.shutdown_policies import (
    NEVER_SHUTDOWN,
    NeverShutdown,
    ShutdownPolicy,
    receive_wait_limit,
)
from sqsw_core.stop_signals import StopSignals

if TYPE_CHECKING:
    from sqsw_core.messages import Message
    from sqsw_core.queue_handle import QueueHandle
    from sqsw_core.slots import SlotAllocator

logger = logging.getLogger("sqsw.engine")

#: Threads running jobs when none is asked for: sized for I/O-bound jobs.
DEFAULT_CONCURRENCY = 16
#: Seconds a stop waits beyond ``wait_seconds`` for receives in progress to end
#: (SQS servers answer a long poll up to about a second late).
POLL_END_SLACK = 3.0
#: Consecutive receives that may find the queue gone before the engine gives up.
MISSING_QUEUE_ATTEMPTS = 5
#: Seconds between receives after a failed one: the n-th consecutive failure waits
#: the n-th value (the last one repeats).
RECEIVE_RETRY_DELAYS = (1.0, 1.0, 2.0, 2.0, 5.0)


__all__ = ["DEFAULT_CONCURRENCY", "EngineStats", "QueueEngine"]


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
        stats_interval: float = 60.0,
        handle_signals: bool = True,
        slots: SlotAllocator | None = None,
        shared_stop: bool = False,
    ) -> None:
        check_engine_options(
            concurrency=concurrency,
            pollers=pollers,
            prefetch=prefetch,
            wait_seconds=wait_seconds,
            grace_period=grace_period,
            max_job_duration=max_job_duration,
            stats_interval=stats_interval,
        )
        self.queue = queue
        self.concurrency = concurrency
        # Enough pollers to keep the workers fed while a receive is in flight,
        # and room for each to have a full batch of 10 on its way.
        # A FIFO queue gets one poller, so batches of a group arrive in order
        # even from servers that hand out a group's messages to parallel receives.
        self.pollers = pollers or (1 if queue.is_fifo else max(4, min(8, -(-concurrency // 4))))
        largest_batch = max((p.max_jobs for p in queue.bulk_processors.values()), default=0)
        # ... and for the largest batch job to fill up.
        self.prefetch = (
            max(MAX_BATCH_ENTRIES * self.pollers, largest_batch + MAX_BATCH_ENTRIES)
            if prefetch is None
            else prefetch
        )
        self.capacity = concurrency + self.prefetch
        # Pollers receive full batches: they wait for this much room.
        self._batch_room = min(MAX_BATCH_ENTRIES, self.capacity)
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

        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # workers wait here for messages
        self._room = threading.Condition(lock)  # pollers wait here for buffer room
        # Messages to run, or lists of messages of one batch job to run together.
        self._buffer: collections.deque[Message | list[Message]] = collections.deque()
        # Batch jobs being gathered: job name -> (first arrival, messages).
        self._gathering: dict[str, tuple[float, list[Message]]] = {}
        self._bulk_processors: dict[str, Any] = dict(queue.bulk_processors)
        self._held = 0  # buffered + running + receives in progress (reserved)
        self._running = 0
        self._busy_groups: set[str] = set()
        self._fifo = queue.is_fifo
        # A policy that never stops needs no per-job bookkeeping.
        self._policy = None if isinstance(shutdown_policy, NeverShutdown) else shutdown_policy
        self._last_poll_empty = False
        self._receive_failures = 0  # in a row, across pollers
        self._stopping = False
        self._stop_requests = 0  # 1: warm stop asked, 2: cold stop asked
        self._stopped = threading.Event()  # set with the first stop request
        # Messages that will not run, kept until the receives in progress have
        # ended, then released together (_release_unrun).
        self._unrun: list[Message] = []
        self._unrun_released = False
        #: Why the engine gave up (a queue that no longer exists), raised by run().
        self._fatal: BaseException | None = None
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- control --------------------------------------------------------------

    def request_stop(self, cold: bool = False) -> None:
        """Ask the engine to stop, warm (the default) or cold; asking again changes
        nothing unless it asks for a cold stop."""
        self._stop_requests = max(self._stop_requests, 2 if cold else 1)
        self._stopped.set()
        self._wake.set()

    def held(self) -> list[Message]:
        """Every message this engine holds now: prefetched, running or being released."""
        return self.keeper.held()

    def waiting(self) -> list[Message]:
        """The held messages whose job has not started (prefetched or being gathered)."""
        with self._cond:
            items = [*self._buffer, *(gathered for _, gathered in self._gathering.values())]
            items.extend(self._unrun)
        return [m for item in items for m in (item if isinstance(item, list) else [item])]

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
        signals = StopSignals(self.request_stop, f"queue {queue.name}")
        if self.handle_signals:
            signals.install()
        logger.info(
            "Processing %s: concurrency=%d prefetch=%d pollers=%d visibility=%ds",
            queue.name,
            self.concurrency,
            self.prefetch,
            self.pollers,
            visibility,
        )
        try:
            self.keeper.start()
            for i in range(self.concurrency):
                self._spawn(self._work, f"sqsw-job-{queue.name}-{i}")
            pollers = [
                self._spawn(lambda i=i: self._poll(i), f"sqsw-poll-{queue.name}-{i}")
                for i in range(self.pollers)
            ]
            self._supervise()
            self._shutdown(pollers)
        finally:
            signals.restore()
        logger.info("Stopped processing %s: %s", queue.name, self.stats)
        if self._fatal is not None:
            raise self._fatal
        return self.stats

    def _spawn(self, target: Any, name: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    def _extended(self, count: int) -> None:
        self.stats.extended += count

    def _supervise(self) -> None:
        """Main thread: feed the shutdown policy, log counters, wait for a stop."""
        next_stats = time.monotonic() + self.stats_interval
        policy = self._policy
        while self._stop_requests == 0:
            self._wake.wait(0.05 if self._bulk_processors else 0.1)
            self._wake.clear()
            if self._gathering:
                with self._cond:
                    self._flush_gathered(time.monotonic())
            if policy is not None:
                with self._cond:
                    self._note_idle()
            self.stats.failed_acks = self.acker.failed_acks
            now = time.monotonic()
            if now >= next_stats:
                logger.info("%s: %s", self.queue.name, self.stats)
                next_stats = now + self.stats_interval

    def _note_idle(self) -> None:
        """Tell the shutdown policy the queue is idle, if it is (under the lock)."""
        if self._last_poll_empty and not self._buffer and self._running == 0:
            assert self._policy is not None
            self._policy.update_state(BatchProcessingResult(self.queue.name))
            self._check_policy()

    def _check_policy(self) -> None:
        """Ask the shutdown policy (under the lock); a stop ends job intake at once."""
        assert self._policy is not None
        if self._stop_requests == 0 and self._policy.need_shutdown():
            logger.info("Shutdown policy %r: stopping %s", self._policy, self.queue.name)
            self.request_stop()

    def _shutdown(self, pollers: list[threading.Thread]) -> None:
        with self._cond:
            self._stopping = True  # no new receive, no new job
            self._flush_gathered(0, everything=True)
            unrun: list[Message] = []
            for item in self._buffer:
                unrun.extend(item if isinstance(item, list) else [item])
            self._buffer.clear()
            self._held -= len(unrun)
            self._unrun.extend(unrun)
            self._cond.notify_all()
            self._room.notify_all()
        self._interrupt_receives()
        started = time.monotonic()
        grace_deadline = started + self.grace_period
        # Receives started before the stop end within their wait (plus the server's slack).
        receives_deadline = started + self.wait_seconds + POLL_END_SLACK
        while True:
            now = time.monotonic()
            if not self._unrun_released:
                receiving = any(p.is_alive() for p in pollers)
                if self.shared_stop and self._unrun and now < receives_deadline:
                    receiving = True  # the other processes' receives, ended by the deadline
                elif receiving and now >= receives_deadline:
                    logger.warning(
                        "A receive from %s has not returned %.0f s after the stop; releasing "
                        "the unrun messages now (that receive releases its own when it ends)",
                        self.queue.name,
                        now - started,
                    )
                    receiving = False
                if not receiving:
                    # Only now: released earlier, they could come straight back to one
                    # of these receives and gain a second receive from one stop.
                    self._release_unrun()
            with self._cond:
                running = self._running
            cold = self._stop_requests >= 2
            if self._unrun_released and (running == 0 or cold or now >= grace_deadline):
                break
            self._wake.wait(0.05)
            self._wake.clear()
        if self._running:
            abandoned = self.keeper.held()
            if abandoned:
                logger.warning(
                    "Releasing %d unfinished message(s) of %s (%s)",
                    len(abandoned),
                    self.queue.name,
                    "cold stop" if self._stop_requests >= 2 else "grace period over",
                )
                self.release(abandoned)
        self.acker.close()
        self.keeper.stop()
        self.stats.failed_acks = self.acker.failed_acks
        with self._cond:
            self.stats.in_flight = len(self.keeper)  # abandoned jobs' messages were released

    def _release_unrun(self) -> None:
        """Release the messages of the stop that did not run, once (receives have ended)."""
        with self._cond:
            unrun, self._unrun = self._unrun, []
            self._unrun_released = True
        self.release(unrun)

    def _interrupt_receives(self) -> None:
        """End this queue's receives in progress now, where the session can (in-memory SQS).

        A session whose client has ``interrupt_receives(QueueUrl=...)`` makes the
        long polls in progress on that queue return at once; on SQS itself they
        end within ``wait_seconds``.
        """
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
        with self._cond:  # worker threads and the stopping thread release concurrently
            self.stats.released += len(messages)

    # -- threads --------------------------------------------------------------

    def _run_batch(self, messages: list[Message]) -> None:
        """Job thread: run the gathered messages of one bulk job together."""
        outcomes: list[Outcome] = []
        try:
            outcomes = self.runner.run_bulk(messages)
        except BaseException:
            # The runner settles every message before a job's SystemExit or
            # KeyboardInterrupt goes on; what it could not settle is retried here.
            for message in messages:
                if self.keeper.is_held(message):
                    self.settler.retry(message)
        with self._cond:
            self._running -= 1
            self._held -= len(messages)
            for outcome in outcomes:
                self.stats.count(outcome)
            self.stats.in_flight = self._held
            if self._policy is not None and outcomes:
                ok = [m for m, o in zip(messages, outcomes, strict=True) if o.ok]
                failed = [m for m, o in zip(messages, outcomes, strict=True) if o.ok is False]
                self._policy.update_state(BatchProcessingResult(self.queue.name, ok, failed))
                self._check_policy()
            if self.capacity - self._held >= self._batch_room:
                self._room.notify()

    def _poll(self, index: int = 0) -> None:
        cond = self._cond
        while True:
            with cond:
                # Only full batches: fewer requests, and SQS answers a small
                # MaxNumberOfMessages with a small batch even from a deep queue.
                # While the queue is found empty, or receives fail, only the first
                # poller polls.
                want = self._batch_room
                while not self._stopping and (
                    self.capacity - self._held < want
                    or (index and (self._last_poll_empty or self._receive_failures))
                ):
                    self._room.wait()
                if self._stopping or self._stop_requests:
                    return  # no new receive once a stop is asked for
                self._held += want
                wait = self._receive_wait()
            try:
                messages = self.runner.receive(wait, want)
            except Exception as exc:
                with cond:
                    self._held -= want
                    self._receive_failures += 1
                    failures = self._receive_failures
                if not self._receive_failed(exc, failures):
                    return
                continue
            now = time.monotonic()
            redelivered = 0
            for message in messages:
                self.keeper.hold(message, now)
                if message.attributes.get("ApproximateReceiveCount", "1") != "1":
                    redelivered += 1
            late: list[Message] = []
            with cond:
                self._held -= want - len(messages)
                if (self._last_poll_empty and messages) or self._receive_failures:
                    self._room.notify_all()  # wake the paused pollers
                self._receive_failures = 0
                self._last_poll_empty = not messages
                if not messages and self._policy is not None:
                    # Now, before this poller's next receive: its wait depends on it.
                    self._note_idle()
                if self._stopping:
                    # Received after the stop began: never run, released with the rest.
                    self._held -= len(messages)
                    if self._unrun_released:
                        late = messages
                    else:
                        self._unrun.extend(messages)
                elif messages:
                    self.stats.received += len(messages)
                    self.stats.redelivered += redelivered
                    self.stats.in_flight = self._held
                    ready = self._gather(messages, now) if self._bulk_processors else messages
                    self._buffer.extend(ready)
                    cond.notify(len(ready))
            if late:
                self.release(late)
            if not messages:
                self._wake.set()
                if not wait:
                    self._stopped.wait(0.05)  # short polls of an empty queue: no hot loop

    def _receive_wait(self) -> int:
        """Seconds the next receive may wait (under the lock): ``wait_seconds``, but never
        past the moment the shutdown policy could stop the engine."""
        if self._policy is None:
            return self.wait_seconds
        limit = receive_wait_limit(self._policy)
        if limit is None:
            return self.wait_seconds
        return max(0, min(self.wait_seconds, math.ceil(limit)))

    def _receive_failed(self, exc: Exception, failures: int) -> bool:
        """Log a failed receive and wait before the next; False: the engine gives up."""
        name = self.queue.name
        if isinstance(exc, QueueNotFoundError):
            if failures >= MISSING_QUEUE_ATTEMPTS:
                logger.error(
                    "Queue %s no longer exists (%d receives in a row found it gone); stopping",
                    name,
                    failures,
                )
                self._fatal = exc
                self.request_stop()
                return False
            logger.warning(
                "Queue %s does not exist (receive %d of %d before the worker stops): %s",
                name,
                failures,
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
        self._stopped.wait(delay)
        return True

    def _gather(self, messages: list[Message], now: float) -> list[Message | list[Message]]:
        """Set aside messages of batch jobs (under the lock); the rest run one by one."""
        ready: list[Message | list[Message]] = []
        for message in messages:
            name = message.job_name
            processor = self._bulk_processors.get(name) if name is not None else None
            if processor is None or name is None:
                ready.append(message)
                continue
            _, gathered = self._gathering.setdefault(name, (now, []))
            gathered.append(message)
            if len(gathered) >= processor.max_jobs:
                del self._gathering[name]
                ready.append(gathered)
        return ready

    def _flush_gathered(self, now: float, everything: bool = False) -> None:
        """Move batches that waited ``max_wait`` (or all) to the buffer (under the lock)."""
        for name, (since, gathered) in list(self._gathering.items()):
            if everything or now - since >= self._bulk_processors[name].max_wait:
                del self._gathering[name]
                self._buffer.append(gathered)
                self._cond.notify()

    def _next_message(self) -> Message | list[Message] | None:
        """The next runnable message (under the lock); FIFO groups run one at a time."""
        buffer = self._buffer
        if not self._fifo:
            return buffer.popleft() if buffer else None
        busy = self._busy_groups
        for index, item in enumerate(buffer):
            assert not isinstance(item, list)  # FIFO queues have no bulk processors
            group = item.group_id or ""
            if group not in busy:
                del buffer[index]
                busy.add(group)
                return item
        return None

    def _work(self) -> None:
        cond = self._cond
        slots = self.slots
        holding = False  # a shared job slot, kept from one job to the next
        try:
            while True:
                with cond:
                    message = None if self._stop_requests else self._next_message()
                    while message is None:
                        if holding:
                            assert slots is not None
                            slots.release()
                            holding = False
                        if self._stopping:
                            return
                        cond.wait()
                        message = None if self._stop_requests else self._next_message()
                    self._running += 1
                if slots is not None:
                    slots.acquire(self.queue.name, handing_back=holding)
                    holding = True
                self._run_item(message)
        finally:
            if holding:
                assert slots is not None
                slots.release()

    def _run_item(self, message: Message | list[Message]) -> None:
        """Job thread: run one message (or a gathered bulk job) and settle it."""
        if isinstance(message, list):
            self._run_batch(message)
            return
        outcome = Outcome(Outcome.FAILED)
        try:
            # A job's SystemExit or KeyboardInterrupt does not end the job thread:
            # the runner settled its message and logged it.
            outcome, _ = self.runner.run_message(message)
        except BaseException:
            if self.keeper.is_held(message):
                logger.exception(
                    "Settling message %s of %s failed", message.message_id, self.queue.name
                )
                outcome = Outcome(Outcome.FAILED, self.settler.retry(message))
        finally:
            self._job_done(message, outcome)

    def _job_done(self, message: Message, outcome: Outcome) -> None:
        """Job thread: count a settled job; a failed FIFO job's group mates go back."""
        ok = outcome.ok
        dropped: list[Message] = []
        with self._cond:
            self._running -= 1
            self._held -= 1
            self.stats.count(outcome)
            if self._policy is not None and ok is not None:
                done = [message]
                self._policy.update_state(
                    BatchProcessingResult(self.queue.name, *((done, []) if ok else ([], done)))
                )
                self._check_policy()
            self.stats.in_flight = self._held
            if self._fifo:
                dropped = self._free_group(message, ok)
            if self.capacity - self._held >= self._batch_room:
                self._room.notify()  # a poller can receive a full batch now
        if dropped:
            # Visible just after the failed message, so they run after it.
            self.release(dropped, outcome.retry_delay + 1)

    def _free_group(self, message: Message, ok: bool | None) -> list[Message]:
        """A FIFO job ended (under the lock): its group may run again; after a failure,
        the group's buffered messages are taken out, to go back after the failed one."""
        group = message.group_id or ""
        self._busy_groups.discard(group)
        dropped: list[Message] = []
        if ok is False:
            dropped = [
                m for m in self._buffer if not isinstance(m, list) and (m.group_id or "") == group
            ]
            for m in dropped:
                self._buffer.remove(m)
            self._held -= len(dropped)
        if self._buffer:
            self._cond.notify()  # a message of the freed group may wait
        return dropped
