"""Several worker processes for one queue, watched by a supervisor.

``queue.process_queue(workers=N)`` and ``sqsw run --workers N`` fork N
children that each run the engine with a connection of their own (boto3
clients are never shared across a fork).

Signals. The supervisor reads SIGTERM, SIGINT, SIGHUP and SIGQUIT like a single
worker does (:class:`~sqsw_core.stop_signals.StopSignals`): the first asks for
a warm stop, which it forwards once to every child as SIGTERM; a cold stop (a
second signal a second or more later, or SIGQUIT) is forwarded as SIGQUIT,
which a child always reads as a cold stop. A signal sent to the whole process
group (a terminal's Ctrl+C, systemd's ``KillMode=control-group``) reaches each
child twice, from the group and from the supervisor, within a second: the
child sees one warm stop. Children are forked with these signals blocked and
install their own reader before unblocking them, so a stop that arrives while
a child starts is never a default-disposition death; one that arrives before
the engine reads signals itself is handed on to it once it does.

Crashes. A child that exits with an error, or is killed (``os._exit``, the OOM
killer, a segfault), is counted and restarted (with a growing delay when crashes
repeat), unless the supervisor is stopping. Each child publishes the messages
it holds, ten times a second when they change, to a file of its own; when a
child dies the supervisor releases the ones it held without running them
(visibility 0), so they cost one receive and come back at once instead of after
the visibility timeout. The jobs it was running are left to their visibility
timeout: one of them may be what killed it, and it should not come back at
once next to the same messages. A child that ends normally (its shutdown policy
said stop) is not restarted.

Counters. Given a ``stats`` callable, each child publishes its engines'
counters twice a second into shared memory, and :meth:`Supervisor.totals`
sums them over all children, past and present (plus what the supervisor
released), so one process can show one live line and
``process_queue(workers=N)`` can return the whole run's counters.

Reports. Given a ``report`` callable, each child publishes what it returns (a
JSON object: its health, see :mod:`sqsw_core.health`) once a second to a file of
its own; :meth:`Supervisor.reports` reads them with each slot's process and age.
``on_exit`` is called here with the pid of each child that ended.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any, NamedTuple

from sqsw_core.health import WorkerReport
from sqsw_core.limits import POLL_END_SLACK
from sqsw_core.results import EngineStats
from sqsw_core.settling import Settler
from sqsw_core.stop_signals import COLD_SIGNAL, STOP_SIGNALS, StopSignals

if TYPE_CHECKING:
    from sqsw_core.env import SQSEnv

logger = logging.getLogger("sqsw.supervisor")

#: Restart delays (seconds) after consecutive crashes of the same slot.
RESTART_DELAYS = (0.0, 1.0, 2.0, 5.0, 10.0, 30.0)
#: Seconds between two publications of a child's counters.
PUBLISH_INTERVAL = 0.5
#: Seconds between two looks at the messages a child holds (written when changed).
HELD_INTERVAL = 0.1
#: Seconds between two publications of a child's report (``Supervisor(report=)``).
REPORT_INTERVAL = 1.0

#: The counters children publish, then ``in_flight``.
_FIELDS = (*EngineStats.COUNTERS, "in_flight")
#: The signals a supervisor and its children read.
_SIGNALS = frozenset((*STOP_SIGNALS, COLD_SIGNAL))


class HeldMessage(NamedTuple):
    """A message a worker process holds, as it publishes it to its supervisor."""

    queue_name: str
    message_id: str
    receipt_handle: str
    #: Its job is running (else it waits: prefetched, just received or being released).
    running: bool


def release_held(env: SQSEnv, messages: Iterable[HeldMessage]) -> int:
    """Make ``messages`` (held by a worker process that died) visible again at once.

    Ten per ``ChangeMessageVisibilityBatch`` call. A message settled after the
    process last published what it held has a receipt handle SQS no longer
    accepts: that is logged at INFO, nothing is raised. Returns how many were released.
    """
    by_queue: dict[str, list[HeldMessage]] = {}
    for message in messages:
        by_queue.setdefault(message.queue_name, []).append(message)
    released = 0
    for name, held in by_queue.items():
        # A refused handle: settled after the process last published what it held.
        released += Settler(env.queue(name)).release(held, 0, refused_level=logging.INFO)
    return released


def for_queues(
    env: SQSEnv,
    queues: list[Any],
    target: Callable[[], Any],
    workers: int,
    *,
    name: str,
    stats: Callable[[], Iterable[EngineStats]],
    wait_seconds: float,
    report: Callable[[], dict[str, Any]] | None = None,
    on_exit: Callable[[int], None] | None = None,
) -> Supervisor:
    """A supervisor of ``workers`` processes running ``target`` (engines of ``queues``):
    each publishes what its engines hold; what a dead one held is released once its
    last long poll (``wait_seconds``, at most 20, plus the server's slack) has ended.
    ``report`` and ``on_exit``: see :class:`Supervisor`."""
    return Supervisor(
        target,
        workers,
        name=name,
        stats=stats,
        held=lambda: held_by(queues),
        release=lambda messages: release_held(env, messages),
        release_delay=min(20.0, max(0.0, wait_seconds)) + POLL_END_SLACK,
        report=report,
        on_exit=on_exit,
    )


def held_by(queues: Iterable[Any]) -> list[HeldMessage]:
    """The messages the engines of ``queues`` hold in this process, for ``Supervisor(held=)``."""
    out: list[HeldMessage] = []
    for queue in queues:
        engine = getattr(queue, "engine", None)
        if engine is None or getattr(engine, "keeper", None) is None:
            continue  # not running (yet)
        waiting = {m.receipt_handle for m in engine.waiting()}
        out.extend(
            HeldMessage(
                m.queue_name, m.message_id, m.receipt_handle, m.receipt_handle not in waiting
            )
            for m in engine.held()
        )
    return out


class Supervisor:
    """Runs ``target`` in ``workers`` forked processes until they all end.

    ``stats``, called in a child, returns the counters of the engines running
    there (none yet: empty); :meth:`totals` sums what the children published.
    ``held``, called in a child, returns the messages its engines hold;
    ``release``, called here, releases what a child that died held (see
    :func:`release_held`) and returns how many it released, ``release_delay``
    seconds after it died: a receive it had in progress goes on on the server
    until its long poll ends (``wait_seconds``, plus the server's slack), and a
    message released before then could be handed to that dead receive.
    """

    def __init__(
        self,
        target: Callable[[], Any],
        workers: int,
        name: str = "sqsw",
        stats: Callable[[], Iterable[EngineStats]] | None = None,
        held: Callable[[], Iterable[HeldMessage]] | None = None,
        release: Callable[[list[HeldMessage]], int] | None = None,
        release_delay: float = 0.0,
        report: Callable[[], dict[str, Any]] | None = None,
        on_exit: Callable[[int], None] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.target = target
        self.workers = workers
        self.name = name
        self.stats = stats
        self.held = held
        self.release = release
        self.release_delay = release_delay
        self.report = report
        self.on_exit = on_exit
        # Messages of dead children to release: (when, what, process name).
        self._to_release: list[tuple[float, list[HeldMessage], str]] = []
        #: Children that ended with an error or were killed, over the whole run.
        self.crashed = 0
        #: Messages released after children died.
        self.released = 0
        self._stopping = False
        self._context = multiprocessing.get_context("fork")
        self._processes: dict[int, BaseProcess] = {}
        self._held_dir: str | None = None
        self.started_at = time.monotonic()
        # One row of counters per slot, written by its child only (aligned
        # 64-bit stores); rows of children that ended are folded into _retired.
        self._shared = self._context.RawArray("q", workers * len(_FIELDS))
        self._retired = EngineStats(started_at=self.started_at)

    # -- counters ---------------------------------------------------------------

    def _publish(self, slot: int) -> None:
        assert self.stats is not None
        total = EngineStats.total(self.stats())
        row = slot * len(_FIELDS)
        for offset, field in enumerate(_FIELDS):
            self._shared[row + offset] = getattr(total, field)

    def _row(self, slot: int) -> EngineStats:
        """The counters the child in ``slot`` published last."""
        row = slot * len(_FIELDS)
        stats = EngineStats(started_at=self.started_at)
        for offset, field in enumerate(_FIELDS):
            setattr(stats, field, self._shared[row + offset])
        return stats

    def _retire(self, slot: int) -> None:
        """Fold an ended child's last counters into the totals and clear its row."""
        self._retired = EngineStats.total([self._retired, self._row(slot)], self.started_at)
        self._retired.in_flight = 0  # an ended child holds nothing
        row = slot * len(_FIELDS)
        for offset in range(len(_FIELDS)):
            self._shared[row + offset] = 0

    def totals(self) -> EngineStats:
        """The counters of every child so far (in flight: the running ones')."""
        rows = [self._row(slot) for slot in range(self.workers)]
        totals = EngineStats.total([self._retired, *rows], self.started_at)
        totals.released += self.released
        return totals

    # -- reports ------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        """Whether a stop was asked (the children are stopping or have ended)."""
        return self._stopping

    def _report_path(self, slot: int) -> str:
        assert self._held_dir is not None
        return os.path.join(self._held_dir, f"worker-{slot}.report.json")

    def _publish_report(self, slot: int) -> None:
        assert self.report is not None
        path = self._report_path(slot)
        with open(path + ".tmp", "w") as file:
            json.dump(self.report(), file)
        os.replace(path + ".tmp", path)

    def reports(self) -> list[WorkerReport]:
        """Each slot's process and the report it published last (see the module)."""
        out: list[WorkerReport] = []
        if self._held_dir is None:
            return out  # not running yet
        for slot in range(self.workers):
            # The main loop drops a child within 50 ms of its end. Another thread must not
            # poll it (is_alive reaps it, racing the main loop's join and exit code).
            process = self._processes.get(slot)
            pid = process.pid if process is not None else None
            alive = process is not None
            report, age = None, None
            if alive:
                try:
                    with open(self._report_path(slot)) as file:
                        age = max(0.0, time.time() - os.fstat(file.fileno()).st_mtime)
                        report = json.load(file)
                except (OSError, ValueError):
                    report, age = None, None  # not published yet
            out.append(WorkerReport(slot, pid, alive, age, report))
        return out

    # -- held messages ------------------------------------------------------------

    def _held_path(self, slot: int) -> str:
        assert self._held_dir is not None
        return os.path.join(self._held_dir, f"worker-{slot}.json")

    def _publish_held(self, slot: int, messages: list[HeldMessage]) -> None:
        """Replace the slot's file at once (write, then rename): never half written."""
        path = self._held_path(slot)
        with open(path + ".tmp", "w") as file:
            json.dump(messages, file)
        os.replace(path + ".tmp", path)

    def _read_held(self, slot: int) -> list[HeldMessage]:
        try:
            with open(self._held_path(slot)) as file:
                return [HeldMessage(*row) for row in json.load(file)]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, TypeError) as exc:
            logger.warning("Could not read what worker slot %d held: %s", slot, exc)
            return []

    def _release_dead(self, slot: int, process: BaseProcess) -> None:
        """Plan the release of what the dead child of ``slot`` held but was not running."""
        held = self._read_held(slot)
        try:
            os.unlink(self._held_path(slot))
        except FileNotFoundError:
            pass
        if not held or self.release is None:
            return
        waiting = [m for m in held if not m.running]
        logger.warning(
            "Worker process %d (%s) died holding %d message(s): %d released in %.0f s, "
            "when its receives in progress have ended; %d whose job was running come back "
            "after the visibility timeout",
            process.pid,
            process.name,
            len(held),
            len(waiting),
            self.release_delay,
            len(held) - len(waiting),
        )
        if waiting:
            when = time.monotonic() + self.release_delay
            self._to_release.append((when, waiting, str(process.name)))

    def _release_due(self, everything: bool = False) -> None:
        """Release what dead children held, once due (``everything``: wait until it is)."""
        while self._to_release:
            when, messages, name = self._to_release[0]
            if time.monotonic() < when:
                if not everything:
                    return
                time.sleep(max(0.0, when - time.monotonic()))
            self._to_release.pop(0)
            assert self.release is not None
            try:
                released = self.release(messages)
            except Exception:  # never the supervisor's end: they come back after the timeout
                logger.exception("Could not release the messages held by %s", name)
                continue
            self.released += released
            logger.info("Released %d message(s) held by %s", released, name)

    # -- the child side -----------------------------------------------------------

    def _child_main(self, slot: int) -> None:
        # Forked with the stop signals blocked (see _spawn): the handlers it
        # inherited are the supervisor's. Read them here from now on, then unblock.
        self._stopping = False
        signals = _ChildSignals(os.getpid())
        signals.install()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
        done = threading.Event()
        watcher = threading.Thread(
            target=self._watch, args=(slot, signals, done), name="sqsw-worker-watch", daemon=True
        )
        watcher.start()
        code = 0
        try:
            self.target()
        except BaseException:
            logger.exception("Worker process %d of %s crashed", os.getpid(), self.name)
            code = 1
        done.set()
        watcher.join(5)
        if self.stats is not None:
            try:
                self._publish(slot)  # the final counts
            except Exception:
                logger.exception("Could not publish the counters of worker process %d", os.getpid())
        os._exit(code)

    def _watch(self, slot: int, signals: _ChildSignals, done: threading.Event) -> None:
        """Child thread: hand early stops on, publish held messages and counters."""
        last_held: list[HeldMessage] | None = None
        next_stats = time.monotonic() + PUBLISH_INTERVAL
        next_report = time.monotonic()
        while not done.wait(HELD_INTERVAL):
            signals.hand_on()
            try:
                if self.held is not None:
                    held = list(self.held())
                    if held != last_held:
                        self._publish_held(slot, held)
                        last_held = held
                if self.stats is not None and time.monotonic() >= next_stats:
                    self._publish(slot)
                    next_stats = time.monotonic() + PUBLISH_INTERVAL
                if self.report is not None and time.monotonic() >= next_report:
                    self._publish_report(slot)
                    next_report = time.monotonic() + REPORT_INTERVAL
            except Exception:  # keep publishing: the next tick retries
                logger.exception("Worker process %d could not publish its state", os.getpid())

    # -- the supervisor side ------------------------------------------------------

    def _spawn(self, slot: int) -> BaseProcess:
        process = self._context.Process(
            target=self._child_main, args=(slot,), name=f"{self.name}-worker-{slot}", daemon=False
        )
        # The child starts with the stop signals blocked, and is known to the
        # signal handler before any signal can run it.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            process.start()
            self._processes[slot] = process
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        logger.info("Started worker process %d (%s)", process.pid, process.name)
        return process

    def _forward(self, cold: bool) -> None:
        """A stop of the supervisor: a warm one reaches each child once, as SIGTERM;
        a cold one as SIGQUIT (always cold for a child)."""
        self._stopping = True
        signum = signal.SIGQUIT if cold else signal.SIGTERM
        for process in list(self._processes.values()):
            if process.pid is not None and process.exitcode is None:
                try:
                    os.kill(process.pid, signum)
                except ProcessLookupError:
                    pass

    def run(self) -> int:
        """Supervise until every child ended; returns how many crashed during the run."""
        self._processes = {}
        crashes: dict[int, int] = {}
        due: dict[int, float] = {}
        self._held_dir = tempfile.mkdtemp(prefix="sqsw-workers-")
        signals = StopSignals(self._forward, f"{self.workers} worker processes of {self.name}")
        signals.install()
        try:
            for slot in range(self.workers):
                self._spawn(slot)
            while self._processes or due:
                now = time.monotonic()
                for slot, when in list(due.items()):
                    if self._stopping:
                        del due[slot]
                    elif now >= when:
                        del due[slot]
                        self._spawn(slot)
                for slot, process in list(self._processes.items()):
                    if not process.is_alive():
                        self._ended(slot, process, crashes, due)
                self._release_due()
                time.sleep(0.05)
            self._release_due(everything=True)
        finally:
            signals.restore()
            shutil.rmtree(self._held_dir, ignore_errors=True)
        if self.crashed:
            logger.error(
                "%d worker process(es) of %s crashed during the run", self.crashed, self.name
            )
        return self.crashed

    def _ended(
        self, slot: int, process: BaseProcess, crashes: dict[int, int], due: dict[int, float]
    ) -> None:
        """A child ended: count a crash, release what it held, schedule its restart."""
        process.join()
        del self._processes[slot]
        self._retire(slot)
        if self._held_dir is not None:
            try:
                os.unlink(self._report_path(slot))
            except FileNotFoundError:
                pass
        if self.on_exit is not None and process.pid is not None:
            try:
                self.on_exit(process.pid)
            except Exception:
                logger.exception("on_exit of worker process %d failed", process.pid)
        code = process.exitcode
        if code == 0:
            crashes.pop(slot, None)
            return
        self.crashed += 1
        self._release_dead(slot, process)
        if self._stopping:
            logger.error(
                "Worker process %d (%s) exited with %s while stopping",
                process.pid,
                process.name,
                _exit_text(code),
            )
            return
        count = crashes.get(slot, 0)
        crashes[slot] = count + 1
        delay = RESTART_DELAYS[min(count, len(RESTART_DELAYS) - 1)]
        logger.error(
            "Worker process %d (%s) exited with %s; restarting in %.0f s",
            process.pid,
            process.name,
            _exit_text(code),
            delay,
        )
        due[slot] = time.monotonic() + delay


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return str(code)


class _ChildSignals(StopSignals):
    """A worker process's stop signals until its engine reads them itself.

    A stop that arrives before the engine installed its own handlers is kept,
    and handed on (:meth:`hand_on`) by sending it again once they are in place,
    unless the engine saw a stop of its own by then.
    """

    def __init__(self, pid: int) -> None:
        super().__init__(self._record, f"worker process {pid}")
        self.pending: bool | None = None  # None: no stop; else: cold?
        self._handed: bool | None = None

    def _record(self, cold: bool) -> None:
        self.pending = cold or bool(self.pending)

    def hand_on(self) -> None:
        """Watcher thread: send a kept stop to the engine's handlers, once they exist."""
        pending = self.pending
        if pending is None or self._handed is True or self._handed == pending:
            return
        owner = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
        if owner is self or not isinstance(owner, StopSignals):
            return  # nothing else reads signals (yet)
        if pending and not owner.cold:
            os.kill(os.getpid(), COLD_SIGNAL)
        elif not pending and owner.first_at is None:
            os.kill(os.getpid(), signal.SIGTERM)
        self._handed = pending
