"""It loses nothing: crashes, injected faults, a server restart, poison input, signing.

Each test prints one ``RELIABILITY`` line with its counts (run with ``-s``):
jobs, lost (always 0), duplicates (at-least-once delivery: a job may run
again, never not at all), faults survived, messages dead-lettered.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import pickle
import random
import signal
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from sqsw_core import (
    IMMEDIATE_RETURN,
    AWSSession,
    MessageTooLargeError,
    SQSEnv,
    create_standard_queue,
)
from sqsw_core.engine import QueueEngine
from sqsw_core.exceptions import ConfigurationError
from sqsw_core.queue_management import get_queue_attributes
from sqsw_core.retries import RetryPolicy
from sqsw_core.shutdown_policies import IdleShutdown
from sqsw_signing import SignatureError, SigningCodec, parse_keys
from tests.helpers import (
    InterceptedClient,
    dead_letter_depth,
    on_memory,
    receive_all,
    runs_by_process,
    runs_in,
    settled_counts,
    start_worker_process,
    wait_until_handling,
)
from tests.localstack_server import REGION, SKIP_REASON, _localstack_module, localstack_endpoint

REPO = Path(__file__).resolve().parent.parent


def report(name: str, **counts: Any) -> None:
    print(f"\nRELIABILITY {name}: " + " ".join(f"{k}={v}" for k, v in counts.items()))


def queue_counts(env: SQSEnv, name: str) -> tuple[int, int, int]:
    attrs = get_queue_attributes(env, name)
    return (
        int(attrs["ApproximateNumberOfMessages"]),
        int(attrs["ApproximateNumberOfMessagesNotVisible"]),
        int(attrs.get("ApproximateNumberOfMessagesDelayed", "0")),
    )


def assert_queue_empty(env: SQSEnv, name: str, timeout: float = 5.0) -> None:
    """Nothing visible, in flight or delayed (LocalStack's counters may lag a tick)."""
    deadline = time.monotonic() + timeout
    while (counts := queue_counts(env, name)) != (0, 0, 0):
        assert time.monotonic() < deadline, f"queue {name} not empty: {counts}"
        time.sleep(0.2)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def drain_dead_letters(env: SQSEnv, name: str) -> list[dict[str, Any]]:
    """Every message of the dead-letter queue ``name`` (received, then deleted)."""
    client, url = env.sqs_client, env.get_queue_url(name)
    found: dict[str, dict[str, Any]] = {}
    empty_polls = 0
    while empty_polls < 2:
        got = client.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0 if on_memory(env) else 1,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
        ).get("Messages", [])
        empty_polls = 0 if got else empty_polls + 1
        for message in got:
            found[message["MessageId"]] = message
            client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return list(found.values())


# ============================================================================ crash


def aws_env(endpoint: str, prefix: str | None = None, **kwargs: Any) -> SQSEnv:
    session = AWSSession(
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    return SQSEnv(session, queue_prefix=prefix or f"r{uuid.uuid4().hex[:8]}_", **kwargs)


def test_random_sigkills_lose_nothing_localstack(
    ls_env: SQSEnv, endpoint: str, tmp_path: Path
) -> None:
    """2 worker processes, one SIGKILLed at random every 1-1.6 s and restarted, 4 times.

    Then the survivors stop warm, once every job has run and what the killed
    workers held has come back. Only a job that a killed worker had received may
    run twice; after the warm stops nothing is in flight and nothing was
    dead-lettered (redrive after ``kills`` + 3 receives: one per kill, per warm
    stop and to run).
    """
    jobs, kills_wanted, visibility = 2000, 4, 3
    rng = random.Random()
    log = tmp_path / "runs.log"
    create_standard_queue(ls_env, "work_dead")
    create_standard_queue(
        ls_env,
        "work",
        visibility_timeout=visibility,
        redrive_policy=ls_env.redrive_policy("work_dead", kills_wanted + 3),
    )
    queue, dead = ls_env.queue("work"), ls_env.queue("work_dead")
    with queue.add_batch():
        for n in range(jobs):
            queue.add_job("job", n=n)

    # ~10 ms jobs, 2 threads per process: the run lasts long enough for every kill.
    settings = {"sleep": 0.01, "concurrency": 2}
    workers = [start_worker_process(ls_env, endpoint, log, **settings) for _ in range(2)]
    kills: list[int] = []  # jobs done when each kill happened
    killed_pids: set[int] = set()
    last_kill = time.monotonic()
    try:
        wait_for(lambda: len(runs_in(log)) > 0, 30, "the first job")
        while len(kills) < kills_wanted and len(runs_in(log)) < jobs:
            time.sleep(rng.uniform(1.0, 1.6))
            slot = rng.randrange(len(workers))
            workers[slot].kill()
            workers[slot].wait(10)
            last_kill = time.monotonic()
            killed_pids.add(workers[slot].pid)
            kills.append(sum(runs_in(log).values()))
            workers[slot] = start_worker_process(ls_env, endpoint, log, **settings)
        # The survivors run every job, including what the killed workers held
        # (visible again after the visibility timeout, plus a LocalStack tick).
        wait_for(lambda: len(runs_in(log)) == jobs, 120, "every job to run")
        wait_for(
            lambda: (
                time.monotonic() > last_kill + visibility + 1.5
                and queue_counts(ls_env, "work")[0] == 0
            ),
            60,
            "the killed workers' messages to be taken again",
        )
        for worker in workers:  # the survivors stop warm
            wait_until_handling(worker, signal.SIGTERM)
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            assert worker.wait(60) == 0
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()

    counts = runs_in(log)
    lost = jobs - len(set(counts) & set(range(jobs)))
    duplicates = sum(counts.values()) - len(counts)
    # Right after the warm stops: nothing in flight; what the survivors had
    # prefetched is visible again (jobs that ran in a killed worker, unacked).
    after = settled_counts(queue, (queue_counts(ls_env, "work")[0], 0, 0))
    waiting = receive_all(queue, release=False)
    report(
        "crash",
        jobs=jobs,
        kills=len(kills),
        killed_at=kills,
        lost=lost,
        duplicates=duplicates,
        max_runs=max(counts.values()),
        after_stop=tuple(after),
        dead_lettered=dead_letter_depth(dead),
    )
    assert lost == 0
    assert set(counts) == set(range(jobs))
    assert len(kills) >= 3, f"the run ended before 3 kills: {kills}"
    assert after[1:] == (0, 0), f"(visible, in flight, delayed) after the warm stops: {after}"
    assert dead_letter_depth(dead) == 0
    # A job runs again only after a run in a killed worker (its ack may not have
    # been sent): every run but the last is by a killed process.
    rerun = {
        n: pids
        for n, pids in runs_by_process(log).items()
        if any(pid not in killed_pids for pid in pids[:-1])
    }
    assert not rerun, f"jobs run again after a run in a surviving worker: {rerun}"
    assert all(
        int(m["Attributes"]["ApproximateReceiveCount"]) - 1 <= len(kills) + 1 for m in waiting
    ), [m["Attributes"]["ApproximateReceiveCount"] for m in waiting]


# ============================================================================ faults


FAULTED = frozenset(
    {
        "ReceiveMessage",
        "DeleteMessageBatch",
        "ChangeMessageVisibilityBatch",
        "SendMessage",
        "SendMessageBatch",
    }
)
PARTIAL = frozenset({"DeleteMessageBatch", "ChangeMessageVisibilityBatch"})


class RandomFaults:
    """Fails a fraction of SQS calls at random, and some entries of batch calls.

    Faults: throttling, HTTP 500/503, connections refused or dropped, read
    timeouts; for receive and send, half of the timeouts happen *after* SQS
    served the call (the response is lost: received messages stay in flight,
    a sent message may be sent twice). Entries of a delete or visibility
    batch are withheld from SQS and reported back in ``Failed`` with a
    server-side code. ``burst(operation, n)`` fails the next ``n`` calls, so
    retries are exhausted.
    """

    def __init__(self, rate: float, partial_rate: float, seed: int) -> None:
        self.rate = rate
        self.partial_rate = partial_rate
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.injected: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.bursts: dict[str, tuple[int, int | None]] = {}
        self.enabled = True

    def burst(self, operation: str, count: int) -> None:
        with self.lock:
            self.bursts[operation] = (count, None)

    def before(self, operation: str) -> tuple[str, Exception | dict[str, Any]] | None:
        """A fault for this call: ("before"|"after", exception or error response)."""
        with self.lock:
            self.calls[operation] += 1
            if not self.enabled or operation not in FAULTED:
                return None
            count, owner = self.bursts.get(operation, (0, None))
            me = threading.get_ident()
            if count and owner in (None, me):  # one thread's call and all its retries
                self.bursts[operation] = (count - 1, me)
                self.injected["burst"] += 1
                return "before", self._error("InternalError", 500)
            if self.rng.random() >= self.rate:
                return None
            kind = self.rng.choice(["throttle", "500", "503", "reset", "refused", "timeout"])
            self.injected[kind] += 1
            url = "http://127.0.0.1:1"
            if kind == "throttle":
                return "before", self._error("ThrottlingException", 400)
            if kind == "500":
                return "before", self._error("InternalError", 500)
            if kind == "503":
                return "before", self._error("ServiceUnavailable", 503)
            if kind == "reset":
                return "before", ConnectionClosedError(endpoint_url=url)
            if kind == "refused":
                return "before", EndpointConnectionError(endpoint_url=url)
            when = "after" if operation in ("ReceiveMessage", "SendMessageBatch") else "before"
            if when == "after":
                self.injected["timeout_after_served"] += 1
            return when, ReadTimeoutError(endpoint_url=url)

    @staticmethod
    def _error(code: str, status: int) -> dict[str, Any]:
        return {
            "Error": {"Code": code, "Message": f"injected {code}"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }

    def withhold(self, operation: str, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Entries to withhold from SQS (reported as failed); at least one is sent."""
        with self.lock:
            if (
                not self.enabled
                or operation not in PARTIAL
                or len(entries) < 2
                or self.rng.random() >= self.partial_rate
            ):
                return []
            count = self.rng.randint(1, len(entries) - 1)
            withheld = self.rng.sample(entries, count)
            self.injected["partial_" + operation] += count
            return withheld

    @staticmethod
    def failed_entries(withheld: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {"Id": e["Id"], "SenderFault": False, "Code": "InternalError", "Message": "injected"}
            for e in withheld
        ]

    def total(self) -> int:
        return sum(v for k, v in self.injected.items() if k != "timeout_after_served")


def raise_fault(fault: Exception | dict[str, Any], operation: str) -> None:
    if isinstance(fault, Exception):
        raise fault
    raise ClientError(fault, operation)  # type: ignore[arg-type]


class FaultyClient(InterceptedClient):
    """Test-only wrapper of a memory SQS client that fails calls as ``RandomFaults`` says."""

    def __init__(self, client: Any, faults: RandomFaults) -> None:
        super().__init__(client)
        self._faults = faults

    def intercept(self, operation: str, target: Callable[..., Any], params: dict[str, Any]) -> Any:
        fault = self._faults.before(operation)
        if fault is not None and fault[0] == "before":
            raise_fault(fault[1], operation)
        withheld: list[dict[str, Any]] = []
        if "Entries" in params:
            withheld = self._faults.withhold(operation, params["Entries"])
            if withheld:
                kept = [e for e in params["Entries"] if e not in withheld]
                params = {**params, "Entries": kept}
        response = target(**params)
        if fault is not None:  # after: SQS served it, the answer is lost
            raise_fault(fault[1], operation)
        if withheld:
            response = dict(response)
            response["Failed"] = [
                *response.get("Failed", []),
                *RandomFaults.failed_entries(withheld),
            ]
        return response


def hook_faults(client: Any, faults: RandomFaults) -> None:
    """Inject into a botocore client with event hooks (the request reaches LocalStack or not)."""
    local = threading.local()

    def before_parameter_build(params: dict[str, Any], model: Any, **_: Any) -> None:
        local.withheld = []
        if "Entries" in params:
            withheld = faults.withhold(model.name, params["Entries"])
            if withheld:
                local.withheld = withheld
                params["Entries"] = [e for e in params["Entries"] if e not in withheld]

    def before_call(model: Any, **_: Any) -> Any:
        fault = faults.before(model.name)
        local.after = None
        if fault is None:
            return None
        if fault[0] == "after":
            local.after = fault[1]
            return None
        local.withheld = []
        if isinstance(fault[1], Exception):
            raise fault[1]
        http = AWSResponse(
            client.meta.endpoint_url, fault[1]["ResponseMetadata"]["HTTPStatusCode"], {}, None
        )
        return http, fault[1]

    def after_call(http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        after, local.after = getattr(local, "after", None), None
        withheld, local.withheld = getattr(local, "withheld", []), []
        if after is not None:
            raise after
        if withheld and http_response.status_code < 300:
            parsed["Failed"] = [*parsed.get("Failed", []), *RandomFaults.failed_entries(withheld)]

    events = client.meta.events
    events.register("before-parameter-build.sqs", before_parameter_build)
    events.register("before-call.sqs", before_call)
    events.register("after-call.sqs", after_call)


def faulty_env(
    backend: str, session: Any, prefix: str, faults: RandomFaults, **kwargs: Any
) -> SQSEnv:
    if backend == "memory":
        env = SQSEnv(
            session,
            queue_prefix=prefix,
            sqs_client=FaultyClient(session.client("sqs"), faults),
            **kwargs,
        )
    else:
        env = SQSEnv(session, queue_prefix=prefix, **kwargs)
        hook_faults(env.sqs_client, faults)
    return env


def test_injected_faults_lose_nothing(
    backend: str,
    session: Any,
    make_env: Callable[..., SQSEnv],
    queue_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """20% of SQS calls fail, some batch entries fail: every job still runs, none is lost."""
    jobs = 400
    # The seed is printed in the report; SQSW_FAULT_SEED=<seed> replays its fault choices.
    seed = int(os.environ.get("SQSW_FAULT_SEED") or random.randrange(1 << 30))
    faults = RandomFaults(rate=0.2, partial_rate=0.2, seed=seed)
    clean = make_env()  # setup and checks, without faults (its queues are deleted after)
    visibility = 3
    create_standard_queue(clean, "jobs", visibility_timeout=visibility)
    producer = faulty_env(
        backend,
        session,
        queue_prefix,
        faults,
        retry=RetryPolicy(max_attempts=6, initial=0.01, max_wait=0.05),
    )
    worker_env = faulty_env(
        backend,
        session,
        queue_prefix,
        faults,
        retry=RetryPolicy(max_attempts=3, initial=0.01, max_wait=0.05),
        backoff_policy=IMMEDIATE_RETURN,
    )
    queue = worker_env.queue("jobs")
    runs: Counter[int] = Counter()
    failed_once: set[int] = set()
    lock = threading.Lock()

    @queue.processor("job")
    def job(n: int) -> None:
        with lock:
            runs[n] += 1
            # One job in 20 fails its first run: retry delays go out as visibility changes.
            if n % 20 == 0 and n not in failed_once:
                failed_once.add(n)
                raise RuntimeError(f"job {n} fails once")

    out = producer.queue("jobs")
    for start in range(0, jobs, 50):
        with out.add_batch():
            for n in range(start, start + 50):
                out.add_job("job", n=n)
    # Exhaust the retries of a delete and of a receive once each, mid-run.
    faults.burst("DeleteMessageBatch", 3)
    faults.burst("ReceiveMessage", 3)
    engine = QueueEngine(
        queue,
        shutdown_policy=IdleShutdown(visibility + 2),
        wait_seconds=0 if backend == "memory" else 1,
        concurrency=8,
    )
    with caplog.at_level(logging.WARNING):
        engine.run()
    faults.enabled = False
    # A receive whose answer was lost hides its messages for the visibility timeout;
    # two in a row can outlast the idle window, so the run may stop with some still
    # hidden. They are not lost: a restart (as after a deploy) runs them.
    left = jobs - len(runs)
    if left:
        QueueEngine(
            queue, shutdown_policy=IdleShutdown(visibility + 2), wait_seconds=0, concurrency=8
        ).run()

    lost = jobs - len(runs)
    extra = sum(runs.values()) - len(runs) - len(failed_once)  # beyond the one planned retry
    failed_acks = engine.acker.failed_acks
    report(
        f"faults[{backend}]",
        jobs=jobs,
        lost=lost,
        left_for_the_restart=left,
        duplicates=extra,
        faults_survived=faults.total(),
        failed_acks=failed_acks,
        seed=seed,
        kinds=dict(faults.injected),
    )
    assert lost == 0
    assert set(runs) == set(range(jobs))
    assert faults.total() >= 0.1 * sum(faults.calls[op] for op in FAULTED)
    # A delete that failed is never silent: it is counted and logged, and the
    # message ran again (a duplicate), since the job had succeeded.
    assert failed_acks >= 1
    assert extra >= failed_acks
    logs = [r.getMessage() for r in caplog.records]
    assert any("Could not delete" in m and "expect duplicates" in m for m in logs)
    assert any("Receiving from" in m and "failed" in m for m in logs)
    assert_queue_empty(clean, "jobs")


# ============================================================================ server restart


def test_worker_reconnects_after_a_server_restart_localstack(tmp_path: Path) -> None:
    """LocalStack stopped mid-run and started again on the same port: the worker carries on.

    Persistence is off, so the jobs held by the old server die with it; only the
    jobs sent to the new server are counted.
    """
    if localstack_endpoint() is None:
        pytest.skip(SKIP_REASON)
    ls = _localstack_module()
    server = ls.start_server()
    port = server.port
    try:
        env = aws_env(
            server.endpoint, retry=RetryPolicy(max_attempts=3, initial=0.05, max_wait=0.2)
        )
        create_standard_queue(env, "jobs", visibility_timeout=5)
        queue = env.queue("jobs")
        seen: Counter[tuple[str, int]] = Counter()
        lock = threading.Lock()

        @queue.processor("job")
        def job(era: str, n: int) -> None:
            time.sleep(0.01)
            with lock:
                seen[era, n] += 1

        with queue.add_batch():
            for n in range(300):
                queue.add_job("job", era="old", n=n)
        stats: list[Any] = []
        thread = threading.Thread(
            target=lambda: stats.append(
                queue.process_queue(IdleShutdown(4), wait_seconds=1, concurrency=4)
            ),
            daemon=True,
        )
        thread.start()
        wait_for(lambda: len(seen) >= 50, 30, "50 jobs on the first server")
        ls.stop_server(server)
        down_at = time.monotonic()
        old_done = len(seen)
        time.sleep(2)
        assert thread.is_alive(), "the worker stopped when the server went away"
        server = ls.launch(port=port)
        ls.wait_ready(server)
        downtime = time.monotonic() - down_at
        create_standard_queue(env, "jobs", visibility_timeout=5)
        fresh = 200
        with queue.add_batch():
            for n in range(fresh):
                queue.add_job("job", era="new", n=n)
        wait_for(lambda: sum(1 for era, _ in seen if era == "new") == fresh, 60, "the new jobs")
        thread.join(60)
        assert not thread.is_alive()
        new_runs = Counter({n: c for (era, n), c in seen.items() if era == "new"})
        report(
            "server_restart",
            old_jobs_done_before_stop=old_done,
            old_jobs_gone_with_server=300 - old_done,
            downtime_s=round(downtime, 1),
            new_jobs=fresh,
            lost=fresh - len(new_runs),
            duplicates=sum(new_runs.values()) - len(new_runs),
        )
        assert set(new_runs) == set(range(fresh))
        assert_queue_empty(env, "jobs")
    finally:
        ls.stop_server(server)


# ============================================================================ poison input


class SideEffect:
    """Unpickling this creates a directory: proof that a pickle was (or was not) decoded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (str(self.path),)


def evil_pickle(path: Path, protocol: int) -> str:
    data = zlib.compress(pickle.dumps({"n": SideEffect(path)}, protocol=protocol))
    return base64.urlsafe_b64encode(data).decode("ascii")


def test_pickle_payload_is_live() -> None:
    """The payload used below does run code when unpickled (so its absence means something)."""
    marker = Path(f"/tmp/sqsw-evil-{uuid.uuid4().hex}")
    text = evil_pickle(marker, 2)
    pickle.loads(zlib.decompress(base64.urlsafe_b64decode(text)))
    assert marker.is_dir()
    marker.rmdir()


def _attr(value: str) -> dict[str, Any]:
    return {"DataType": "String", "StringValue": value}


def test_poison_messages_are_dead_lettered_and_good_jobs_run_once(
    make_env: Callable[..., SQSEnv], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    env = make_env(backoff_policy=IMMEDIATE_RETURN)
    memory = on_memory(env)
    create_standard_queue(env, "jobs_dead")
    create_standard_queue(
        env, "jobs", visibility_timeout=5, redrive_policy=env.redrive_policy("jobs_dead", 2)
    )
    queue = env.queue("jobs")
    ran: Counter[int] = Counter()
    lock = threading.Lock()

    @queue.processor("good")
    def good(n: int, payload: str = "") -> None:
        with lock:
            ran[n] += 1

    marker = tmp_path / "unpickled"
    ok_context = json.dumps({})
    # name -> (body, attributes, what the log line must say)
    poison: dict[str, tuple[str, dict[str, Any], str]] = {
        "invalid_json": (
            '{"n": 1,',
            {"ContentType": _attr("json"), "JobName": _attr("good")},
            "cannot decode message",
        ),
        "not_a_dict": (
            "[1, 2]",
            {"ContentType": _attr("json"), "JobName": _attr("good")},
            "decoded to list",
        ),
        "pickle": (
            evil_pickle(marker, pickle.DEFAULT_PROTOCOL),
            {"ContentType": _attr("pickle"), "JobName": _attr("good")},
            "content type 'pickle', which this worker does not accept",
        ),
        "pickle_compat": (
            evil_pickle(marker, 2),
            {"ContentType": _attr("pickle_compat"), "JobName": _attr("good")},
            "content type 'pickle_compat', which this worker does not accept",
        ),
        "unknown_job": (
            '{"n": 1}',
            {"ContentType": _attr("json"), "JobName": _attr("nobody_knows_me")},
            "no processor for job 'nobody_knows_me'",
        ),
        "no_job_name": ('{"n": 1}', {"ContentType": _attr("json")}, "has no JobName attribute"),
        "no_attributes_bad_body": ("\ufffd not json \U0001f4a5", {}, "has no JobName attribute"),
        "no_content_type_bad_body": (
            "<xml/>",
            {"JobName": _attr("good")},
            "as 'json': JSONDecodeError",
        ),
        "binary_job_name": (
            '{"n": 1}',
            {
                "ContentType": _attr("json"),
                "JobName": {"DataType": "Binary", "BinaryValue": b"\xff\xfegood"},
            },
            "has no JobName attribute",
        ),
        "bad_arguments": (
            '{"m": 1, "extra": true}',
            {"ContentType": _attr("json"), "JobName": _attr("good")},
            "that do not match",
        ),
        "bad_context": (
            '{"n": 1}',
            {
                "ContentType": _attr("json"),
                "JobName": _attr("good"),
                "JobContext": _attr("{oops"),
            },
            "bad JobContext attribute",  # named as such, not as the body or the arguments
        ),
        "unknown_content_type": (
            '{"n": 1}',
            {"ContentType": _attr("yaml"), "JobName": _attr("good")},
            "content type 'yaml'",
        ),
    }
    assert json.loads(ok_context) == {}
    # A good job whose message is exactly at the size limit.
    limit = env.max_message_size
    overhead = len('{"n": 999999, "payload": ""}') + sum(
        len(k) + len("String") + len(v)
        for k, v in (("ContentType", "json"), ("JobName", "good"), ("JobContext", "{}"))
    )
    big = "x" * (limit - overhead)
    with pytest.raises(MessageTooLargeError):
        queue.add_job("good", n=999999, payload=big + "x")

    ids: dict[str, str] = {}
    good_jobs = 0
    client, url = env.sqs_client, queue.url
    for name, (body, attributes, _) in poison.items():
        for _ in range(3):  # good jobs around every poison message
            queue.add_job("good", n=good_jobs)
            good_jobs += 1
        sent = client.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attributes)
        ids[name] = sent["MessageId"]
    queue.add_job("good", n=999999, payload=big)
    queue.add_job("good", n=good_jobs)
    good_jobs += 1

    with caplog.at_level(logging.INFO):
        stats = queue.process_queue(
            IdleShutdown(0.5 if memory else 2.5), wait_seconds=0 if memory else 1, concurrency=4
        )
    assert stats is not None

    assert ran == Counter([*range(good_jobs), 999999]), "good jobs ran exactly once"
    assert not marker.exists(), "a pickle was decoded by a json worker"
    dead = drain_dead_letters(env, "jobs_dead")
    dead_ids = {m["MessageId"] for m in dead}
    assert dead_ids == set(ids.values())
    assert all(int(m["Attributes"]["ApproximateReceiveCount"]) >= 2 for m in dead)
    errors = [r for r in caplog.records if r.name == "sqsw.jobs" and r.levelno >= logging.ERROR]
    for name, message_id in ids.items():
        expected = poison[name][2]
        lines = [r.getMessage() for r in errors if message_id in r.getMessage()]
        assert len(lines) >= 2, f"{name}: expected one error per delivery, got {lines}"
        assert all(expected in line for line in lines), f"{name}: {lines[0]!r}"
    assert_queue_empty(env, "jobs")
    report(
        f"poison[{'memory' if memory else 'localstack'}]",
        good_jobs=good_jobs + 1,
        good_ran_once=len(ran),
        poison=len(ids),
        dead_lettered=len(dead_ids),
        lost=good_jobs + 1 - len(ran),
        unpickled=marker.exists(),
        worker_errors=len(errors),
    )


# ============================================================================ signing

SECRET_NEW = "new-" + "s3cr3t-Zq8xK2pW9vL4nR7tY1u"
SECRET_OLD = "old-" + "s3cr3t-Jd5mB3cH8fG6kA0eQ2w"
SECRET_OTHER = "oth-" + "s3cr3t-Pp1oO2iI3uU4yY5tT6r"


def test_signing_codec_round_trip_rotation_and_refusals() -> None:
    producer_old = SigningCodec(key=SECRET_OLD, key_id="old")
    worker = SigningCodec(keys={"new": SECRET_NEW, "old": SECRET_OLD}, key_id="new")
    assert worker.key_ids == ["new", "old"]
    text = worker.serialize({"n": 1, "s": "é\ud800"})
    envelope = json.loads(text)
    assert set(envelope) == {"v", "kid", "ct", "sig", "body"}
    assert envelope["kid"] == "new"
    assert worker.deserialize(text) == {"n": 1, "s": "é\ud800"}
    assert worker.deserialize(producer_old.serialize({"n": 2})) == {"n": 2}  # rotation
    with pytest.raises(SignatureError, match="unknown key id 'new'"):
        producer_old.deserialize(text)
    with pytest.raises(SignatureError, match="bad signature"):
        SigningCodec(key=SECRET_OTHER, key_id="new").deserialize(text)
    tampered = dict(envelope, body=envelope["body"].replace("1", "2"))
    with pytest.raises(SignatureError, match="bad signature"):
        worker.deserialize(json.dumps(tampered))
    relabelled = dict(envelope, ct="pickle")  # the content type is covered too
    with pytest.raises(SignatureError, match="bad signature"):
        worker.deserialize(json.dumps(relabelled))
    for unsigned in ('{"n": 1}', "[1]", "garbage", json.dumps(dict(envelope, v=1))):
        with pytest.raises(SignatureError):
            worker.deserialize(unsigned)
    for secret in (SECRET_NEW, SECRET_OLD):
        assert secret not in repr(worker)
        assert secret not in text

    # Whole jobs: arguments and context are bound to the job name and to each other.
    body, context = worker.encode_job("pay", {"n": 1}, {"request": "r-1"})
    assert worker.decode_job("pay", body, context) == ({"n": 1}, {"request": "r-1"})
    assert worker.decode_job(*("pay", *producer_old.encode_job("pay", {"n": 2}, {}))) == (
        {"n": 2},
        {},
    )
    _, other_context = worker.encode_job("pay", {"n": 9}, {"request": "r-1"})
    refusals = {
        "bad signature on the body": ("refund", body, context),  # another job's name
        "bad signature on the context": ("pay", body, other_context),  # another message's
        "no signed JobContext": ("pay", body, None),
        "no JobName": (None, body, context),
        "the body is not a signed": ("pay", '{"n": 1}', context),
    }
    for reason, (job_name, job_body, job_context) in refusals.items():
        with pytest.raises(SignatureError, match=reason):
            worker.decode_job(job_name, job_body, job_context)
    # A text signed alone is not a job (and a job's parts are not texts).
    with pytest.raises(SignatureError, match="bad signature on the body"):
        worker.decode_job("pay", text, worker.serialize({}))
    with pytest.raises(SignatureError, match="bad signature on the text"):
        worker.deserialize(body)


def test_signing_keys_from_the_environment_and_bad_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SQSW_SIGNING_KEYS", f"new:{SECRET_NEW}, old:{SECRET_OLD}")
    env = SQSEnv("memory", codec="signed")  # by name, through the entry point
    assert isinstance(env.codec, SigningCodec)
    assert env.codec.content_type == "signed"
    assert env.codec.key_ids == ["new", "old"]
    assert parse_keys(f"a:{SECRET_NEW}") == {"a": SECRET_NEW.encode()}
    monkeypatch.delenv("SQSW_SIGNING_KEYS")
    errors: list[str] = []
    for make in (
        lambda: SigningCodec(),
        lambda: SigningCodec(key="short", key_id="k"),
        lambda: SigningCodec(environ={"SQSW_SIGNING_KEYS": f"{SECRET_NEW}"}),
        lambda: SigningCodec(keys={"a": SECRET_NEW}, key_id="b"),
        lambda: SigningCodec(inner=SigningCodec(key=SECRET_NEW)),
    ):
        with pytest.raises(ConfigurationError) as info:
            make()
        errors.append(str(info.value))
    assert "SQSW_SIGNING_KEYS" in errors[0]
    assert "shorter than 16 bytes" in errors[1]
    assert "not 'key_id:secret'" in errors[2]
    assert all(SECRET_NEW not in e and "short" not in e.split("bytes")[-1] for e in errors)


def test_signed_worker_refuses_unsigned_and_tampered_messages(
    make_env: Callable[..., SQSEnv], caplog: pytest.LogCaptureFixture
) -> None:
    worker_codec = SigningCodec(keys={"new": SECRET_NEW, "old": SECRET_OLD}, key_id="new")
    env = make_env(codec=worker_codec, backoff_policy=IMMEDIATE_RETURN)
    memory = on_memory(env)
    create_standard_queue(env, "signed_dead")
    create_standard_queue(
        env, "signed", visibility_timeout=5, redrive_policy=env.redrive_policy("signed_dead", 2)
    )
    queue = env.queue("signed")
    ran: Counter[int] = Counter()

    @queue.processor("job")
    def job(n: int) -> None:
        ran[n] += 1

    @queue.processor("refund")
    def refund(n: int) -> None:
        ran[-n] += 1

    old_producer = make_env(codec=SigningCodec(key=SECRET_OLD, key_id="old")).queue("signed")
    stranger = make_env(codec=SigningCodec(key=SECRET_OTHER, key_id="new")).queue("signed")
    client, url = env.sqs_client, queue.url

    def raw(body: str, **attributes: str) -> str:
        message_attributes = {k: _attr(v) for k, v in attributes.items()}
        sent = client.send_message(
            QueueUrl=url, MessageBody=body, MessageAttributes=message_attributes
        )
        return str(sent["MessageId"])

    with env.context(request_id="r-1"):
        queue.add_job("job", n=0)
    old_producer.add_job("job", n=1)  # signed with the old key: accepted
    # Genuine signed jobs, as the worker's own producers make them.
    genuine, genuine_context = worker_codec.encode_job("job", {"n": 2}, {})
    _, other_context = worker_codec.encode_job("job", {"n": 8}, {"request_id": "r-2"})
    bad_body = "the body is not a signed sqsw"
    bad_signature = "bad signature on the body for key id 'new'"
    bad = {
        "unsigned": (raw('{"n": 3}', ContentType="signed", JobName="job"), bad_body),
        "no_content_type": (raw('{"n": 4}', JobName="job"), bad_body),
        "tampered": (
            raw(
                json.dumps(dict(json.loads(genuine), body='{"n": 5}')),
                ContentType="signed",
                JobName="job",
                JobContext=genuine_context,
            ),
            bad_signature,
        ),
        "wrong_secret": (str(stranger.add_job("job", n=6)), bad_signature),
        # A genuine body replayed under another job's name, or with another context.
        "renamed": (
            raw(genuine, ContentType="signed", JobName="refund", JobContext=genuine_context),
            bad_signature,
        ),
        "other_context": (
            raw(genuine, ContentType="signed", JobName="job", JobContext=other_context),
            "bad signature on the context for key id 'new'",
        ),
    }
    queue.add_job("job", n=7)
    with caplog.at_level(logging.DEBUG):
        queue.process_queue(
            IdleShutdown(0.5 if memory else 2.5), wait_seconds=0 if memory else 1, concurrency=2
        )
    assert ran == Counter([0, 1, 7])
    dead = {m["MessageId"] for m in drain_dead_letters(env, "signed_dead")}
    assert dead == {message_id for message_id, _ in bad.values()}
    text = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    for name, (message_id, reason) in bad.items():
        lines = [
            r.getMessage()
            for r in caplog.records
            if r.name == "sqsw.jobs" and message_id in r.getMessage()
        ]
        assert len(lines) >= 2 and all(
            f"as 'signed': SignatureError: {reason}" in x for x in lines
        ), name
    for secret in (SECRET_NEW, SECRET_OLD, SECRET_OTHER):
        assert secret not in text
    report(
        f"signing[{'memory' if memory else 'localstack'}]",
        good=3,
        good_ran_once=len(ran),
        refused=len(bad),
        dead_lettered=len(dead),
        secrets_in_logs=0,
    )


def test_signed_worker_refuses_plain_json_messages() -> None:
    env = SQSEnv("memory", codec=SigningCodec(key=SECRET_NEW, key_id="new"))
    create_standard_queue(env, "q")
    queue = env.queue("q")
    ran: list[int] = []

    @queue.processor("job")
    def job(n: int) -> None:
        ran.append(n)

    queue.add_job("job", _content_type="json", n=1)
    queue.process_batch()
    assert ran == []


# ---------------------------------------------------------------- signing: issue 16


def test_signing_options_from_variables_stay_text() -> None:
    """``SQSW_CODEC__KEY=1234...`` is the text the user wrote, not a JSON number: the
    codec declares ``key`` and ``key_id`` as strings (other options still parse as JSON)."""
    from sqsw_core.config import load_settings

    digits = "1234567890123456789012"
    settings = load_settings(
        environ={"SQSW_CODEC": "signed", "SQSW_CODEC__KEY": digits, "SQSW_CODEC__KEY_ID": "2024"},
        use_file=False,
    )
    codec = settings.env_options()["codec"]
    assert isinstance(codec, SigningCodec)
    assert codec.key_ids == ["2024"]
    producer = SigningCodec(key=digits, key_id="2024")
    body, context = producer.encode_job("send", {"n": 1}, {})
    assert codec.decode_job("send", body, context) == ({"n": 1}, {})
    backoff = load_settings(
        environ={"SQSW_BACKOFF_POLICY": "constant", "SQSW_BACKOFF_POLICY__BACKOFF_VALUE": "5"},
        use_file=False,
    )
    assert backoff.options["backoff_policy"] == {"backoff_value": 5}  # JSON: a number


def test_a_number_given_as_a_signing_key_is_one_clear_error() -> None:
    for options in ({"key": 1234567890123456789, "key_id": "k"}, {"key": SECRET_NEW, "key_id": 7}):
        with pytest.raises(ConfigurationError, match="must be text") as info:
            SigningCodec(**options)  # type: ignore[arg-type]
        assert "1234567890123456789" not in str(info.value)


def test_keys_separated_by_semicolons_are_refused_not_read_as_one_key() -> None:
    spec = f"k1:{SECRET_NEW};k2:{SECRET_OLD}"
    for make in (
        lambda: parse_keys(spec),
        lambda: SigningCodec(environ={"SQSW_SIGNING_KEYS": spec}),
        lambda: SigningCodec(environ={"SQSW_SIGNING_KEYS": f"k0:{SECRET_OTHER},{spec}"}),
    ):
        with pytest.raises(ConfigurationError) as info:
            make()
        message = str(info.value)
        assert "';'" in message and "separate keys with ','" in message
        assert "\n" not in message
        assert SECRET_NEW not in message and SECRET_OLD not in message
    with pytest.raises(ConfigurationError, match="entry 2 of"):
        parse_keys(f"a:{SECRET_OTHER},{spec}")
    # The documented separator still works.
    assert list(parse_keys(f"k1:{SECRET_NEW},k2:{SECRET_OLD}")) == ["k1", "k2"]


def test_the_signing_readme_says_the_queue_name_is_not_covered() -> None:
    """A body signed for one queue verifies on another with the same job name: the codec
    protocol never gives the codec the queue, so the README says so under "Not covered"."""
    codec = SigningCodec(key=SECRET_NEW, key_id="k")
    body, context = codec.encode_job("send", {"n": 1}, {})
    assert codec.decode_job("send", body, context) == ({"n": 1}, {})  # on any queue
    readme = (Path(__file__).resolve().parent.parent / "plugins/sqsw_signing/README.md").read_text()
    assert "**Not covered: the queue.**" in readme
