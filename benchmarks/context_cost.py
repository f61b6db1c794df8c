"""What a job context costs per job on the in-memory SQS, against jobs without one.

    .venv/bin/python benchmarks/context_cost.py [--jobs 20000] [--repeat 3]

Every job gets a context of its own: a job that changes its context (nested
values included) must not change what later jobs with the same context see.
Flat contexts (scalar values only) are decoded once and copied per job; nested
ones are decoded afresh for each job. This prints µs per job for no context, a
flat one and a nested one, processed with ``process_batch`` (receive 10, run,
ack) and with the engine (``process_queue``, concurrency 1); the baseline is
the same loop without a context, measured in the same run (best of
``--repeat`` runs each).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from sqsw_core import SQSEnv, create_standard_queue
from sqsw_core.shutdown_policies import MaxTasksShutdown

CONTEXTS: dict[str, dict[str, Any]] = {
    "none": {},
    "flat": {"request_id": "5f0c", "user_id": 42, "locale": "en"},
    "nested": {"request_id": "5f0c", "user": {"id": 42, "roles": ["reader", "admin"]}},
}


def seconds_per_job(context: dict[str, Any], jobs: int, engine: bool) -> float:
    env = SQSEnv("memory")
    create_standard_queue(env, "ctx")
    queue = env.queue("ctx")

    @queue.processor("job", pass_context=True)
    def job(n: int, context: Any) -> None:
        pass

    with env.context(**context), queue.add_batch():
        for n in range(jobs):
            job.delay(n=n)
    started = time.perf_counter()
    if engine:
        queue.process_queue(
            MaxTasksShutdown(jobs), wait_seconds=0, concurrency=1, handle_signals=False
        )
    else:
        while queue.process_batch().total_count():
            pass
    return (time.perf_counter() - started) / jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for engine in (False, True):
        label = "process_queue(concurrency=1)" if engine else "process_batch loop"
        best = {
            name: min(seconds_per_job(ctx, args.jobs, engine) for _ in range(args.repeat))
            for name, ctx in CONTEXTS.items()
        }
        base = best["none"]
        print(f"{label}, {args.jobs:,} no-op jobs, best of {args.repeat}:")
        for name, seconds in best.items():
            print(
                f"  context {name:6s} {seconds * 1e6:6.2f} us/job  "
                f"x{seconds / base:4.2f} of no context (+{(seconds - base) * 1e6:.2f} us)"
            )


if __name__ == "__main__":
    main()
