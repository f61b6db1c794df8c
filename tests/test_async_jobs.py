"""``async def`` jobs: run on the worker's job loop, many in flight, settled like any job.

Every test checks the SQS state a user would: the queue empty (or what is left,
visible, in flight) after the worker returned, receive counts, the dead-letter
queue. Memory and LocalStack.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from typing import Any

import pytest

from sqsw_core import (
    ConfigurationError,
    ConstantBackoff,
    SQSEnv,
    create_fifo_queue,
    create_standard_queue,
)
from sqsw_core.processors import Processor
from sqsw_core.shutdown_policies import MaxTasksShutdown
from tests.helpers import (
    dead_letter_depth,
    expect_counts,
    on_memory,
    queue_with_dead_letters,
    receive_counts,
)

BACKOFF = 1


def make_queue(sqs: SQSEnv, name: str = "fetch", visibility: int = 30) -> Any:
    queue, dead = queue_with_dead_letters(sqs, name, 5, visibility_timeout=visibility)
    queue.backoff_policy = ConstantBackoff(BACKOFF)
    return queue, dead


def wait(sqs: SQSEnv) -> float:
    return 0 if on_memory(sqs) else 1


def test_many_async_jobs_in_flight_beside_sync_ones(sqs: SQSEnv) -> None:
    queue, dead = make_queue(sqs)
    in_flight = 0
    peak = 0
    ran: Counter[int] = Counter()
    lock = threading.Lock()

    @queue.processor("fetch")
    async def fetch(n: int) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.3)
        in_flight -= 1
        ran[n] += 1

    @queue.processor("tally")
    def tally(n: int) -> None:
        with lock:
            ran[-n] += 1

    with queue.add_batch():
        for n in range(300):
            fetch.delay(n=n)
        for n in range(1, 21):
            tally.delay(n=n)
    started = time.monotonic()
    stats = queue.process_queue(
        MaxTasksShutdown(320), wait_seconds=wait(sqs), concurrency=2, handle_signals=False
    )
    took = time.monotonic() - started
    assert stats.succeeded == 320 and stats.failed == 0
    assert sorted(ran) == sorted([*range(300), *range(-20, 0)]) and set(ran.values()) == {1}
    assert peak >= 50, f"at most {peak} coroutines were in flight at once"
    assert took < 300 * 0.3 / 10, f"{took:.1f} s: the coroutines ran nearly one by one"
    expect_counts(queue, (0, 0, 0), "after the run", dead=dead)
    assert dead_letter_depth(dead) == 0


@pytest.mark.parametrize("concurrency", [1, 3])
def test_a_plain_function_returning_a_coroutine_runs_as_an_async_job(
    sqs: SQSEnv, concurrency: int
) -> None:
    """A decorator that wraps an ``async def`` in a plain function hides it from the
    queue (``has_async_jobs`` is false): its coroutines still run and settle. With one
    job thread on the in-memory SQS this hung after the first batch: the solo thread
    waited for room that only the ended coroutines' count could make, and was never
    woken."""
    queue, dead = make_queue(sqs)
    ran: Counter[int] = Counter()

    async def fetch(n: int) -> None:
        await asyncio.sleep(0.02)
        ran[n] += 1

    def plain(n: int) -> Any:  # what a decorator without functools.wraps leaves
        return fetch(n)

    queue.connect_processor("fetch", plain)
    assert not queue.has_async_jobs
    with queue.add_batch():
        for n in range(60):
            queue.add_job("fetch", n=n)
    stats = queue.process_queue(
        MaxTasksShutdown(60),
        wait_seconds=wait(sqs),
        concurrency=concurrency,
        handle_signals=False,
        grace_period=5,
    )
    assert stats.succeeded == 60 and stats.failed == 0
    assert sorted(ran) == list(range(60)) and set(ran.values()) == {1}
    expect_counts(queue, (0, 0, 0), "after the run", dead=dead)
    assert dead_letter_depth(dead) == 0


def test_a_failing_async_job_is_retried_after_its_backoff(sqs: SQSEnv) -> None:
    queue, dead = make_queue(sqs)
    attempts: Counter[int] = Counter()
    failed_at: dict[int, float] = {}
    ran_at: dict[int, float] = {}

    @queue.processor("fetch")
    async def fetch(n: int) -> None:
        attempts[n] += 1
        await asyncio.sleep(0)
        if attempts[n] == 1 and n % 2:
            failed_at[n] = time.monotonic()
            raise ConnectionError(f"fetch {n} failed once")
        ran_at[n] = time.monotonic()

    for n in range(6):
        fetch.delay(n=n)
    stats = queue.process_queue(
        MaxTasksShutdown(9), wait_seconds=wait(sqs), concurrency=1, handle_signals=False
    )
    assert (stats.succeeded, stats.failed) == (6, 3)
    assert attempts == Counter({0: 1, 1: 2, 2: 1, 3: 2, 4: 1, 5: 2})
    for n, at in failed_at.items():
        assert ran_at[n] - at >= BACKOFF - 0.5, "came back before the backoff"
    expect_counts(queue, (0, 0, 0), "after the run", dead=dead)
    assert dead_letter_depth(dead) == 0


def test_an_async_job_ending_in_cancelled_error_is_retried_not_left_hidden(sqs: SQSEnv) -> None:
    # The worker did not cancel it (a library's task it awaited was cancelled):
    # a failure like any other, retried after the backoff.
    queue, dead = make_queue(sqs)
    attempts: Counter[int] = Counter()

    @queue.processor("fetch")
    async def fetch(n: int) -> None:
        attempts[n] += 1
        if attempts[n] == 1:
            call = asyncio.ensure_future(asyncio.sleep(10))
            call.cancel()
            await call

    for n in range(3):
        fetch.delay(n=n)
    stats = queue.process_queue(
        MaxTasksShutdown(6), wait_seconds=wait(sqs), concurrency=1, handle_signals=False
    )
    assert (stats.succeeded, stats.failed, stats.released) == (3, 3, 0)
    assert attempts == Counter({0: 2, 1: 2, 2: 2})
    expect_counts(queue, (0, 0, 0), "after the run", dead=dead)


def test_the_job_context_and_message_inside_the_coroutine(sqs: SQSEnv) -> None:
    queue, _ = make_queue(sqs)
    seen: list[tuple[Any, ...]] = []
    processor: list[Processor] = []

    @queue.processor("fetch", pass_context=True)
    async def fetch(n: int, context: Any = None) -> None:
        await asyncio.sleep(0.01 * (3 - n))  # interleaved
        current = processor[0]
        assert current.message is not None
        seen.append((n, dict(context), dict(current.job_context), current.message.job_name))

    processor.append(queue.get_processor("fetch"))
    for n in range(3):
        with sqs.context(request=f"r{n}"):
            fetch.delay(n=n)
    queue.process_queue(
        MaxTasksShutdown(3), wait_seconds=wait(sqs), concurrency=1, handle_signals=False
    )
    assert sorted(seen) == [
        (n, {"request": f"r{n}"}, {"request": f"r{n}"}, "fetch") for n in range(3)
    ]


def test_process_batch_waits_for_async_jobs(sqs: SQSEnv) -> None:
    queue, dead = make_queue(sqs)
    done: list[int] = []

    @queue.processor("fetch")
    async def fetch(n: int) -> None:
        await asyncio.sleep(0.05)
        done.append(n)

    for n in range(4):
        fetch.delay(n=n)
    total = 0
    deadline = time.monotonic() + 15
    while total < 4 and time.monotonic() < deadline:
        total += queue.process_batch(wait_seconds=wait(sqs)).succeeded_count()
    assert sorted(done) == [0, 1, 2, 3]
    expect_counts(queue, (0, 0, 0), "after process_batch", dead=dead)


def test_an_async_job_longer_than_the_visibility_timeout_runs_once(sqs: SQSEnv) -> None:
    queue, dead = make_queue(sqs, visibility=2)
    runs: Counter[int] = Counter()

    @queue.processor("fetch")
    async def fetch(n: int) -> None:
        runs[n] += 1
        await asyncio.sleep(3.5)

    fetch.delay(n=1)
    stats = queue.process_queue(
        MaxTasksShutdown(1), wait_seconds=wait(sqs), concurrency=1, handle_signals=False
    )
    assert runs == Counter({1: 1}) and stats.succeeded == 1
    assert stats.extended >= 1
    expect_counts(queue, (0, 0, 0), "after the run", dead=dead)


def test_a_warm_stop_lets_async_jobs_in_flight_finish(sqs: SQSEnv) -> None:
    queue, dead = make_queue(sqs)
    started: list[int] = []
    finished: list[int] = []

    @queue.processor("fetch")
    async def fetch(n: int) -> None:
        started.append(n)
        await asyncio.sleep(1.0)
        finished.append(n)

    with queue.add_batch():
        for n in range(40):
            fetch.delay(n=n)
    engine_holder: list[Any] = []

    def stop_when_started() -> None:
        while len(started) < 5:
            time.sleep(0.01)
        engine_holder[0].request_stop()

    from sqsw_core.engine import QueueEngine

    engine = QueueEngine(
        queue,
        wait_seconds=wait(sqs),
        concurrency=1,
        prefetch=4,
        async_concurrency=8,
        handle_signals=False,
    )
    engine_holder.append(engine)
    stopper = threading.Thread(target=stop_when_started)
    stopper.start()
    stats = engine.run()
    stopper.join()
    assert sorted(finished) == sorted(started), "a started async job did not finish"
    assert stats.succeeded == len(started)
    left = 40 - len(started)
    expect_counts(queue, (left, 0, 0), "after the warm stop", dead=dead)
    # What the stop gave back cost at most one receive (prefetched, never run).
    assert set(receive_counts(queue).values()) <= {0, 1}


def test_a_cold_stop_cancels_async_jobs_and_releases_their_messages(sqs: SQSEnv) -> None:
    queue, dead = make_queue(sqs)
    started: list[int] = []
    cancelled: list[int] = []

    @queue.processor("fetch")
    async def fetch(n: int) -> None:
        started.append(n)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(n)
            raise

    for n in range(5):
        fetch.delay(n=n)
    from sqsw_core.engine import QueueEngine

    engine = QueueEngine(queue, wait_seconds=wait(sqs), concurrency=1, handle_signals=False)

    def stop_when_started() -> None:
        while len(started) < 5:
            time.sleep(0.01)
        engine.request_stop(cold=True)

    stopper = threading.Thread(target=stop_when_started)
    stopper.start()
    stats = engine.run()
    stopper.join()
    deadline = time.monotonic() + 3
    while len(cancelled) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(cancelled) == list(range(5))
    assert stats.succeeded == 0 and stats.failed == 0 and stats.released == 5
    expect_counts(queue, (5, 0, 0), "after the cold stop", dead=dead)
    assert sorted(receive_counts(queue).values()) == [1] * 5


def test_fifo_order_is_kept_for_async_jobs(sqs: SQSEnv) -> None:
    create_fifo_queue(sqs, "orders.fifo", content_based_deduplication=True)
    queue = sqs.queue("orders.fifo")
    order: dict[str, list[int]] = {"a": [], "b": []}

    @queue.processor("ship")
    async def ship(group: str, n: int) -> None:
        await asyncio.sleep(0.02 * ((n * 7) % 3))  # later jobs may be quicker
        order[group].append(n)

    with queue.add_batch():
        for n in range(12):
            for group in ("a", "b"):
                ship.delay(group=group, n=n, _group_id=group)
    queue.process_queue(
        MaxTasksShutdown(24), wait_seconds=wait(sqs), concurrency=4, handle_signals=False
    )
    assert order == {"a": list(range(12)), "b": list(range(12))}
    expect_counts(queue, (0, 0, 0), "after the run")


def test_an_async_job_past_its_time_limit_is_cancelled_and_retried(
    sqs: SQSEnv, caplog: Any
) -> None:
    queue, dead = make_queue(sqs)
    attempts: Counter[int] = Counter()
    cancelled: list[int] = []

    @queue.processor("fetch", time_limit=0.3)
    async def fetch(n: int) -> None:
        attempts[n] += 1
        if attempts[n] == 1:
            try:
                await asyncio.sleep(10)  # hangs on its first run
            except asyncio.CancelledError:
                cancelled.append(n)
                raise

    fetch.delay(n=1)
    with caplog.at_level("ERROR", logger="sqsw.jobs"):
        stats = queue.process_queue(
            MaxTasksShutdown(2), wait_seconds=wait(sqs), concurrency=1, handle_signals=False
        )
    assert cancelled == [1] and attempts == Counter({1: 2})
    assert (stats.succeeded, stats.failed) == (1, 1)
    (line,) = [r.getMessage() for r in caplog.records if "time limit" in r.getMessage()]
    assert "fetch.fetch" in line or "job fetch" in line
    assert "ran past its time limit of 0.3 s and was cancelled" in line
    expect_counts(queue, (0, 0, 0), "after the run", dead=dead)


def test_the_env_default_time_limit_and_a_sync_job_past_it(sqs: SQSEnv, caplog: Any) -> None:
    sqs.reconfigure(job_time_limit=0.2)
    queue, dead = make_queue(sqs)
    ran: list[str] = []

    @queue.processor("slow_async")
    async def slow_async() -> None:
        ran.append("async")
        await asyncio.sleep(5)

    @queue.processor("slow_sync")
    def slow_sync() -> None:
        time.sleep(0.4)  # cannot be stopped: logged, and it succeeds
        ran.append("sync")

    slow_async.delay()
    slow_sync.delay()
    with caplog.at_level("WARNING", logger="sqsw.jobs"):
        stats = queue.process_queue(
            MaxTasksShutdown(2), wait_seconds=wait(sqs), concurrency=2, handle_signals=False
        )
    assert (stats.succeeded, stats.failed) == (1, 1)
    assert sorted(ran) == ["async", "sync"]
    text = caplog.text
    assert "ran past its time limit of 0.2 s and was cancelled" in text
    assert "slow_sync (message" in text and "past its time limit of 0.2 s; sync jobs" in text
    # The cancelled async job waits out its backoff; nothing else is left.
    expect_counts(queue, (0, 1, 0), "after the run", dead=dead)


def test_a_bad_time_limit_is_refused_in_one_line(sqs: SQSEnv) -> None:
    queue, _ = make_queue(sqs)
    for bad in (0, -1, float("nan"), True):
        with pytest.raises(ConfigurationError) as refused:
            queue.processor("fetch", time_limit=bad)(lambda: None)
        text = str(refused.value)
        assert text.startswith("time_limit of job 'fetch': job_time_limit must be a number > 0")
        assert "\n" not in text
    assert "fetch" not in queue.processors
    with pytest.raises(ConfigurationError, match="job_time_limit must be a number > 0"):
        sqs.reconfigure(job_time_limit=0)


def test_an_async_bulk_handler_runs_and_only_its_failed_jobs_come_back(sqs: SQSEnv) -> None:
    queue, dead = make_queue(sqs)
    calls: list[list[int]] = []

    @queue.bulk_processor("index", max_jobs=10, max_wait=0.3)
    async def index(jobs: list[dict[str, Any]]) -> list[int]:
        await asyncio.sleep(0.01)
        numbers = [job["n"] for job in jobs]
        calls.append(numbers)
        first_call = len(calls) == 1
        return [i for i, n in enumerate(numbers) if n % 5 == 0] if first_call else []

    with queue.add_batch():
        for n in range(10):
            index.delay(n=n)
    stats = queue.process_queue(
        MaxTasksShutdown(12), wait_seconds=wait(sqs), concurrency=2, handle_signals=False
    )
    assert sorted(n for call in calls for n in call) == sorted([*range(10), 0, 5])
    assert (stats.succeeded, stats.failed) == (10, 2)
    expect_counts(queue, (0, 0, 0), "after the run", dead=dead)


def test_an_async_raw_handler_runs(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "events")
    raw = sqs.queue("events", "raw")
    seen: list[str] = []

    @raw.raw_processor()
    async def on_event(message: Any) -> None:
        await asyncio.sleep(0.01)
        seen.append(message.body)

    for body in ("a", "b", "c"):
        raw.add_raw_job(body)
    raw.process_queue(
        MaxTasksShutdown(3), wait_seconds=wait(sqs), concurrency=2, handle_signals=False
    )
    assert sorted(seen) == ["a", "b", "c"]
    expect_counts(raw, (0, 0, 0), "after the run")
