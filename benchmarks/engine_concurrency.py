"""Throughput of sleeping (I/O-bound) jobs by engine concurrency, on the in-memory SQS.

    .venv/bin/python benchmarks/engine_concurrency.py [--jobs 40] [--sleep 0.2] [--levels 1,4,20]

Each job sleeps ``--sleep`` seconds. For each concurrency level the engine runs
``--jobs`` jobs (``MaxTasksShutdown``); the baseline is concurrency 1 measured in
the same run, so the ratios compare like with like on a loaded machine. Ideal
speed-up is the concurrency itself (capped by the number of jobs).
(This was a wall-clock assertion in tests/test_engine.py; the test now checks
how many jobs run at once.)
"""

from __future__ import annotations

import argparse
import time

from sqsw_core import SQSEnv, create_standard_queue
from sqsw_core.shutdown_policies import MaxTasksShutdown


def jobs_per_second(concurrency: int, jobs: int, sleep: float) -> float:
    env = SQSEnv("memory")
    create_standard_queue(env, "io")
    queue = env.queue("io")

    @queue.processor("io")
    def io() -> None:
        time.sleep(sleep)

    with queue.add_batch():
        for _ in range(jobs):
            io.delay()
    started = time.perf_counter()
    queue.process_queue(MaxTasksShutdown(jobs), wait_seconds=1, concurrency=concurrency)
    return jobs / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--sleep", type=float, default=0.2)
    parser.add_argument("--levels", default="1,4,20")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    baseline = jobs_per_second(1, args.jobs, args.sleep)
    print(f"concurrency  1 (baseline): {baseline:8.1f} jobs/s")
    for level in levels:
        if level == 1:
            continue
        rate = jobs_per_second(level, args.jobs, args.sleep)
        ideal = min(level, args.jobs)
        print(
            f"concurrency {level:2d}:            {rate:8.1f} jobs/s  "
            f"x{rate / baseline:5.1f} of the baseline (ideal x{ideal})"
        )


if __name__ == "__main__":
    main()
