"""I/O-bound jobs: async def jobs on the job loop vs sync jobs on threads, on LocalStack.

    .venv/bin/python benchmarks/async_jobs.py [--jobs 5000] [--sleep 0.2] [--endpoint URL]

Starts LocalStack itself (scripts/localstack.py) unless ``--endpoint`` is given.
Each contender drains ``--jobs`` jobs that each wait ``--sleep`` seconds, in a
worker process of its own (so its peak RSS and CPU time are its own):

- sqsw async: ``async def`` jobs that ``await asyncio.sleep``, 1,000 in flight
  (``async_concurrency=1000``, 4 job threads);
- sqsw threads: sync jobs that ``time.sleep``, ``concurrency`` 64 and 1,000;
- baseline, same server, same run: the plain boto3 loop (4 threads, receive 10 +
  delete batch) on no-op jobs: the rate this machine and server allow at all.

Prints jobs/s, the worker's peak RSS and its CPU ms per 1,000 jobs, with ratios
(async vs the plain loop's jobs/s; RSS vs the 1,000-thread worker). RSS is
shown twice: the whole process's peak, and its peak above the same process
idle (measured just before it starts processing: interpreter, boto3, the
client and the job function loaded, no job received), which is what the jobs
in flight cost. Both workers share that idle baseline, so the whole-process
ratio can never go far below it; the ratio above idle is the cost of 1,000
coroutines vs 1,000 threads.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _baseline import localstack

from sqsw_core import AWSSession, SQSEnv, create_standard_queue, delete_queue

CREDENTIALS = {
    "region_name": "us-east-1",
    "aws_access_key_id": "test",
    "aws_secret_access_key": "test",
}
HERE = Path(__file__).resolve()


def env_for(endpoint: str) -> SQSEnv:
    return SQSEnv(AWSSession(endpoint_url=endpoint, **CREDENTIALS), queue_prefix="bench_")


def fill(env: SQSEnv, name: str, jobs: int) -> None:
    create_standard_queue(env, name, visibility_timeout=60)
    queue = env.queue(name)
    with queue.add_batch():
        for n in range(jobs):
            queue.add_job("job", n=n)


def rss_mb(field: str) -> float:
    """The process's resident memory in MB: ``VmRSS`` now or ``VmHWM`` its peak (Linux).

    Not ``getrusage``'s ``ru_maxrss``: after fork and exec it keeps the larger of the
    child's peak and its parent's RSS at the fork (Linux saves the forking process's
    high-water mark at exec), so a small worker would show its parent's size.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def worker(mode: str, endpoint: str, name: str, jobs: int, sleep: float) -> dict[str, Any]:
    """In the worker process: drain the queue; seconds to the last job, CPU, peak RSS."""
    import asyncio

    from sqsw_core.shutdown_policies import MaxTasksShutdown

    env = env_for(endpoint)
    queue = env.queue(name)
    finished = [0.0]
    options: dict[str, Any]
    if mode == "async":

        async def job(n: int) -> None:
            await asyncio.sleep(sleep)
            finished[0] = time.perf_counter()

        options = {"concurrency": 4, "async_concurrency": 1000}
    else:

        def job(n: int) -> None:  # type: ignore[misc]
            time.sleep(sleep)
            finished[0] = time.perf_counter()

        options = {"concurrency": int(mode)}
    queue.connect_processor("job", job)
    # Ready before the clock starts, as the plain loop's client is: a worker's
    # start-up (boto3's client, the queue's URL) is not its throughput.
    env.get_queue_url(name)
    idle_mb = rss_mb("VmRSS")
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    queue.process_queue(MaxTasksShutdown(jobs), wait_seconds=1, handle_signals=False, **options)
    return {
        "seconds": finished[0] - t0,
        "cpu": time.process_time() - cpu0,
        "rss_mb": rss_mb("VmHWM"),
        "idle_rss_mb": idle_mb,
    }


def run_worker(mode: str, endpoint: str, jobs: int, sleep: float) -> dict[str, Any]:
    env = env_for(endpoint)
    name = f"async_jobs_{mode}"
    fill(env, name, jobs)
    args = [sys.executable, str(HERE), "--worker", mode, "--endpoint", endpoint]
    args += ["--jobs", str(jobs), "--sleep", str(sleep), "--queue", name]
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, check=True)
    delete_queue(env, name)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def plain_no_op(endpoint: str, jobs: int) -> float:
    """Jobs/s of the plain boto3 loop (benchmarks/engine.py's) on no-op jobs."""
    sys.path.insert(0, str(HERE.parent))
    import engine as engine_bench

    env = env_for(endpoint)
    name = "async_jobs_plain"
    fill(env, name, jobs)
    seconds, _ = engine_bench.bench_plain(endpoint, env.get_queue_url(name), jobs, 0.0, 4)
    delete_queue(env, name)
    return jobs / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--sleep", type=float, default=0.2)
    parser.add_argument("--endpoint", default=None, help="a running LocalStack (else started)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--queue", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        result = worker(args.worker, args.endpoint, args.queue, args.jobs, args.sleep)
        print(json.dumps(result))
        return 0
    jobs, sleep = args.jobs, args.sleep
    with localstack(args.endpoint) as endpoint:
        print(f"{jobs:,} jobs of {sleep * 1000:.0f} ms each on LocalStack ({endpoint}):")
        plain = plain_no_op(endpoint, jobs)
        results = {
            mode: run_worker(mode, endpoint, jobs, sleep) for mode in ("async", "64", "1000")
        }
    print(f"  {'plain boto3 loop, no-op jobs':34s} {plain:8.0f} jobs/s  (baseline)")
    labels = {"async": "sqsw async, 1,000 in flight", "64": "sqsw threads, concurrency 64"}
    labels["1000"] = "sqsw threads, concurrency 1,000"
    for mode, r in results.items():
        rate = jobs / r["seconds"]
        print(
            f"  {labels[mode]:34s} {rate:8.0f} jobs/s  ({rate / plain:.2f}x the plain loop)  "
            f"RSS {r['rss_mb']:5.1f} MB ({r['rss_mb'] - r['idle_rss_mb']:5.1f} above idle)  "
            f"CPU {r['cpu'] * 1e6 / jobs:4.0f} ms per 1,000 jobs"
        )
    asynced, threaded = results["async"], results["1000"]
    whole = asynced["rss_mb"] / threaded["rss_mb"]
    above = (asynced["rss_mb"] - asynced["idle_rss_mb"]) / (
        threaded["rss_mb"] - threaded["idle_rss_mb"]
    )
    print(
        f"  async worker vs 1,000-thread worker: peak RSS {whole:.2f}x (whole process, "
        f"idle baseline included); peak RSS above an idle worker {above:.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
