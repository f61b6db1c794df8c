"""Stops and restarts seen from SQS: receive counts, dead-letter depth, in flight after exit.

The promise under test: stopping loses nothing; a message that never ran
gains at most one receive per stop; nothing is left in flight after a worker
exits; stops and shutdown policies return within a bounded time.

A "worker process" is a real one on LocalStack (``tests/apps/stop_app.py``,
stopped with real signals); on the in-memory session, whose queues live in
this process, it is the engine running in this test's main thread, stopped by
real signals sent to this process from a timer thread.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sqsw_core import SQSEnv, create_standard_queue, get_queue_attributes
from sqsw_core.shutdown_policies import IdleShutdown, NeverShutdown, ShutdownPolicy
from tests.apps.stop_app import ReceiveCountProcessor, register_jobs
from tests.helpers import REPO, on_memory, queue_with_dead_letters
from tests.localstack_server import localstack_endpoint

pytestmark = pytest.mark.timeout(150)

#: A message's deliveries before SQS moves it to the dead-letter queue.
MAX_RECEIVES = 5
#: LocalStack's timers tick about once a second: what "at once" may take.
TICK_SLACK = 2.5
#: Extra seconds a stop may take beyond its bound (process exit, LocalStack's tick).
STOP_SLACK = 1.5


def receives_end_within(env: SQSEnv, wait_seconds: float) -> float:
    """How long a stop may wait for the receives in progress (README, "Stopping loses nothing").

    The in-memory SQS ends them at once; on SQS they end within ``wait_seconds``.
    """
    return 0.0 if on_memory(env) else wait_seconds


# -- SQS state ----------------------------------------------------------------


def depth(env: SQSEnv, name: str) -> dict[str, int]:
    """Visible, in-flight and delayed message counts of a queue."""
    attributes = get_queue_attributes(env, name)
    return {
        "visible": int(attributes["ApproximateNumberOfMessages"]),
        "in_flight": int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        "delayed": int(attributes["ApproximateNumberOfMessagesDelayed"]),
    }


def dead_letters(env: SQSEnv) -> int:
    return sum(depth(env, "work_dead").values())


def in_flight_after_exit(env: SQSEnv, within: float = TICK_SLACK) -> int:
    """Messages of ``work`` still in flight ``within`` s of a worker's exit (0 as soon as 0).

    A message released at exit may be counted as in flight until LocalStack's
    next tick; one still held stays so for the whole visibility timeout (30-60 s).
    """
    deadline = time.monotonic() + within
    while True:
        count = depth(env, "work")["in_flight"]
        if count == 0 or time.monotonic() >= deadline:
            return count
        time.sleep(0.1)


def peek(env: SQSEnv, wait: int = 2) -> dict[int, int]:
    """Job number -> ApproximateReceiveCount of the visible messages of ``work``.

    Receives them with visibility 0, so they stay visible: each peek adds one receive.
    """
    response = env.sqs_client.receive_message(
        QueueUrl=env.get_queue_url("work"),
        MaxNumberOfMessages=10,
        WaitTimeSeconds=wait,
        VisibilityTimeout=0,
        AttributeNames=["All"],
    )
    return {
        json.loads(m["Body"])["n"]: int(m["Attributes"]["ApproximateReceiveCount"])
        for m in response.get("Messages", [])
    }


# -- the job log (see tests/apps/stop_app.py) ----------------------------------


@dataclass(frozen=True)
class Entry:
    event: str  # "start" or "done"
    n: int
    receive_count: int


def read_log(log: Path) -> list[Entry]:
    if not log.exists():
        return []
    entries = []
    for line in log.read_text().splitlines():
        event, n, count, _pid = line.split()
        entries.append(Entry(event, int(n), int(count)))
    return entries


# -- one worker "process" at a time -------------------------------------------


@dataclass
class Stop:
    """How a worker run ended."""

    signalled_at: list[float] = field(default_factory=list)  # time.monotonic() of each signal
    exited_at: float = 0.0
    returncode: int | None = None  # a subprocess's exit code; None in-process
    output: str = ""  # a subprocess's log, or the engine's counters in-process

    def latency(self, signal_index: int = -1) -> float:
        """Seconds from a signal (default: the last) to the worker's exit."""
        return self.exited_at - self.signalled_at[signal_index]


@pytest.fixture
def quiet_signals() -> Iterator[None]:
    """A signal that reaches this process when no engine handles it does nothing.

    The memory tests signal this process: a signal that arrives just after the
    engine returned (or one the engine does not handle yet) must not kill pytest.
    """
    previous = {
        s: signal.signal(s, lambda signum, frame: None) for s in (signal.SIGTERM, signal.SIGQUIT)
    }
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)


class Workers:
    """Starts workers on queue ``work`` and stops them with signals.

    LocalStack: a ``tests/apps/stop_app.py`` process. Memory: the engine in this
    (the main) thread, signalled by a timer thread with ``os.kill(os.getpid(), ...)``.
    """

    def __init__(self, env: SQSEnv, endpoint: str | None, tmp_path: Path, sleep: float) -> None:
        self.env = env
        self.endpoint = endpoint
        self.tmp_path = tmp_path
        self.log = tmp_path / "jobs.log"
        self.sleep = sleep
        self.abandon = threading.Event()  # set at the end: in-process jobs still sleeping raise
        self.queue = env.queue("work")
        register_jobs(self.queue, str(self.log), sleep, self.abandon)
        self.runs = 0

    def started_since(self, offset: int) -> Callable[[], bool]:
        """A trigger: a job started after the log had ``offset`` entries."""
        return lambda: any(e.event == "start" for e in read_log(self.log)[offset:])

    def run(
        self,
        signals: Sequence[tuple[float, signal.Signals]],
        trigger: Callable[[], bool],
        *,
        concurrency: int = 1,
        wait_seconds: int = 2,
        grace_period: float = 30,
        pollers: int | None = None,
        prefetch: int | None = None,
    ) -> Stop:
        """Run a worker until ``trigger()``, then send each ``(delay, signal)``; wait for its exit.

        Delays count from the moment the trigger fired.
        """
        self.runs += 1
        options: dict[str, Any] = {"concurrency": concurrency, "grace_period": grace_period}
        if pollers is not None:
            options["pollers"] = pollers
        if prefetch is not None:
            options["prefetch"] = prefetch
        if on_memory(self.env):
            return self._run_here(signals, trigger, wait_seconds, options)
        return self._run_process(signals, trigger, wait_seconds, options)

    @staticmethod
    def _wait_for(trigger: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not trigger():
            if time.monotonic() >= deadline:
                raise AssertionError(f"the worker did not start a job within {timeout} s")
            time.sleep(0.02)

    def _run_here(
        self,
        signals: Sequence[tuple[float, signal.Signals]],
        trigger: Callable[[], bool],
        wait_seconds: int,
        options: dict[str, Any],
    ) -> Stop:
        stop = Stop()
        returned = threading.Event()
        problems: list[str] = []

        def signaller() -> None:
            try:
                self._wait_for(trigger)
            except AssertionError as error:
                problems.append(str(error))
            fired = time.monotonic()
            for delay, signum in signals:
                time.sleep(max(0.0, fired + delay - time.monotonic()))
                stop.signalled_at.append(time.monotonic())
                os.kill(os.getpid(), signum)
            # Watchdog: an engine that ignores the signals is stopped cold so the
            # test can fail with its figures instead of hanging.
            if not returned.wait(15):
                problems.append("the engine did not return within 15 s of the last signal")
                while not returned.is_set():
                    os.kill(os.getpid(), signal.SIGTERM)
                    returned.wait(1.5)

        thread = threading.Thread(target=signaller, daemon=True)
        thread.start()
        stats = self.queue.process_queue(NeverShutdown(), wait_seconds=wait_seconds, **options)
        stop.exited_at = time.monotonic()
        returned.set()
        thread.join(5)
        stop.output = str(stats)
        assert not problems, f"{problems} ({stats})"
        return stop

    def _run_process(
        self,
        signals: Sequence[tuple[float, signal.Signals]],
        trigger: Callable[[], bool],
        wait_seconds: int,
        options: dict[str, Any],
    ) -> Stop:
        assert self.endpoint is not None
        variables = {
            **os.environ,
            "SQSW_TEST_ENDPOINT": self.endpoint,
            "APP_PREFIX": self.env.queue_prefix,
            "APP_QUEUE": "work",
            "APP_LOG": str(self.log),
            "APP_SLEEP": str(self.sleep),
            "APP_WAIT_SECONDS": str(wait_seconds),
            **{f"APP_{key.upper()}": str(value) for key, value in options.items()},
        }
        output_path = self.tmp_path / f"worker{self.runs}.out"
        stop = Stop()
        with output_path.open("w") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.apps.stop_app"],
                cwd=REPO,
                env=variables,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
            try:
                self._wait_for(trigger)
                fired = time.monotonic()
                for delay, signum in signals:
                    time.sleep(max(0.0, fired + delay - time.monotonic()))
                    stop.signalled_at.append(time.monotonic())
                    process.send_signal(signum)
                stop.returncode = process.wait(60)
                stop.exited_at = time.monotonic()
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        stop.output = output_path.read_text()
        return stop


@pytest.fixture
def workers_for(
    make_env: Callable[..., SQSEnv], backend: str, tmp_path: Path, quiet_signals: None
) -> Iterator[Callable[..., Workers]]:
    """``workers_for(visibility_timeout=..., sleep=...)``: queue ``work`` (with a DLQ), workers."""
    made: list[Workers] = []

    def factory(*, visibility_timeout: int, sleep: float) -> Workers:
        env = make_env(processor=ReceiveCountProcessor)
        queue_with_dead_letters(env, "work", MAX_RECEIVES, visibility_timeout=visibility_timeout)
        endpoint = None if on_memory(env) else localstack_endpoint()
        workers = Workers(env, endpoint, tmp_path, sleep)
        made.append(workers)
        return workers

    yield factory
    for workers in made:
        workers.abandon.set()


def summary(stop: Stop) -> str:
    """The part of a worker's output worth showing in a failure: its counters and warnings."""
    lines = [
        line
        for line in stop.output.splitlines()
        if "TOTALS" in line or "stop" in line.lower() or "Releas" in line or "received=" in line
    ]
    return "\n".join(lines[-8:]) or stop.output[-1500:]


# -- 1. warm stops do not re-receive prefetched messages --------------------------


@pytest.mark.parametrize(
    ("jobs", "concurrency", "pollers", "prefetch"),
    [(8, 1, None, None), (100, 32, 4, 80)],
    ids=["concurrency1", "concurrency32"],
)
def test_three_warm_restarts_burn_no_deliveries(
    workers_for: Callable[..., Workers],
    jobs: int,
    concurrency: int,
    pollers: int | None,
    prefetch: int | None,
) -> None:
    """3 SIGTERMs while jobs run and polls are in flight: nothing dead-lettered, nothing held.

    Each job logs the receive count it ran with: a job that started in run r
    (after r stops) may have been received at most once per stop plus once to run.
    """
    workers = workers_for(visibility_timeout=30, sleep=1.0)
    with workers.queue.add_batch():
        for n in range(jobs):
            workers.queue.add_job("job", n=n)
    env = workers.env
    run_of: dict[int, int] = {}  # job -> the run it started in
    story: list[str] = []  # what each stop left behind, for the failure message
    problems: list[str] = []
    for run in range(3):
        if not sum(depth(env, "work").values()):
            problems.append(f"run {run + 1}: no message left to run ({dead_letters(env)} dead)")
            break
        offset = len(read_log(workers.log))
        stop = workers.run(
            [(0.3, signal.SIGTERM)],
            workers.started_since(offset),
            concurrency=concurrency,
            pollers=pollers,
            prefetch=prefetch,
            wait_seconds=2,
        )
        in_flight = in_flight_after_exit(env)
        dead = dead_letters(env)
        entries = read_log(workers.log)
        for entry in entries[offset:]:
            if entry.event == "start":
                run_of.setdefault(entry.n, run)
        started = Counter(e.n for e in entries if e.event == "start")
        done = Counter(e.n for e in entries if e.event == "done")
        story.append(
            f"stop {run + 1}: in_flight={in_flight} dead={dead} latency={stop.latency():.1f}s "
            f"exit={stop.returncode} {depth(env, 'work')}\n{summary(stop)}"
        )
        checks = {
            "exited cleanly": stop.returncode in (0, None),
            "nothing in flight after exit": in_flight == 0,
            "nothing dead-lettered": dead == 0,
            # A warm stop lets running jobs finish (grace period 30 s, jobs of 1 s).
            "every started job finished": started == done,
            "no job ran twice": max(started.values()) == 1,
            # The rest of the 1 s job, and the receives in progress (long polls of 2 s).
            "stopped within job + wait_seconds": stop.latency()
            <= 1 + receives_end_within(env, 2) + STOP_SLACK,
        }
        problems += [f"stop {run + 1}: {name}" for name, ok in checks.items() if not ok]

    # The last run: until idle; every job ran exactly once, none dead-lettered.
    offset = len(read_log(workers.log))
    workers.queue.process_queue(IdleShutdown(1.5), wait_seconds=1, concurrency=32)
    entries = read_log(workers.log)
    for entry in entries[offset:]:
        if entry.event == "start":
            run_of.setdefault(entry.n, 3)
    started = Counter(e.n for e in entries if e.event == "start")
    done = Counter(e.n for e in entries if e.event == "done")
    counts = {e.n: e.receive_count for e in entries if e.event == "start"}
    too_many = {n: (count, run_of[n]) for n, count in counts.items() if count > run_of[n] + 1}
    dead = dead_letters(env)
    story.append(
        f"at the end: dead={dead} ran={len(done)}/{jobs} {depth(env, 'work')}\n"
        f"receive counts jobs started with, by run: {_counts_by_run(counts, run_of)}\n"
        f"over the bound (job: count, stops before its run): {dict(sorted(too_many.items())[:10])}"
    )
    checks = {
        "nothing dead-lettered": dead == 0,
        "every job ran": done == Counter(range(jobs)),
        "every job ran once": started == done and max(started.values()) == 1,
        "no job received more than once per stop (+1 to run)": not too_many,
        "the queue is empty": depth(env, "work") == {"visible": 0, "in_flight": 0, "delayed": 0},
    }
    problems += [f"at the end: {name}" for name, ok in checks.items() if not ok]
    print("\n".join(story))  # shown with -rP: the figures of a passing run
    assert not problems, "\n".join(problems + story)


def _counts_by_run(counts: dict[int, int], run_of: dict[int, int]) -> dict[int, Counter[int]]:
    """Run -> Counter of the receive counts its jobs started with."""
    by_run: dict[int, Counter[int]] = {}
    for n, count in counts.items():
        by_run.setdefault(run_of[n], Counter())[count] += 1
    return dict(sorted(by_run.items()))


# -- 2. a cold stop leaves nothing in flight -------------------------------------


def test_cold_stop_during_a_long_poll_leaves_nothing_in_flight(
    workers_for: Callable[..., Workers],
) -> None:
    """Two SIGTERMs 1.2 s apart while the job runs and a poller waits in a 5 s long poll.

    The cold stop returns within ``wait_seconds`` (at once on the in-memory SQS)
    and leaves nothing in flight: what the long poll brings back is released too.
    """
    workers = workers_for(visibility_timeout=60, sleep=30)
    workers.queue.add_job("job", n=0)
    env = workers.env
    stop = workers.run(
        [(0.3, signal.SIGTERM), (1.5, signal.SIGTERM)],
        workers.started_since(0),
        concurrency=1,
        pollers=2,
        wait_seconds=5,
    )
    in_flight = in_flight_after_exit(env)
    state = (
        f"in_flight={in_flight} dead={dead_letters(env)} cold latency={stop.latency():.1f}s "
        f"{depth(env, 'work')}\n{summary(stop)}"
    )
    print(state)  # shown with -rP
    assert stop.returncode in (0, None), state
    assert stop.latency() <= receives_end_within(env, 5) + STOP_SLACK, state
    assert in_flight == 0, state
    # The abandoned job comes back at once (not after 60 s), not acked and not dead.
    seen = peek(env)
    state += f"\npeeked (job: receive count incl. this peek): {seen}"
    assert list(seen) == [0], state
    # Received once to run, at most once more during the stop, once by the peek.
    assert seen[0] <= 3, state
    assert [e.event for e in read_log(workers.log)] == ["start"], state
    assert dead_letters(env) == 0, state


# -- 4. stop latency with a job still running ------------------------------------


@pytest.mark.parametrize("kind", ["warm", "cold"])
def test_a_stop_returns_in_bounded_time_and_releases_the_running_job(
    workers_for: Callable[..., Workers], kind: str
) -> None:
    """A 30 s job, long polls of 5 s (README: "A warm stop returns within ...").

    Warm (SIGTERM, grace period 2 s): returns after the grace period and within
    wait_seconds + grace_period. Cold (SIGQUIT, grace period 30 s): does not wait
    for the job; returns within wait_seconds (at once on the in-memory SQS).
    Either way the job's message is released, not acked: nothing in flight
    after the exit, received only to run, visible at once.
    """
    wait_seconds = 5
    grace = 2.0 if kind == "warm" else 30.0
    workers = workers_for(visibility_timeout=60, sleep=30)
    workers.queue.add_job("job", n=0)
    env = workers.env
    signum = signal.SIGTERM if kind == "warm" else signal.SIGQUIT
    stop = workers.run(
        [(0.3, signum)],
        workers.started_since(0),
        concurrency=1,
        pollers=2,
        wait_seconds=wait_seconds,
        grace_period=grace,
    )
    in_flight = in_flight_after_exit(env)
    latency = stop.latency()
    state = (
        f"{kind} stop: latency={latency:.2f}s in_flight={in_flight} dead={dead_letters(env)} "
        f"{depth(env, 'work')} returncode={stop.returncode}\n{summary(stop)}"
    )
    print(state)  # shown with -rP
    assert stop.returncode in (0, None), state
    receives = receives_end_within(env, wait_seconds)
    if kind == "warm":
        assert grace - 0.2 <= latency <= receives + grace + STOP_SLACK, state
    else:
        assert latency <= receives + STOP_SLACK, state
    assert in_flight == 0, state
    seen = peek(env)
    state += f"\npeeked (job: receive count incl. this peek): {seen}"
    assert list(seen) == [0], state
    assert seen[0] == 2, state  # received once to run; the stop did not receive it again
    assert [e.event for e in read_log(workers.log)] == ["start"], state
    assert dead_letters(env) == 0, state


# -- 3. shutdown policies do not wait out a long poll ----------------------------


def test_idle_shutdown_returns_soon_after_the_queue_goes_idle(sqs: SQSEnv) -> None:
    """IdleShutdown(2) with 20 s long polls returns within 2 s + slack of the last job."""
    create_standard_queue(sqs, "idle")
    queue = sqs.queue("idle")
    memory = on_memory(sqs)
    jobs = 2000 if memory else 200
    finished: list[float] = []
    ran: Counter[int] = Counter()
    lock = threading.Lock()

    @queue.processor("job")
    def job(n: int) -> None:
        with lock:
            ran[n] += 1
            finished.append(time.monotonic())

    with queue.add_batch():
        for n in range(jobs):
            job.delay(n=n)
    idle = 2.0
    policy: ShutdownPolicy = IdleShutdown(idle)
    started = time.monotonic()
    queue.process_queue(shutdown_policy=policy, wait_seconds=20)
    returned = time.monotonic()
    after_idle = returned - max(finished)
    slack = 1.5 if memory else 2.0
    state = (
        f"{jobs} jobs in {max(finished) - started:.2f}s; returned {after_idle:.2f}s after the "
        f"last job (bound {idle} + {slack}); {depth(sqs, 'idle')}"
    )
    assert ran == Counter(range(jobs)), state
    assert after_idle <= idle + slack, state
    assert depth(sqs, "idle") == {"visible": 0, "in_flight": 0, "delayed": 0}, state


def test_seed_idle_shutdown_example_returns_after_its_idle_time(sqs: SQSEnv) -> None:
    """The seed README's ``process_queue(shutdown_policy=IdleShutdown(idle_seconds=3))``.

    On an empty queue it returns after about 3 s, not after the default long poll.
    """
    create_standard_queue(sqs, "foo")
    started = time.monotonic()
    sqs.queue("foo").process_queue(shutdown_policy=IdleShutdown(idle_seconds=3))
    took = time.monotonic() - started
    slack = 1.5 if on_memory(sqs) else 2.0
    assert 3 - 0.1 <= took <= 3 + slack, f"returned after {took:.2f}s"
    assert depth(sqs, "foo")["in_flight"] == 0
