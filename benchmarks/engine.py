"""The worker engine on LocalStack: sqsw beside a plain boto3 loop and sqs-workers 0.7.3.

    .venv/bin/python benchmarks/engine.py [--jobs 2000] [--skip-baseline] [--skip-memory]

Starts LocalStack itself (scripts/localstack.py), fills a queue with ``--jobs``
jobs and drains it with each contender, in one run:

- sqsw: ``queue.process_queue(concurrency=N)`` (pollers, prefetch, batched acks);
- plain boto3: N threads, each a ``receive_message(10)`` + run + ``delete_message_batch``
  loop: the practical limit of this machine and server for N threads;
- sqs-workers 0.7.3 from PyPI in its own venv (``.bench/``), one process.

Scenarios: no-op jobs (N=4) and jobs sleeping 20 ms (N=32). Also prints each
side's client CPU per 1,000 jobs (this process's CPU time over the run;
LocalStack runs in a process of its own), SQS requests per 1,000 jobs for sqsw
(counted with a botocore event hook), and the worker's RSS on the memory
session from 10,000 to 100,000 jobs.

sqsw and the plain loop run ``--repeat`` times each, alternating, and their
fastest runs count: with LocalStack on the same two cores, single runs of
either move by 5-10%. sqs-workers (tens of seconds per run) runs once.
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from _baseline import load_localstack, run_baseline

from sqsw_core import AWSSession, SQSEnv, create_standard_queue, delete_queue
from sqsw_core.shutdown_policies import MaxTasksShutdown

REPO = Path(__file__).resolve().parent.parent
CREDENTIALS = {
    "region_name": "us-east-1",
    "aws_access_key_id": "test",
    "aws_secret_access_key": "test",
}

SQS_WORKERS_SCRIPT = """
import json, sys, time
import boto3
from sqs_workers import SQSEnv
from sqs_workers.shutdown_policies import MaxTasksShutdown
endpoint, name, jobs, sleep = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])

class Session:
    def __init__(self):
        self.s = boto3.Session(region_name="us-east-1", aws_access_key_id="test",
                               aws_secret_access_key="test")
    def client(self, name, **kw):
        return self.s.client(name, endpoint_url=endpoint, **kw)
    def resource(self, name, **kw):
        return self.s.resource(name, endpoint_url=endpoint, **kw)

env = SQSEnv(session=Session(), codec="json")
queue = env.queue(name)
done = []

@queue.processor("job")
def job(n):
    if sleep:
        time.sleep(sleep)
    done.append(n)

t0 = time.perf_counter()
queue.process_queue(shutdown_policy=MaxTasksShutdown(jobs), wait_second=1)
print(json.dumps({"seconds": time.perf_counter() - t0, "done": len(done)}))
"""


class RequestCounter:
    """Counts SQS API calls made through a boto3 client."""

    def __init__(self, client: Any) -> None:
        self.count = 0
        self._lock = threading.Lock()
        client.meta.events.register("before-call.sqs.*", self._on_call)

    def _on_call(self, **_: Any) -> None:
        with self._lock:
            self.count += 1


def fill(env: SQSEnv, name: str, jobs: int) -> None:
    queue = env.queue(name)
    with queue.add_batch():
        for n in range(jobs):
            queue.add_job("job", n=n)


def make_job(sleep: float, done: list[int], finished: list[float]) -> Callable[[int], None]:
    def job(n: int) -> None:
        if sleep:
            time.sleep(sleep)
        done.append(n)
        finished[0] = time.perf_counter()

    return job


def bench_sqsw(
    env: SQSEnv, name: str, jobs: int, sleep: float, concurrency: int
) -> tuple[float, int, float]:
    """Seconds to the last job's end, SQS requests, and this process's CPU seconds."""
    queue = env.queue(name)
    done: list[int] = []
    finished = [0.0]
    queue.connect_processor("job", make_job(sleep, done, finished))
    counter = RequestCounter(env.sqs_client)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    queue.process_queue(MaxTasksShutdown(jobs), wait_seconds=1, concurrency=concurrency)
    cpu = time.process_time() - cpu0
    # Up to the last job's end, as for the plain loop: the engine's warm stop
    # then waits for in-flight long polls (up to wait_seconds) before returning.
    seconds = finished[0] - t0
    assert len(done) >= jobs, (len(done), jobs)
    return seconds, counter.count, cpu


def bench_plain(
    endpoint: str, url: str, jobs: int, sleep: float, threads: int
) -> tuple[float, float]:
    """Seconds to drain ``jobs`` with ``threads`` receive/delete loops, and CPU seconds."""
    session = boto3.Session(**CREDENTIALS)
    client = session.client(
        "sqs",
        endpoint_url=endpoint,
        config=boto3.session.Config(max_pool_connections=max(10, threads)),
    )
    done = 0
    lock = threading.Lock()
    stop = threading.Event()

    def loop() -> None:
        nonlocal done
        while not stop.is_set():
            messages = client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1,
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                continue
            for _ in messages:
                if sleep:
                    time.sleep(sleep)
            client.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
            with lock:
                done += len(messages)
                if done >= jobs:
                    stop.set()

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    stop.wait()
    seconds = time.perf_counter() - t0
    for w in workers:
        w.join()
    return seconds, time.process_time() - cpu0


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 1e6


def bench_memory_rss(total: int) -> list[tuple[int, float]]:
    """RSS after 10k and after ``total`` jobs processed on the memory session."""
    env = SQSEnv(session="memory")
    create_standard_queue(env, "rss")
    queue = env.queue("rss")
    queue.connect_processor("job", lambda n: None)
    samples = []
    processed = 0
    for target in (10_000, total):
        batch = target - processed
        for start in range(0, batch, 10_000):
            with queue.add_batch():
                for n in range(min(10_000, batch - start)):
                    queue.add_job("job", n=n)
            queue.process_queue(
                MaxTasksShutdown(min(10_000, batch - start)), wait_seconds=0, handle_signals=False
            )
        processed = target
        gc.collect()
        samples.append((processed, rss_mb()))
    return samples


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="runs of sqsw and plain (best)")
    return parser.parse_args()


@dataclass(frozen=True)
class Scenario:
    label: str
    sleep: float  # seconds each job sleeps
    concurrency: int  # threads of sqsw and of the plain loop

    @property
    def queue(self) -> str:
        return f"engine_{int(self.sleep * 1000)}"


SCENARIOS = (Scenario("no-op", 0.0, 4), Scenario("sleep 20 ms", 0.02, 32))


@dataclass(frozen=True)
class Results:
    """The best of a scenario's runs: seconds and client CPU seconds of each side."""

    plain_s: float
    plain_cpu: float
    sqsw_s: float
    sqsw_cpu: float
    requests: int


def best_runs(env: SQSEnv, endpoint: str, scenario: Scenario, jobs: int, repeat: int) -> Results:
    """The plain loop and sqsw, alternating, ``repeat`` times each (at least once).

    The fastest run of each side counts, and the least client CPU of each (this
    process's CPU time: LocalStack runs in its own); requests: of the fastest
    sqsw run.
    """
    name, sleep, concurrency = scenario.queue, scenario.sleep, scenario.concurrency
    url = env.get_queue_url(name)
    plain_runs: list[tuple[float, float]] = []
    sqsw_runs: list[tuple[float, int, float]] = []
    for _ in range(max(1, repeat)):
        fill(env, name, jobs)
        plain_runs.append(bench_plain(endpoint, url, jobs, sleep, concurrency))
        fill(env, name, jobs)
        sqsw_runs.append(bench_sqsw(env, name, jobs, sleep, concurrency))
    sqsw_s, requests, _ = min(sqsw_runs)
    return Results(
        plain_s=min(run[0] for run in plain_runs),
        plain_cpu=min(run[1] for run in plain_runs),
        sqsw_s=sqsw_s,
        sqsw_cpu=min(run[2] for run in sqsw_runs),
        requests=requests,
    )


def bench_sqs_workers(env: SQSEnv, endpoint: str, scenario: Scenario, jobs: int) -> float | None:
    """One run of sqs-workers 0.7.3 in its own venv; ``None`` if it timed out."""
    fill(env, scenario.queue, jobs)
    result = run_baseline(
        SQS_WORKERS_SCRIPT,
        endpoint,
        f"bench_{scenario.queue}",
        str(jobs),
        str(scenario.sleep),
        timeout=900,
    )
    return float(result["seconds"]) if result else None  # type: ignore[arg-type]


def print_scenario(
    scenario: Scenario, jobs: int, repeat: int, results: Results, baseline_s: float | None
) -> None:
    r = results
    plain_ms, sqsw_ms = r.plain_cpu * 1e6 / jobs, r.sqsw_cpu * 1e6 / jobs
    print(f"\n{scenario.label}, {jobs:,} jobs, {scenario.concurrency} threads (best of {repeat}):")
    print(
        f"  plain boto3 loop : {jobs / r.plain_s:8.0f} jobs/s  "
        f"(client CPU {plain_ms:.0f} ms per 1,000 jobs)"
    )
    print(
        f"  sqsw             : {jobs / r.sqsw_s:8.0f} jobs/s  "
        f"({r.plain_s / r.sqsw_s:.2f}x the plain loop; client CPU {sqsw_ms:.0f} ms per 1,000 "
        f"jobs, {sqsw_ms / plain_ms:.2f}x the plain loop's; "
        f"{r.requests * 1000 / jobs:.0f} SQS requests per 1,000 jobs)"
    )
    if baseline_s is not None:
        print(
            f"  sqs-workers 0.7.3: {jobs / baseline_s:8.0f} jobs/s  "
            f"(sqsw is {baseline_s / r.sqsw_s:.1f}x faster)"
        )


def run_scenario(env: SQSEnv, endpoint: str, scenario: Scenario, args: argparse.Namespace) -> None:
    """Drain a fresh queue with each contender, print their rates, delete the queue."""
    create_standard_queue(env, scenario.queue)
    results = best_runs(env, endpoint, scenario, args.jobs, args.repeat)
    baseline_s: float | None = None
    if not args.skip_baseline and scenario.sleep:
        baseline_s = bench_sqs_workers(env, endpoint, scenario, args.jobs)
    print_scenario(scenario, args.jobs, args.repeat, results, baseline_s)
    delete_queue(env, scenario.queue)


def print_memory_rss() -> None:
    (n0, r0), (n1, r1) = bench_memory_rss(100_000)
    print(
        f"\nworker RSS on the memory session: {r0:.1f} MB after {n0:,} jobs, "
        f"{r1:.1f} MB after {n1:,} jobs (growth {r1 - r0:+.1f} MB)"
    )


def main() -> int:
    args = parse_args()
    ls = load_localstack()
    ls.install()
    server = ls.start_server(die_with_parent=True)
    print(f"LocalStack at {server.endpoint} (ready in {server.ready_seconds:.2f} s)")
    try:
        session = AWSSession(endpoint_url=server.endpoint, **CREDENTIALS)
        env = SQSEnv(session, queue_prefix="bench_")
        for scenario in SCENARIOS:
            run_scenario(env, server.endpoint, scenario, args)
    finally:
        ls.stop_server(server)

    if not args.skip_memory:
        print_memory_rss()
    return 0


if __name__ == "__main__":
    sys.exit(main())
