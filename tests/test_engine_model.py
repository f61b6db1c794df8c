"""Model-based test of the engine: random jobs, stops and restarts on the in-memory SQS.

A Hypothesis state machine (:class:`EngineModel`) drives ``queue.process_queue`` on
a standard queue of the in-memory session with a redrive policy (maxReceiveCount
``MAX_RECEIVES``) to a dead-letter queue, ``VisibilityTimeout`` ``VISIBILITY`` and
a ``ConstantBackoff`` of 0 or 1 s. Its rules:

- ``enqueue``: a batch of jobs of random kinds: ``ok``, ``fail_once`` /
  ``fail_always`` (raise an Exception), ``base_once`` / ``base_always`` (raise
  ``SystemExit``, ``KeyboardInterrupt`` or ``GeneratorExit``), ``slow`` (sleeps past
  the visibility timeout: the heartbeat must keep it hidden), ``parent`` (enqueues
  1-3 children from inside the job);
- ``run``: a new engine (random concurrency, pollers, prefetch, wait_seconds,
  grace period) on the same queue (a restart), either until idle
  (``IdleShutdown``) or stopped warm, cold, warm-then-cold, by ``request_stop`` or
  by real SIGTERM/SIGINT, once a given number of jobs started (or after a delay).

Every job's id is its argument; the job function records each run in a ledger
(start, end, outcome). A wrapping client (observing, never faking) records every
receive, delete and visibility change of the engine with the receipt handle ->
job id mapping. After every engine run the checks (``check_run``) assert:

1. ``ack``: a job is acked (deleted) only after a run of it succeeded; every run
   that succeeded before the engine returned was acked before it returned; no job
   is acked twice;
2. ``receives``: a job gains at most one receive it did not run per engine run
   (stops never burn receives); each ApproximateReceiveCount agrees with the log;
3. ``in flight``: every message received by the run is settled before
   ``process_queue`` returns (deleted, delayed by the backoff, or released at
   visibility 0), nothing is received or touched after it returned, the heartbeat
   never extends a settled message, and the queue's in-flight count is only the
   messages waiting out a backoff;
4. ``backoff``: a run that raised (Exception or BaseException) is settled with the
   backoff delay, and the job is not received again before that delay passed; a run
   the stop gave up on (cold, or a warm stop's grace over) had its message released
   at visibility 0, and its end never delays that message afterwards (it may be in
   another worker's hands);
5. ``once``: a job that succeeded ran once (slow ones too: the heartbeat extends
   them) unless a cold stop abandoned a run of it; two runs never overlap;
6. ``dead letters``: the DLQ holds no job that succeeded, and no job of a kind
   that never fails; a job there was received ``MAX_RECEIVES`` times;
7. ``stop latency``: a warm stop returns within wait_seconds + grace_period, a
   cold one within wait_seconds (+ ``LATENCY_SLACK``).

At the end of each example (teardown) the queue is run until empty: every job
either succeeded and was acked exactly once, or (the kinds that always fail) is in
the dead-letter queue; nothing is lost.

Modes (environment variables):

- default (CI): 8 examples of up to 6 steps, no shrinking, plus three fixed
  scenarios (the issue's findings 1, 2 and 6): 30-45 s on a 2-core machine;
- ``SQSW_TEST_MODEL_PROFILE=release``: 120 examples of up to 10 steps, with shrinking,
  about 10 minutes (more when it shrinks a failure), before a release:
  ``SQSW_TEST_MODEL_PROFILE=release .venv/bin/python -m pytest
  tests/test_engine_model.py -q -p no:cacheprovider``;
- ``SQSW_TEST_MODEL_EXAMPLES=N`` overrides the number of examples of either profile;
- ``SQSW_TEST_MODEL_CHECKS=receives,backoff`` fails on those kinds of problem only (the
  word before the colon), to shrink one invariant's failure at a time;
- ``SQSW_TEST_MODEL_VERBOSE=1`` (with ``-s``) prints each step and engine run.

The heartbeat's visibility changes are told apart from settles by the name of the
calling thread (``heartbeat`` in it); the engine's threads are those started while
``process_queue`` ran, joined after it returned (abandoned jobs finish first).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from sqsw_core import SQSEnv, create_standard_queue
from sqsw_core.backoff_policies import ConstantBackoff
from sqsw_core.shutdown_policies import IdleShutdown, NeverShutdown, ShutdownPolicy
from sqsw_memory import MemorySession
from tests.helpers import InterceptedClient

#: The queue's visibility timeout (s): small, so slow jobs need the heartbeat.
VISIBILITY = 2
#: Deliveries before SQS moves a message to the dead-letter queue.
MAX_RECEIVES = 4
#: Explicit stops per example: fewer than MAX_RECEIVES - 1, so a job that fails at
#: most once cannot reach the DLQ through the one receive each stop may burn.
MAX_STOPS = MAX_RECEIVES - 2
#: How long a ``slow`` job sleeps: past the visibility timeout.
SLOW_SECONDS = VISIBILITY + 0.7
#: At most this many slow jobs per example (each costs wall time).
MAX_SLOW = 2
#: No more enqueues once an example enqueued this many jobs (children not counted).
MAX_JOBS = 80
#: Seconds of scheduling slack allowed on stop latencies.
LATENCY_SLACK = 1.5
#: Slack on "not received before its backoff passed" (clock reads, rounding).
BACKOFF_SLACK = 0.05
#: Idle time of the ``run_until_idle`` engines.
IDLE_SECONDS = 0.2

#: pytest-timeout for the random exploration: the release mode shrinks for long.
MODEL_TIMEOUT = 3600 if os.environ.get("SQSW_TEST_MODEL_PROFILE") == "release" else 300
#: Print one line per engine run (run pytest with -s).
VERBOSE = os.environ.get("SQSW_TEST_MODEL_VERBOSE") == "1"

#: Only these kinds of problem fail the test (comma-separated prefixes, e.g.
#: ``SQSW_TEST_MODEL_CHECKS=backoff``): to shrink a failure of one invariant at a time.
ONLY = frozenset(filter(None, os.environ.get("SQSW_TEST_MODEL_CHECKS", "").split(",")))

JOB = "model_job"
#: Threads that are not an engine run's: the model's watchers, and the process's job
#: loop and sending threads (started on first use, kept for the process's life).
PROCESS_THREADS = ("model-watch", "sqsw-async-loop", "sqsw-send")
#: How long a ``brief`` job sleeps: long enough for messages to pile up in prefetch.
BRIEF_SECONDS = 0.2

OK_KINDS = ("ok", "brief", "slow", "parent")  # never raise
ONCE_KINDS = ("fail_once", "base_once")  # raise on their first run only
ALWAYS_KINDS = ("fail_always", "base_always")  # raise every time: end in the DLQ
CHILD_KINDS = ("ok", "fail_once", "fail_always")
BASE_EXCEPTIONS: dict[str, type[BaseException]] = {
    "SystemExit": SystemExit,
    "KeyboardInterrupt": KeyboardInterrupt,
    "GeneratorExit": GeneratorExit,
}


# -- settings -----------------------------------------------------------------------


def _profile() -> settings:
    name = os.environ.get("SQSW_TEST_MODEL_PROFILE", "ci")
    common: dict[str, Any] = {
        "deadline": None,
        "database": None,
        "print_blob": True,
        "suppress_health_check": list(HealthCheck),
    }
    if name == "release":
        chosen = settings(max_examples=120, stateful_step_count=10, **common)
    elif name == "ci":
        # No shrinking: a failure prints the example as found, within the time bound.
        chosen = settings(
            max_examples=8,
            stateful_step_count=6,
            phases=(Phase.explicit, Phase.reuse, Phase.generate),
            **common,
        )
    else:
        raise ValueError(f"SQSW_TEST_MODEL_PROFILE={name!r}: use 'ci' or 'release'")
    examples = os.environ.get("SQSW_TEST_MODEL_EXAMPLES")
    if examples:
        chosen = settings(chosen, max_examples=int(examples))
    return chosen


# -- the record: a shared sequence, the job ledger, the SQS call log ---------------


@dataclass
class Run:
    """One run of a job: recorded by the job function itself."""

    jid: int
    index: int  # 0 for the job's first run
    engine: int
    start_seq: int
    t_start: float
    thread: threading.Thread
    end_seq: int | None = None
    t_end: float | None = None
    outcome: str | None = None  # "ok", "exc" (an Exception) or "base" (a BaseException)
    raised: str | None = None


@dataclass
class Received:
    seq: int
    t: float
    engine: int
    jid: int
    handle: str
    count: int | None


@dataclass
class Settle:
    """A successful delete or visibility change entry of one receipt handle."""

    seq: int
    t: float
    engine: int
    jid: int | None
    handle: str
    delete: bool
    timeout: int  # visibility timeout (deletes: -1)
    heartbeat: bool
    thread: str


@dataclass
class EngineRun:
    id: int
    how: str  # "idle" or a stop plan
    options: dict[str, Any]
    start_seq: int
    t_start: float
    exit_seq: int = 0
    t_return: float = 0.0
    t_stop: float | None = None  # the first stop request
    cold: bool = False  # a cold stop was requested
    raised: str | None = None


@dataclass
class Job:
    jid: int
    kind: str
    base: str = "SystemExit"  # which BaseException the base_* kinds raise
    children: tuple[str, ...] = ()
    parent: int | None = None
    runs: list[Run] = field(default_factory=list)


class Record:
    """Everything observed in one example, under one lock, in one sequence."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._seq = 0
        self.jobs: dict[int, Job] = {}
        self.receives: list[Received] = []
        self.by_handle: dict[str, Received] = {}
        self.settles: list[Settle] = []
        self.engines: list[EngineRun] = []
        self.engine = 0  # the id of the engine running (or last run)
        self.dead: dict[int, int] = {}  # job id -> seq of finding it in the DLQ
        self.unknown: list[str] = []  # odd things seen by the client wrapper

    def tick(self) -> int:
        """The next sequence number (call under ``lock``)."""
        self._seq += 1
        return self._seq

    def new_job(self, kind: str, **details: Any) -> Job:
        with self.lock:
            job = Job(len(self.jobs) + 1, kind, **details)
            self.jobs[job.jid] = job
            return job

    def start_run(self, jid: int) -> Run:
        with self.lock:
            job = self.jobs[jid]
            run = Run(
                jid,
                len(job.runs),
                self.engine,
                self.tick(),
                time.monotonic(),
                threading.current_thread(),
            )
            job.runs.append(run)
            return run

    def end_run(self, run: Run, outcome: str, raised: str | None) -> None:
        with self.lock:
            run.end_seq = self.tick()
            run.t_end = time.monotonic()
            run.outcome = outcome
            run.raised = raised

    def active_runs(self) -> list[Run]:
        with self.lock:
            return [r for j in self.jobs.values() for r in j.runs if r.end_seq is None]


class RecordingClient(InterceptedClient):
    """Passes every call to the in-memory SQS; records the main queue's receives and
    settles (observing only: answers are SQS's own)."""

    def __init__(self, client: Any, record: Record) -> None:
        super().__init__(client)
        self.record = record
        self.queue_url: str | None = None

    def intercept(self, operation: str, target: Callable[..., Any], params: dict[str, Any]) -> Any:
        response = target(**params)
        if self.queue_url is None or params.get("QueueUrl") != self.queue_url:
            return response
        if operation == "ReceiveMessage":
            self._received(response.get("Messages", []))
        elif operation == "DeleteMessage":
            self._settled([(params["ReceiptHandle"], -1)], delete=True)
        elif operation == "DeleteMessageBatch":
            self._settled(_successful(params, response, None), delete=True)
        elif operation == "ChangeMessageVisibility":
            self._settled([(params["ReceiptHandle"], int(params["VisibilityTimeout"]))])
        elif operation == "ChangeMessageVisibilityBatch":
            self._settled(_successful(params, response, "VisibilityTimeout"))
        return response

    def _received(self, messages: list[dict[str, Any]]) -> None:
        record = self.record
        now = time.monotonic()
        with record.lock:
            seq = record.tick()
            for message in messages:
                count = message.get("Attributes", {}).get("ApproximateReceiveCount")
                try:
                    jid = int(json.loads(message["Body"])["jid"])
                except (ValueError, KeyError, TypeError):
                    record.unknown.append(f"a message that is not a model job: {message!r}")
                    continue
                event = Received(
                    seq,
                    now,
                    record.engine,
                    jid,
                    message["ReceiptHandle"],
                    None if count is None else int(count),
                )
                record.receives.append(event)
                record.by_handle[event.handle] = event

    def _settled(self, entries: list[tuple[str, int]], delete: bool = False) -> None:
        record = self.record
        now = time.monotonic()
        thread = threading.current_thread().name
        with record.lock:
            seq = record.tick()
            for handle, timeout in entries:
                received = record.by_handle.get(handle)
                if received is None:
                    record.unknown.append(f"a settle of a handle never received: {handle}")
                record.settles.append(
                    Settle(
                        seq,
                        now,
                        record.engine,
                        None if received is None else received.jid,
                        handle,
                        delete,
                        timeout,
                        "heartbeat" in thread,
                        thread,
                    )
                )


def _successful(
    params: dict[str, Any], response: dict[str, Any], timeout_key: str | None
) -> list[tuple[str, int]]:
    """(handle, timeout) of the entries of a batch call that SQS applied."""
    ok = {entry["Id"] for entry in response.get("Successful", [])}
    return [
        (entry["ReceiptHandle"], int(entry[timeout_key]) if timeout_key else -1)
        for entry in params["Entries"]
        if entry["Id"] in ok
    ]


# -- strategies ---------------------------------------------------------------------

KINDS = st.sampled_from(
    [
        "ok",
        "brief",
        "ok",
        "brief",
        "fail_once",
        "fail_always",
        "base_once",
        "parent",
        "slow",
        "base_always",
    ]
)
JOB_SPECS = st.tuples(
    KINDS,
    st.sampled_from(sorted(BASE_EXCEPTIONS)),
    st.lists(st.sampled_from(CHILD_KINDS), min_size=1, max_size=3),
)
_THREADED_OPTIONS = st.fixed_dictionaries(
    {
        "concurrency": st.integers(1, 8),
        "pollers": st.none() | st.integers(1, 4),
        "prefetch": st.none() | st.integers(0, 20),
        "wait_seconds": st.sampled_from([0, 1, 2]),
        "grace_period": st.sampled_from([10.0, 0.5]),
    }
)
# concurrency=1 with automatic pollers: the solo thread (it receives and runs), a
# path of its own, so drawn as often as every other configuration together.
_SOLO_OPTIONS = st.fixed_dictionaries(
    {
        "concurrency": st.just(1),
        "pollers": st.none(),
        "prefetch": st.none() | st.integers(0, 20),
        "wait_seconds": st.sampled_from([0, 1, 2]),
        "grace_period": st.sampled_from([10.0, 0.5]),
    }
)
ENGINE_OPTIONS = _SOLO_OPTIONS | _THREADED_OPTIONS
STOP_PLANS = st.fixed_dictionaries(
    {
        "how": st.sampled_from(["warm", "cold", "warm_then_cold", "sigterm", "signal_twice"]),
        "after_runs": st.integers(0, 4),
        "delay": st.sampled_from([0.0, 0.05, 0.3, 1.0]),
        "gap": st.sampled_from([0.0, 0.2, 1.0]),
    }
)


# -- the state machine --------------------------------------------------------------


class EngineModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.record = Record()
        self.session = MemorySession()
        self.client = RecordingClient(self.session.client("sqs"), self.record)
        self.observer = self.session.client("sqs")  # unrecorded: for the checks
        self.stops = 0
        self.slow = 0
        self.enqueued = 0  # jobs enqueued by the enqueue rule (children not counted)
        self.ready = False
        self.busy = False  # a rule is running, or raised

    # -- setup --------------------------------------------------------------------

    @initialize(backoff=st.sampled_from([1, 0]), async_jobs=st.booleans())
    def setup(self, backoff: int, async_jobs: bool = False) -> None:
        self.backoff = backoff
        prefix = f"m{uuid.uuid4().hex[:8]}_"
        env = SQSEnv(
            self.session,
            queue_prefix=prefix,
            sqs_client=self.client,
            backoff_policy=ConstantBackoff(backoff),
        )
        self.env = env
        create_standard_queue(env, "model_dead")
        create_standard_queue(
            env,
            "model",
            visibility_timeout=VISIBILITY,
            redrive_policy=env.redrive_policy("model_dead", MAX_RECEIVES),
        )
        self.queue = env.queue("model")
        self.client.queue_url = self.queue.url
        self.dead_url = env.queue("model_dead").url
        record = self.record
        queue = self.queue

        if async_jobs:

            @queue.processor(JOB)
            async def model_job_async(jid: int) -> None:
                run = record.start_run(jid)
                job = record.jobs[jid]
                try:
                    await _behave_async(job, run, record, queue)
                except Exception as exc:
                    record.end_run(run, "exc", type(exc).__name__)
                    raise
                except BaseException as exc:  # a cold stop's cancel is one too
                    record.end_run(run, "base", type(exc).__name__)
                    raise
                record.end_run(run, "ok", None)

        else:

            @queue.processor(JOB)
            def model_job(jid: int) -> None:
                run = record.start_run(jid)
                job = record.jobs[jid]
                try:
                    _behave(job, run, record, queue)
                except Exception as exc:
                    record.end_run(run, "exc", type(exc).__name__)
                    raise
                except BaseException as exc:
                    record.end_run(run, "base", type(exc).__name__)
                    raise
                record.end_run(run, "ok", None)

        self.ready = True

    # -- rules --------------------------------------------------------------------

    @precondition(lambda self: self.ready and self.enqueued < MAX_JOBS)
    @rule(specs=st.lists(JOB_SPECS, min_size=1, max_size=30))
    def enqueue(self, specs: list[tuple[str, str, list[str]]]) -> None:
        self.busy = True
        if VERBOSE:
            print(f"enqueue {[k for k, _, _ in specs]}")
        with self.queue.add_batch():
            for kind, base, children in specs:
                if kind == "slow":
                    if self.slow >= MAX_SLOW:
                        kind = "ok"
                    else:
                        self.slow += 1
                job = self.record.new_job(
                    kind, base=base, children=tuple(children) if kind == "parent" else ()
                )
                self.queue.add_job(JOB, jid=job.jid)
                self.enqueued += 1
        self.busy = False

    # Preconditions read only what the drawn steps decided (never outcomes, which
    # depend on timing): Hypothesis replays steps and needs the same rules enabled.
    @precondition(lambda self: self.ready and self.enqueued > 0)
    @rule(options=ENGINE_OPTIONS, plan=st.none() | STOP_PLANS)
    def run(self, options: dict[str, Any], plan: dict[str, Any] | None) -> None:
        """A new engine on the queue (a restart): until idle (``plan`` None) or stopped as
        ``plan`` says (at most ``MAX_STOPS`` per example; after that, until idle)."""
        self.busy = True
        if plan is not None:
            if self.stops >= MAX_STOPS:
                plan = None
            else:
                self.stops += 1
        self._run_engine(options, plan)
        self.busy = False

    def teardown(self) -> None:
        if VERBOSE:
            print("teardown")
        if not self.ready:
            return
        try:
            if not self.busy:  # after a failed rule: report that failure, not another
                self._drain_and_check()
        finally:
            for url in (self.queue.url, self.dead_url):
                try:
                    self.observer.delete_queue(QueueUrl=url)
                except Exception:
                    pass

    # -- running an engine ----------------------------------------------------------

    def _run_engine(
        self, options: dict[str, Any], plan: dict[str, Any] | None, limit: float = 30.0
    ) -> EngineRun:
        record = self.record
        with record.lock:
            record.engine += 1
            run = EngineRun(
                record.engine,
                "idle" if plan is None else json.dumps(plan, sort_keys=True),
                dict(options),
                record.tick(),
                time.monotonic(),
            )
            record.engines.append(run)
        before = set(threading.enumerate())
        finished = threading.Event()
        watcher = threading.Thread(
            target=self._watch,
            args=(run, plan, finished, limit),
            name=f"model-watch-{run.id}",
            daemon=True,
        )
        policy: ShutdownPolicy = NeverShutdown() if plan is not None else IdleShutdown(IDLE_SECONDS)
        with _forwarding_signals(self.queue):
            watcher.start()
            try:
                self.queue.process_queue(shutdown_policy=policy, **options)
            except (KeyboardInterrupt, SystemExit) as exc:
                # A job raised it: the engine may re-raise it once it settled the message.
                run.raised = type(exc).__name__
            finally:
                with record.lock:
                    run.exit_seq = record.tick()
                    run.t_return = time.monotonic()
                finished.set()
        watcher.join()
        leftovers = self._wait_for_engine_threads(before, options)
        self._drain_dead_letters()
        self.check_run(run, leftovers)
        return run

    def _watch(
        self, run: EngineRun, plan: dict[str, Any] | None, finished: threading.Event, limit: float
    ) -> None:
        """Stops the engine as ``plan`` says; stops it cold after ``limit`` s anyway."""
        queue = self.queue
        deadline = run.t_start + limit

        def engine() -> Any:
            while not finished.is_set() and time.monotonic() < deadline:
                current = queue.engine
                if current is not None:
                    return current
                time.sleep(0.005)
            return None

        def request(cold: bool, signum: int | None) -> None:
            current = engine()
            if current is None or finished.is_set():
                return
            if run.t_stop is None:
                run.t_stop = time.monotonic()
            run.cold = run.cold or cold
            if signum is None:
                current.request_stop(cold=cold)
            else:
                os.kill(os.getpid(), signum)

        if plan is not None and engine() is not None:
            # "after_runs" jobs started in this engine (or 1 s: there may be fewer jobs)
            wanted = plan["after_runs"]
            until = time.monotonic() + 1.0
            while not finished.is_set() and time.monotonic() < until:
                with self.record.lock:
                    started = sum(
                        1 for j in self.record.jobs.values() for r in j.runs if r.engine == run.id
                    )
                if started >= wanted:
                    break
                time.sleep(0.005)
            finished.wait(plan["delay"])
            how = plan["how"]
            if how == "warm":
                request(False, None)
            elif how == "cold":
                request(True, None)
            elif how == "sigterm":
                request(False, signal.SIGTERM)
            else:
                request(False, None if how == "warm_then_cold" else signal.SIGTERM)
                if not finished.wait(plan["gap"]):
                    if how == "warm_then_cold":
                        request(True, None)
                    else:
                        # Signals close together may come from one process group: an
                        # engine may take them as one warm stop; 1 s apart, as cold.
                        request(plan["gap"] >= 1.0, signal.SIGINT)
        if not finished.wait(max(0.0, deadline - time.monotonic())):
            run.how += " [did not stop by itself: stopped cold at the limit]"
            while not finished.is_set():
                current = queue.engine
                if current is not None:
                    current.request_stop(cold=True)
                finished.wait(1.0)

    def _wait_for_engine_threads(
        self, before: set[threading.Thread], options: dict[str, Any]
    ) -> list[str]:
        """Join the threads the engine started (abandoned jobs finish); names of those that
        outlive a generous bound."""
        started = [
            t
            for t in threading.enumerate()
            if t not in before and not t.name.startswith(PROCESS_THREADS)
        ]
        deadline = time.monotonic() + SLOW_SECONDS + options["wait_seconds"] + 5
        for thread in started:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [t.name for t in started if t.is_alive()]

    def _drain_dead_letters(self) -> None:
        """Move what SQS dead-lettered into ``record.dead`` (read and deleted)."""
        while True:
            response = self.observer.receive_message(
                QueueUrl=self.dead_url, MaxNumberOfMessages=10, VisibilityTimeout=60
            )
            messages = response.get("Messages", [])
            if not messages:
                return
            with self.record.lock:
                seq = self.record.tick()
                for message in messages:
                    jid = int(json.loads(message["Body"])["jid"])
                    self.record.dead.setdefault(jid, seq)
            self.observer.delete_message_batch(
                QueueUrl=self.dead_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )

    def _queue_counts(self) -> tuple[int, int, int]:
        attributes = self.observer.get_queue_attributes(
            QueueUrl=self.queue.url, AttributeNames=["All"]
        )["Attributes"]
        return (
            int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]),
            int(attributes["ApproximateNumberOfMessagesDelayed"]),
        )

    # -- checks ---------------------------------------------------------------------

    def check_run(self, run: EngineRun, leftovers: list[str]) -> None:
        """The invariants, after engine run ``run`` returned and its threads ended."""
        now = time.monotonic()
        visible, in_flight, delayed = self._queue_counts()
        with self.record.lock:
            problems = list(_run_problems(self.record, run, self.backoff, leftovers))
            problems += _job_problems(self.record, self.backoff)
            # In flight now: only messages waiting out a backoff set less than that ago.
            waiting = _waiting_out_backoff(self.record, now)
        if in_flight > waiting:
            problems.append(
                f"in flight: {in_flight} message(s) in flight after engine {run.id} returned, "
                f"only {waiting} wait out a backoff (visible={visible}, delayed={delayed})"
            )
        if VERBOSE:
            _summarize(self.record, run)
        _fail_on(problems, self.record, run)

    def _drain_and_check(self) -> None:
        """Teardown: run until the queue is empty; then nothing may be lost."""
        options = {
            "concurrency": 4,
            "pollers": None,
            "prefetch": None,
            "wait_seconds": 0,
            "grace_period": 10.0,
        }
        self._wait_for_active_runs()
        deadline = time.monotonic() + 60
        while True:
            visible, in_flight, delayed = self._queue_counts()
            if visible + in_flight + delayed == 0 or time.monotonic() > deadline:
                break
            if visible == 0:
                time.sleep(0.1)  # a backoff runs out
                continue
            self._run_engine(options, None)
        self._drain_dead_letters()
        with self.record.lock:
            problems = _final_problems(self.record, (visible, in_flight, delayed))
        _fail_on(problems, self.record, None)

    def _wait_for_active_runs(self) -> None:
        deadline = time.monotonic() + SLOW_SECONDS + 5
        while self.record.active_runs() and time.monotonic() < deadline:
            time.sleep(0.01)


def _behave(job: Job, run: Run, record: Record, queue: Any) -> None:
    """What job ``job`` does on its run ``run``."""
    kind = job.kind
    if kind == "slow":
        time.sleep(SLOW_SECONDS)
    elif kind == "brief":
        time.sleep(BRIEF_SECONDS)
    elif kind == "fail_always" or (kind == "fail_once" and run.index == 0):
        raise RuntimeError(f"job {job.jid} fails (run {run.index})")
    elif kind == "base_always" or (kind == "base_once" and run.index == 0):
        raise BASE_EXCEPTIONS[job.base](f"job {job.jid} raises {job.base} (run {run.index})")
    elif kind == "parent":
        for child_kind in job.children:
            child = record.new_job(child_kind, parent=job.jid)
            queue.add_job(JOB, jid=child.jid)


async def _behave_async(job: Job, run: Run, record: Record, queue: Any) -> None:
    """:func:`_behave` as an ``async def`` job: it waits with ``await``, raises the same."""
    kind = job.kind
    if kind == "slow":
        await asyncio.sleep(SLOW_SECONDS)
    elif kind == "brief":
        await asyncio.sleep(BRIEF_SECONDS)
    elif kind == "parent":
        for child_kind in job.children:
            child = record.new_job(child_kind, parent=job.jid)
            await queue.add_job_async(JOB, jid=child.jid)
    else:
        _behave(job, run, record, queue)  # the failures: raised the same way


class _forwarding_signals:
    """Around an engine run: SIGTERM/SIGINT that reach the process outside the engine's
    own handlers (just before it installed them, just after it restored them) ask the
    running engine to stop instead of ending pytest."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self.previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        engine = self.queue.engine
        if engine is not None:
            engine.request_stop()

    def __enter__(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            self.previous[signum] = signal.signal(signum, self._handler)

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


# -- the invariants, as lists of problems ---------------------------------------------


def _run_for(record: Record, received: Received) -> tuple[Run | None, int]:
    """The run of the receive ``received`` (the first run of its job after it and before
    the job's next receive), and how many runs started in that window."""
    later = [r.seq for r in record.receives if r.jid == received.jid and r.seq > received.seq]
    until = min(later) if later else None
    runs = [
        r
        for r in record.jobs[received.jid].runs
        if r.start_seq > received.seq and (until is None or r.start_seq < until)
    ]
    return (runs[0] if runs else None), len(runs)


def _cancelled_at_stop(run: Run, engine: EngineRun) -> bool:
    """An async run the engine cancelled when it gave up on it at a stop (a cold stop, or
    a warm stop's grace period over): its message is released like an abandoned sync
    run's, though the coroutine ended (in CancelledError) before process_queue returned.
    The model's jobs never raise CancelledError themselves."""
    return run.outcome == "base" and run.raised == "CancelledError" and engine.t_stop is not None


def _released_while_running(run: Run, first: Settle | None, engine: EngineRun) -> bool:
    """A sync run whose message the engine released (visibility 0) while it still ran: a
    cold stop, or a warm stop's grace period over, gives up on running jobs. The run may
    end (and fail) before process_queue returns; it is abandoned all the same."""
    if engine.t_stop is None or first is None or first.delete or first.timeout != 0:
        return False
    gave_up = engine.cold or engine.t_return - engine.t_stop >= engine.options["grace_period"]
    return gave_up and (run.end_seq is None or first.seq < run.end_seq)


def _run_problems(
    record: Record, engine: EngineRun, backoff: int, leftovers: list[str]
) -> Iterator[str]:
    exit_seq = engine.exit_seq
    eid = engine.id
    if engine.raised is not None:
        raisers = {
            r.raised
            for j in record.jobs.values()
            for r in j.runs
            if r.engine == eid and r.outcome == "base"
        }
        if engine.raised not in raisers:
            yield f"engine: process_queue raised {engine.raised} that no job of it raised"
    for name in leftovers:
        yield f"threads: {name} still alive long after process_queue returned"
    settles = defaultdict(list)
    for s in record.settles:
        settles[s.handle].append(s)
    for received in record.receives:
        if received.engine != eid:
            continue
        jid = received.jid
        where = f"job {jid} ({record.jobs[jid].kind}) receive #{received.count}"
        if received.seq > exit_seq:
            yield f"in flight: {where} was received after process_queue returned"
            continue
        run, n_runs = _run_for(record, received)
        if n_runs > 1:
            yield f"once: {where} ran {n_runs} times for one receive"
        mine = settles.get(received.handle, [])
        late = [s for s in mine if s.seq > exit_seq]
        for s in late:
            what = "deleted" if s.delete else f"set to visibility {s.timeout}"
            yield f"in flight: {where} was {what} by {s.thread} after process_queue returned"
        firm = [s for s in mine if not s.heartbeat and s.seq < exit_seq]
        first = firm[0] if firm else None
        extended_after = [s for s in mine if s.heartbeat and first and s.seq > first.seq]
        if extended_after:
            yield (
                f"in flight: the heartbeat extended {where} after it was settled "
                f"(settle: {_describe(first)})"
            )
        abandoned = run is not None and (
            run.end_seq is None
            or run.end_seq > exit_seq
            or _cancelled_at_stop(run, engine)
            or _released_while_running(run, first, engine)
        )
        if abandoned and first is not None and not first.delete:
            # Released by the stop: the job's end, if it came before process_queue
            # returned, may still ack it (it succeeded) but never delay it.
            delayed = [s for s in firm[1:] if not s.delete]
            if delayed:
                yield (
                    f"in flight: {where} was set to visibility {delayed[0].timeout} by "
                    f"{delayed[0].thread} after the stop released it"
                )
        if run is None or abandoned:
            state = "never ran" if run is None else "still running at the stop"
            if first is None:
                yield (f"in flight: {where} ({state}) was still held when process_queue returned")
            elif first.delete:
                yield f"ack: {where} ({state}) was acked without succeeding"
            elif first.timeout != 0:
                yield (
                    f"in flight: {where} ({state}) was released with visibility "
                    f"{first.timeout}, not 0"
                )
            continue
        assert run is not None
        if run.outcome == "ok":
            deletes = [s for s in mine if s.delete and s.seq < exit_seq]
            if not deletes:
                yield (
                    f"ack: {where} succeeded in engine {eid} but was not acked before "
                    f"process_queue returned (settle: {_describe(first)})"
                )
        else:
            if first is None:
                yield f"in flight: {where} raised {run.raised} and was never settled"
            elif first.delete:
                yield f"ack: {where} raised {run.raised} and was acked"
            elif first.timeout != backoff:
                yield (
                    f"backoff: {where} raised {run.raised} and was settled with visibility "
                    f"{first.timeout}, not the backoff {backoff}"
                )
    # receives gained without a run, per job, in this engine: at most one (the stop)
    gained: Counter[int] = Counter()
    for received in record.receives:
        if received.engine == eid:
            gained[received.jid] += 1
    for jid, count in gained.items():
        ran = sum(1 for r in record.jobs[jid].runs if r.engine == eid)
        if count - ran > 1:
            yield (
                f"receives: job {jid} ({record.jobs[jid].kind}) was received {count} times "
                f"and ran {ran} times in engine {eid} ({engine.how}): a stop burned "
                f"{count - ran} receives"
            )
    # stop latency
    if engine.t_stop is not None:
        took = engine.t_return - engine.t_stop
        wait = engine.options["wait_seconds"]
        bound = wait + LATENCY_SLACK + (0 if engine.cold else engine.options["grace_period"])
        if took > bound:
            kind = "cold" if engine.cold else "warm"
            yield f"latency: a {kind} stop took {took:.1f} s to return (bound {bound:.1f} s)"
    if "did not stop" in engine.how:
        yield f"latency: engine {eid} did not stop by itself"


def _job_problems(record: Record, backoff: int) -> list[str]:
    """Invariants over each job's whole history so far."""
    problems: list[str] = []
    exits = {e.id: e.exit_seq for e in record.engines}
    engines = {e.id: e for e in record.engines}
    receives: dict[int, list[Received]] = defaultdict(list)
    for received in record.receives:
        receives[received.jid].append(received)
    deletes: dict[int, list[Settle]] = defaultdict(list)
    for s in record.settles:
        if s.delete and s.jid is not None:
            deletes[s.jid].append(s)
    for jid, job in record.jobs.items():
        label = f"job {jid} ({job.kind})"
        runs = job.runs
        mine = receives.get(jid, [])
        for number, received in enumerate(mine, 1):
            if received.count is not None and received.count != number:
                problems.append(
                    f"receives: {label} was received with ApproximateReceiveCount "
                    f"{received.count} but this is its receive {number}"
                )
        acks = deletes.get(jid, [])
        if len(acks) > 1:
            problems.append(f"ack: {label} was acked {len(acks)} times")
        for ack in acks:
            received = record.by_handle[ack.handle]
            run, _ = _run_for(record, received)
            if run is None or run.outcome != "ok" or (run.end_seq or 0) > ack.seq:
                problems.append(
                    f"ack: {label} was acked (receive #{received.count}) without a run "
                    "that succeeded"
                )
        finished_ok = [
            r
            for r in runs
            if r.outcome == "ok" and r.end_seq is not None and r.end_seq < exits.get(r.engine, 0)
        ]
        abandoned = [
            r
            for r in runs
            if r.end_seq is None
            or r.end_seq > exits.get(r.engine, 0)
            or _cancelled_at_stop(r, engines[r.engine])
        ]
        if len(finished_ok) > 1:
            problems.append(
                f"once: {label} succeeded {len(finished_ok)} times "
                f"(runs in engines {[r.engine for r in finished_ok]})"
            )
        elif len([r for r in runs if r.outcome == "ok"]) > 1 + len(abandoned):
            problems.append(f"once: {label} succeeded more often than cold stops explain")
        ordered = sorted(runs, key=lambda r: r.t_start)
        for a, b in itertools.pairwise(ordered):
            if a.t_end is None or b.t_start < a.t_end:
                problems.append(f"once: two runs of {label} overlapped (its visibility ran out)")
        for r in runs:
            if r.outcome in ("exc", "base") and r.end_seq is not None:
                if r.end_seq > exits.get(r.engine, 0) or _cancelled_at_stop(r, engines[r.engine]):
                    continue  # abandoned by a stop: released, not retried
                after = [x for x in mine if x.seq > r.end_seq]
                if after and after[0].t < (r.t_end or 0) + backoff - BACKOFF_SLACK:
                    problems.append(
                        f"backoff: {label} raised {r.raised} and was received again "
                        f"{after[0].t - (r.t_end or 0):.2f} s later (backoff {backoff} s)"
                    )
        if jid in record.dead:
            failed = sum(1 for r in runs if r.outcome in ("exc", "base"))
            ok = [r for r in runs if r.outcome == "ok"]
            if ok:
                problems.append(f"dead letters: {label} is in the DLQ but it succeeded")
            if job.kind in OK_KINDS:
                problems.append(
                    f"dead letters: {label} never fails but is in the DLQ "
                    f"(ran {len(runs)} times, received {len(mine)} times)"
                )
            if len(mine) < MAX_RECEIVES:
                problems.append(
                    f"dead letters: {label} is in the DLQ after {len(mine)} receives "
                    f"(maxReceiveCount {MAX_RECEIVES})"
                )
            if failed < MAX_RECEIVES and job.kind not in OK_KINDS:
                burned = len(mine) - len(runs)
                if failed + burned < MAX_RECEIVES:
                    problems.append(
                        f"dead letters: {label} failed {failed} times, {burned} receives "
                        "burned, yet it is in the DLQ"
                    )
    return problems


def _waiting_out_backoff(record: Record, now: float) -> int:
    """Jobs whose message waits out a backoff: the last settle of its latest receive set
    a visibility that has not run out yet (with a little slack)."""
    latest: dict[int, str] = {}
    for received in record.receives:
        latest[received.jid] = received.handle
    last: dict[str, Settle] = {}
    for s in record.settles:
        if not s.heartbeat:
            last[s.handle] = s
    count = 0
    for jid, handle in latest.items():
        settle = last.get(handle)
        if jid in record.dead or settle is None or settle.delete:
            continue
        if settle.timeout > 0 and settle.t + settle.timeout + 0.2 > now:
            count += 1
    return count


def _final_problems(record: Record, counts: tuple[int, int, int]) -> list[str]:
    problems: list[str] = []
    visible, in_flight, delayed = counts
    if visible + in_flight + delayed:
        problems.append(
            f"lost: the queue still holds visible={visible} in_flight={in_flight} "
            f"delayed={delayed} after the teardown's runs"
        )
    acked = Counter(s.jid for s in record.settles if s.delete and s.jid is not None)
    for jid, job in record.jobs.items():
        label = f"job {jid} ({job.kind})"
        dead = jid in record.dead
        if job.kind in ALWAYS_KINDS:
            if not dead:
                problems.append(f"lost: {label} always fails but is not in the DLQ")
        elif not dead and acked[jid] != 1:
            ran = Counter(r.outcome for r in job.runs)
            problems.append(
                f"lost: {label} was acked {acked[jid]} times (runs: {dict(ran)}), "
                "and is not in the DLQ"
            )
    return problems


def _summarize(record: Record, engine: EngineRun) -> None:
    """One line per engine run (``SQSW_TEST_MODEL_VERBOSE=1``, with ``-s``)."""
    with record.lock:
        received = [r for r in record.receives if r.engine == engine.id]
        runs = [r for j in record.jobs.values() for r in j.runs if r.engine == engine.id]
        settles = [s for s in record.settles if s.engine == engine.id]
    outcomes = Counter(r.outcome for r in runs)
    kinds = Counter("delete" if s.delete else f"vis{s.timeout}" for s in settles)
    print(
        f"engine {engine.id} {engine.how} {engine.options} took "
        f"{engine.t_return - engine.t_start:.2f}s stop->return "
        f"{(engine.t_return - engine.t_stop) if engine.t_stop else 0:.2f}s: "
        f"received={len(received)} runs={dict(outcomes)} settles={dict(kinds)} "
        f"jobs={len(record.jobs)} dead={len(record.dead)}"
    )


def _describe(s: Settle | None) -> str:
    if s is None:
        return "none"
    return "delete" if s.delete else f"visibility {s.timeout} by {s.thread}"


def _fail_on(problems: list[str], record: Record, engine: EngineRun | None) -> None:
    extra = [f"client: {u}" for u in record.unknown]
    problems = list(dict.fromkeys(problems + extra))
    if ONLY:
        problems = [p for p in problems if p.split(":", 1)[0] in ONLY]
    if not problems:
        return
    where = "teardown" if engine is None else f"engine {engine.id} ({engine.how})"
    runs = [
        f"  engine {e.id}: {e.how} options={e.options} cold={e.cold} raised={e.raised}"
        for e in record.engines
    ]
    shown = problems[:15]
    more = f"\n  ... and {len(problems) - 15} more" if len(problems) > 15 else ""
    raise AssertionError(
        f"{len(problems)} invariant violation(s) after {where}:\n  "
        + "\n  ".join(shown)
        + more
        + "\nengine runs:\n"
        + "\n".join(runs)
    )


@pytest.mark.timeout(MODEL_TIMEOUT)
def test_engine_model() -> None:
    """The random exploration (see the module docstring for its modes)."""
    run_state_machine_as_test(EngineModel, settings=_profile())


# -- fixed scenarios: the findings, run every time through the same checks ---


def _scenario(backoff: int, *steps: tuple[str, Any], async_jobs: bool = False) -> None:
    machine = EngineModel()
    machine.setup(backoff=backoff, async_jobs=async_jobs)
    try:
        for name, argument in steps:
            if name == "enqueue":
                machine.enqueue(specs=argument)
            else:
                options, plan = argument
                machine.run(options={**SCENARIO_OPTIONS, **options}, plan=plan)
    finally:
        machine.teardown()


SCENARIO_OPTIONS: dict[str, Any] = {
    "concurrency": 1,
    "pollers": 4,
    "prefetch": None,
    "wait_seconds": 2,
    "grace_period": 10.0,
}


def _jobs(kind: str, count: int, base: str = "SystemExit") -> list[tuple[str, str, list[str]]]:
    return [(kind, base, ["ok"])] * count


def _stop(how: str, after_runs: int = 1, delay: float = 0.0, gap: float = 0.0) -> dict[str, Any]:
    return {"how": how, "after_runs": after_runs, "delay": delay, "gap": gap}


def test_warm_stop_with_prefetched_jobs_burns_no_receive() -> None:
    """Finding 1: pollers in a long poll re-received what the stop released."""
    _scenario(
        1,
        ("enqueue", _jobs("brief", 20)),
        ("run", ({}, _stop("warm"))),
        ("run", ({"concurrency": 2}, _stop("sigterm", after_runs=2))),
    )


def test_solo_thread_stops_burn_no_receive() -> None:
    """The solo thread (concurrency=1 in process) is its own poller: what it prefetched
    goes back once per stop, warm or by SIGTERM, and a slow job is kept hidden."""
    _scenario(
        1,
        ("enqueue", _jobs("brief", 20) + _jobs("slow", 1) + _jobs("fail_once", 3)),
        ("run", ({"pollers": None}, _stop("warm", after_runs=3))),
        ("run", ({"pollers": None}, _stop("sigterm", after_runs=2))),
        ("run", ({"pollers": None, "wait_seconds": 0}, _stop("cold", after_runs=2, delay=1.2))),
    )


def test_async_jobs_stops_burn_no_receive_and_leave_nothing_in_flight() -> None:
    """async def jobs: many in flight on the job loop through a warm stop, a SIGTERM and
    a cold stop (which cancels them); the same invariants as sync jobs."""
    _scenario(
        1,
        ("enqueue", _jobs("brief", 30) + _jobs("slow", 2) + _jobs("fail_once", 4)),
        ("enqueue", _jobs("base_once", 2, "KeyboardInterrupt") + _jobs("parent", 2)),
        ("run", ({"concurrency": 2}, _stop("warm", after_runs=8))),
        ("run", ({"pollers": None}, _stop("sigterm", after_runs=4))),
        ("run", ({"concurrency": 3}, _stop("cold", after_runs=6, delay=0.3))),
        async_jobs=True,
    )


def test_cold_stop_leaves_nothing_in_flight() -> None:
    """Finding 2: a poll answered after a cold stop's release kept its messages."""
    _scenario(
        1,
        ("enqueue", _jobs("slow", 1) + _jobs("fail_once", 2)),
        ("run", ({"concurrency": 2}, _stop("cold", after_runs=2, delay=1.2))),
    )


def test_base_exceptions_from_jobs_get_the_backoff() -> None:
    """Finding 6: SystemExit/KeyboardInterrupt/GeneratorExit released at visibility 0."""
    jobs = [("base_once", name, ["ok"]) for name in sorted(BASE_EXCEPTIONS)]
    _scenario(1, ("enqueue", jobs), ("run", ({"concurrency": 3, "wait_seconds": 1}, None)))
