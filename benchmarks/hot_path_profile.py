"""Where one job's time goes on the in-memory SQS: the engine and the process_batch loop.

    .venv/bin/python benchmarks/hot_path_profile.py [--jobs 50000] [--top 15]

Enqueues ``--jobs`` no-op jobs, then profiles (cProfile, the thread's CPU clock)
the thread that does the work: the solo thread of ``process_queue(concurrency=1)``,
then, on a fresh queue, a ``process_batch`` loop. Prints for each the profiled
microseconds per job (several times the unprofiled cost: the profiler's own
overhead is per call), the functions with the most time of their own, and the
functions the engine spends more in than the loop: its bookkeeping per job.

Run it on another tree for a before/after (``PYTHONPATH=that/tree``: it needs only
``sqsw_core`` and ``sqsw_core.solo_thread.SoloThread.run``).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import time
from typing import Any

from sqsw_core import SQSEnv, create_standard_queue
from sqsw_core.shutdown_policies import MaxTasksShutdown
from sqsw_core.solo_thread import SoloThread

#: (file:line function) -> (seconds of its own, calls)
Profile = dict[str, tuple[float, int]]


def profile(jobs: int, engine: bool) -> tuple[float, Profile]:
    """Profiled seconds in all and per function, for ``jobs`` no-op jobs."""
    env = SQSEnv(session="memory")
    create_standard_queue(env, "profiled")
    queue = env.queue("profiled")
    queue.connect_processor("noop", lambda i: None)
    with queue.add_batch():
        for i in range(jobs):
            queue.add_job("noop", i=i)
    gc.collect()
    profiler = cProfile.Profile(time.thread_time)
    if engine:
        run = SoloThread.run

        def profiled_run(self: Any) -> None:
            profiler.enable()
            try:
                run(self)
            finally:
                profiler.disable()

        SoloThread.run = profiled_run  # type: ignore[method-assign]
        try:
            queue.process_queue(
                MaxTasksShutdown(jobs),
                wait_seconds=0,
                concurrency=1,
                handle_signals=False,
                stats_interval=3600,
            )
        finally:
            SoloThread.run = run  # type: ignore[method-assign]
    else:
        profiler.enable()
        while queue.process_batch(wait_seconds=0).total_count():
            pass
        profiler.disable()
    stats = pstats.Stats(profiler)
    functions: Profile = {}
    for (path, line, name), (_, calls, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{path.rsplit('/', 1)[-1]}:{line} {name}" if line else name
        functions[where] = (own, calls)
    return stats.total_tt, functions  # type: ignore[attr-defined]


def print_top(title: str, jobs: int, total: float, functions: Profile, top: int) -> None:
    print(f"{title}: {total / jobs * 1e6:.1f} us per job profiled")
    ranked = sorted(functions.items(), key=lambda item: -item[1][0])[:top]
    for where, (own, calls) in ranked:
        print(f"  {own / jobs * 1e6:6.2f} us  {calls / jobs:5.2f} calls/job  {where}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    n = args.jobs
    engine_total, engine = profile(n, engine=True)
    loop_total, loop = profile(n, engine=False)
    print_top("engine, process_queue(concurrency=1)", n, engine_total, engine, args.top)
    print_top("process_batch loop", n, loop_total, loop, args.top)
    print(
        f"engine - loop: {(engine_total - loop_total) / n * 1e6:+.1f} us per job profiled; "
        "the functions the engine spends more in:"
    )
    extra = {k: engine.get(k, (0.0, 0))[0] - loop.get(k, (0.0, 0))[0] for k in {*engine, *loop}}
    for where, more in sorted(extra.items(), key=lambda item: -item[1])[: args.top]:
        print(f"  {more / n * 1e6:+6.2f} us  {where}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
