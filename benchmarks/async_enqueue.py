"""Enqueueing from asyncio code: how long the event loop waits while 1,000 jobs go out.

    .venv/bin/python benchmarks/async_enqueue.py [--jobs 1000] [--endpoint URL]

Starts LocalStack itself (scripts/localstack.py) unless ``--endpoint`` is given.
A ticker task asks to wake every 5 ms and records how late it woke (the loop's
lag) while ``--jobs`` enqueues run at once:

- ``delay_async``: each job awaited in its own task (``asyncio.gather``);
- ``batch_async``: the same inside ``task.batch_async()`` (10 per call);
- baseline, same run: the synchronous ``delay()`` called from the coroutines, what
  code without ``delay_async`` does: every send blocks the loop.

Prints jobs/s and the loop's lag (median, 99th percentile, worst) for each.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from _baseline import localstack

from sqsw_core import AWSSession, SQSEnv, create_standard_queue, delete_queue

TICK = 0.005


async def measure(send_all: Callable[[], Awaitable[None]]) -> tuple[float, list[float]]:
    """Seconds ``send_all`` took, and the ticker's lateness (seconds) meanwhile."""
    lags: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            asked = time.perf_counter()
            await asyncio.sleep(TICK)
            lags.append(time.perf_counter() - asked - TICK)

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(TICK)
    started = time.perf_counter()
    await send_all()
    seconds = time.perf_counter() - started
    done.set()
    await tick
    return seconds, lags


def run_case(label: str, env: SQSEnv, jobs: int, how: str) -> None:
    name = f"async_enqueue_{how}"
    create_standard_queue(env, name)
    queue = env.queue(name)

    @queue.processor("job")
    def job(n: int) -> None:
        pass

    async def send_all() -> None:
        if how == "delay_async":
            await asyncio.gather(*(job.delay_async(n=n) for n in range(jobs)))
        elif how == "batch_async":
            async with job.batch_async():
                await asyncio.gather(*(job.delay_async(n=n) for n in range(jobs)))
        else:  # the baseline: a blocking send from each coroutine

            async def one(n: int) -> None:
                job.delay(n=n)

            await asyncio.gather(*(one(n) for n in range(jobs)))

    seconds, lags = asyncio.run(measure(send_all))
    lags_ms = sorted(lag * 1000 for lag in lags) or [0.0]
    p99 = lags_ms[min(len(lags_ms) - 1, int(len(lags_ms) * 0.99))]
    print(
        f"  {label:34s} {jobs / seconds:8.0f} jobs/s   loop lag ms: median "
        f"{statistics.median(lags_ms):6.1f}  p99 {p99:6.1f}  worst {lags_ms[-1]:7.1f}"
    )
    delete_queue(env, name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--endpoint", default=None, help="a running LocalStack (else started)")
    args = parser.parse_args()
    with localstack(args.endpoint) as endpoint:
        session = AWSSession(
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        env = SQSEnv(session, queue_prefix="bench_")
        print(f"{args.jobs:,} concurrent enqueues on LocalStack ({endpoint}), ticker every 5 ms:")
        run_case("delay_async (one task per job)", env, args.jobs, "delay_async")
        run_case("batch_async + delay_async", env, args.jobs, "batch_async")
        run_case("baseline: delay() in coroutines", env, args.jobs, "sync")
        env.async_sender.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
