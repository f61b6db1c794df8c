"""Soak test: producers and workers together for minutes on LocalStack (not run in CI).

    .venv/bin/python benchmarks/soak.py [--minutes 10] [--rate 300] [--workers 2]
        [--concurrency 8] [--job-ms 5] [--producers 2]

Starts LocalStack itself (scripts/localstack.py), then for ``--minutes``:

- ``--producers`` threads send jobs at ``--rate`` jobs/s in total (``SendMessageBatch``
  of 10); each job carries its id and its enqueue time (``time.time()``);
- ``--workers`` worker processes (this script with ``--worker``) run
  ``queue.process_queue(concurrency=...)``; each job sleeps ``--job-ms`` and
  appends ``id start-time pid`` to a log file.

When the time is up the producers stop, the workers drain the queue and are
stopped warm (SIGTERM). Reported: jobs sent, run, lost (sent, never run: must
be 0), duplicates, throughput, enqueue-to-start latency p50/p99/max, RSS of
each worker sampled every ``--sample`` seconds (first, max, last), and the
queue's counters at the end (0 visible, 0 in flight).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _baseline import load_localstack  # noqa: E402

from sqsw_core import AWSSession, SQSEnv, create_standard_queue  # noqa: E402
from sqsw_core.exceptions import SQSBatchError  # noqa: E402
from sqsw_core.queue_management import get_queue_attributes  # noqa: E402

QUEUE = "soak"


def make_env(endpoint: str, prefix: str) -> SQSEnv:
    session = AWSSession(
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    return SQSEnv(session, queue_prefix=prefix)


# --------------------------------------------------------------------------- worker process


def worker_main(args: argparse.Namespace) -> int:
    env = make_env(args.endpoint, args.prefix)
    queue = env.queue(QUEUE)
    sleep = args.job_ms / 1000
    fd = os.open(args.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    pid = os.getpid()

    @queue.processor("job")
    def job(i: int, t: float) -> None:
        started = time.time()
        if sleep:
            time.sleep(sleep)
        os.write(fd, f"{i} {started - t:.6f} {pid}\n".encode())

    queue.process_queue(wait_seconds=5, concurrency=args.concurrency, stats_interval=30)
    os.close(fd)
    return 0


# --------------------------------------------------------------------------- driver


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Producer(threading.Thread):
    """Sends jobs at ``rate`` per second until ``stop`` is set."""

    def __init__(self, env: SQSEnv, index: int, rate: float, stop: threading.Event) -> None:
        super().__init__(name=f"producer-{index}", daemon=True)
        self.queue = env.queue(QUEUE)
        self.index = index
        self.rate = rate
        self.stop = stop
        self.sent: list[int] = []
        self.refused = 0
        self.errors = 0

    def run(self) -> None:
        next_id = self.index * 1_000_000_000
        interval = 10 / self.rate  # one batch of 10 per interval
        due = time.monotonic()
        while not self.stop.is_set():
            ids = list(range(next_id, next_id + 10))
            next_id += 10
            try:
                with self.queue.add_batch():
                    for i in ids:
                        self.queue.add_job("job", i=i, t=time.time())
                self.sent.extend(ids)
            except SQSBatchError as exc:
                self.refused += 1
                print(f"[soak] {self.name}: batch partly refused: {exc}", file=sys.stderr)
            except Exception as exc:  # the batch is not known to be sent: not counted
                self.errors += 1
                print(f"[soak] {self.name}: send failed: {exc}", file=sys.stderr)
            due += interval
            delay = due - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)
            elif delay < -5:  # far behind: do not try to catch up in a burst
                due = time.monotonic()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_worker(args: argparse.Namespace, endpoint: str, prefix: str, log: Path) -> Any:
    return subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--worker",
            "--endpoint",
            endpoint,
            "--prefix",
            prefix,
            "--log",
            str(log),
            "--concurrency",
            str(args.concurrency),
            "--job-ms",
            str(args.job_ms),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def read_log(log: Path) -> tuple[Counter[int], list[float]]:
    runs: Counter[int] = Counter()
    latencies: list[float] = []
    if log.exists():
        for line in log.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3:
                runs[int(parts[0])] += 1
                latencies.append(float(parts[1]))
    return runs, latencies


def record_rss(rss: dict[int, list[float]], pid: int) -> None:
    value = rss_mib(pid)
    if value is not None:
        rss[pid].append(value)


def start_producers(
    args: argparse.Namespace, endpoint: str, prefix: str, stop: threading.Event
) -> tuple[list[Producer], float]:
    """``--producers`` producers sharing ``--rate``, started; and when they started."""
    producers = [
        Producer(make_env(endpoint, prefix), i, args.rate / args.producers, stop)
        for i in range(args.producers)
    ]
    started = time.monotonic()
    for producer in producers:
        producer.start()
    return producers, started


def monitor(
    args: argparse.Namespace,
    workers: list[Any],
    producers: list[Producer],
    log: Path,
    started: float,
) -> dict[int, list[float]]:
    """Until ``--minutes`` are up, every ``--sample`` s: each worker's RSS and a progress line.

    Returns the RSS samples (MiB) by worker pid.
    """
    rss: dict[int, list[float]] = {w.pid: [] for w in workers}
    end = started + args.minutes * 60
    next_sample = started
    while time.monotonic() < end:
        now = time.monotonic()
        if now >= next_sample:
            for w in workers:
                record_rss(rss, w.pid)
            runs, _ = read_log(log)
            sent = sum(len(p.sent) for p in producers)
            print(
                f"[soak] t={now - started:6.0f}s sent={sent} ran={len(runs)} "
                f"rss={[round(v[-1]) for v in rss.values() if v]} MiB",
                file=sys.stderr,
            )
            next_sample = now + args.sample
        time.sleep(0.5)
    return rss


def wait_drained(log: Path, sent_ids: set[int], seconds: float) -> None:
    """Wait until every sent job ran (or give up after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        runs, _ = read_log(log)
        if sent_ids <= set(runs):
            break
        time.sleep(0.5)


def stop_workers(workers: list[Any], rss: dict[int, list[float]]) -> list[int]:
    """A last RSS sample of each worker, then a warm stop (SIGTERM); their exit codes."""
    for w in workers:
        record_rss(rss, w.pid)
        w.send_signal(signal.SIGTERM)
    return [w.wait(60) for w in workers]


@dataclass
class SoakResult:
    sent_ids: set[int]
    runs: Counter[int]  # job id -> times it ran
    latencies: list[float]  # enqueue-to-start, seconds
    refused: int  # batches partly refused
    errors: int  # batches not known to be sent
    produced_for: float  # seconds
    drained_after: float  # seconds
    rss: dict[int, list[float]]  # MiB by worker pid
    codes: list[int]  # worker exit codes
    attrs: dict[str, Any]  # the queue's attributes at the end

    @property
    def lost(self) -> int:
        return len(self.sent_ids - set(self.runs))

    @property
    def duplicates(self) -> int:
        return sum(self.runs.values()) - len(self.runs)


def print_report(args: argparse.Namespace, r: SoakResult) -> None:
    print("\n=== sqsw soak ===")
    print(
        f"config: minutes={args.minutes} rate={args.rate}/s producers={args.producers} "
        f"workers={args.workers} concurrency={args.concurrency} job_ms={args.job_ms}"
    )
    print(
        f"sent={len(r.sent_ids)} ran={len(r.runs)} lost={r.lost} duplicates={r.duplicates} "
        f"refused_batches={r.refused} send_errors={r.errors}"
    )
    print(
        f"throughput={len(r.runs) / (r.produced_for + r.drained_after):.1f} jobs/s "
        f"(offered {len(r.sent_ids) / r.produced_for:.1f}/s; drain took {r.drained_after:.1f} s)"
    )
    print(
        f"enqueue-to-start latency: p50={percentile(r.latencies, 0.5) * 1000:.1f} ms "
        f"p99={percentile(r.latencies, 0.99) * 1000:.1f} ms "
        f"max={max(r.latencies, default=0) * 1000:.1f} ms"
    )
    for pid, values in r.rss.items():
        if values:
            print(
                f"worker {pid} RSS MiB: first={values[0]:.1f} max={max(values):.1f} "
                f"last={values[-1]:.1f} samples={len(values)} "
                f"series={[round(v) for v in values]}"
            )
    print(
        f"queue at the end: visible={r.attrs.get('ApproximateNumberOfMessages')} "
        f"in_flight={r.attrs.get('ApproximateNumberOfMessagesNotVisible')}; "
        f"worker exit codes={r.codes}"
    )


def soak(args: argparse.Namespace, endpoint: str, workers: list[Any]) -> SoakResult:
    """The soak itself; the worker processes it starts go into ``workers``."""
    prefix = f"soak{uuid.uuid4().hex[:6]}_"
    env = make_env(endpoint, prefix)
    create_standard_queue(env, QUEUE, visibility_timeout=30)
    log = Path(tempfile.mkdtemp(prefix="sqsw-soak-")) / "runs.log"
    workers.extend([start_worker(args, endpoint, prefix, log) for _ in range(args.workers)])
    stop = threading.Event()
    producers, started = start_producers(args, endpoint, prefix, stop)
    rss = monitor(args, workers, producers, log, started)
    stop.set()
    for producer in producers:
        producer.join(30)
    produced_for = time.monotonic() - started
    sent_ids = {i for p in producers for i in p.sent}
    wait_drained(log, sent_ids, args.drain)
    drained_after = time.monotonic() - started - produced_for
    codes = stop_workers(workers, rss)
    runs, latencies = read_log(log)
    time.sleep(2)  # LocalStack's counters tick once a second
    attrs = get_queue_attributes(env, QUEUE)
    return SoakResult(
        sent_ids=sent_ids,
        runs=runs,
        latencies=latencies,
        refused=sum(p.refused for p in producers),
        errors=sum(p.errors for p in producers),
        produced_for=produced_for,
        drained_after=drained_after,
        rss=rss,
        codes=codes,
        attrs=attrs,
    )


def driver_main(args: argparse.Namespace) -> int:
    ls = load_localstack()
    server = ls.start_server()
    print(f"[soak] LocalStack at {server.endpoint}", file=sys.stderr)
    workers: list[Any] = []
    try:
        result = soak(args, server.endpoint, workers)
        print_report(args, result)
        return 0 if result.lost == 0 else 1
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
        ls.stop_server(server)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=300, help="jobs/s sent, in total")
    parser.add_argument("--producers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=8, help="job threads per worker")
    parser.add_argument("--job-ms", type=float, default=5)
    parser.add_argument("--sample", type=float, default=10, help="seconds between RSS samples")
    parser.add_argument("--drain", type=float, default=120, help="seconds to wait at the end")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--log", help=argparse.SUPPRESS)
    args = parser.parse_args()
    return worker_main(args) if args.worker else driver_main(args)


if __name__ == "__main__":
    sys.exit(main())
