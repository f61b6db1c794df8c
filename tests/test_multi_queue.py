"""One process, several queues: shared job slots with strict or weighted priority."""

from __future__ import annotations

import os
import signal
import threading
import time

from sqsw_core import SQSEnv, create_standard_queue
from sqsw_core.shutdown_policies import IdleShutdown
from sqsw_core.slots import SlotAllocator


def fill_two_queues(sqs: SQSEnv, jobs: int, started: list[str]) -> None:
    lock = threading.Lock()
    for name in ("high", "low"):
        create_standard_queue(sqs, name)
        queue = sqs.queue(name)

        def job(queue_name: str = name) -> None:
            with lock:
                started.append(queue_name)
            time.sleep(0.02)

        queue.connect_processor("job", job)
        with queue.add_batch():
            for _ in range(jobs):
                queue.add_job("job")


def test_strict_priority_runs_the_first_queue_first(sqs: SQSEnv) -> None:
    started: list[str] = []
    fill_two_queues(sqs, 40, started)
    stats = sqs.process_queues(
        ["high", "low"], lambda: IdleShutdown(1), wait_seconds=1, concurrency=2
    )
    assert stats["high"].succeeded == stats["low"].succeeded == 40
    first = started[:30]
    assert first.count("high") >= 26, first


def test_weighted_priority_shares_slots_by_weight(sqs: SQSEnv) -> None:
    started: list[str] = []
    fill_two_queues(sqs, 60, started)
    sqs.process_queues(
        ["high", "low"],
        lambda: IdleShutdown(1),
        wait_seconds=1,
        concurrency=2,
        priority="weighted",
        weights={"high": 3, "low": 1},
    )
    window = started[8:48]  # both backlogged here
    assert 24 <= window.count("high") <= 36, window


def test_sigterm_stops_every_queue(sqs: SQSEnv) -> None:
    started: list[str] = []
    fill_two_queues(sqs, 200, started)
    threading.Timer(1.0, os.kill, args=(os.getpid(), signal.SIGTERM)).start()
    began = time.monotonic()
    stats = sqs.process_queues(["high", "low"], wait_seconds=1, concurrency=4)
    assert time.monotonic() - began < 15
    done = stats["high"].succeeded + stats["low"].succeeded
    assert 0 < done < 400
    assert len(started) == done  # nothing ran that was not counted


def test_slot_allocator_weighted_order_is_smooth() -> None:
    slots = SlotAllocator(1, ["a", "b"], "weighted", {"a": 2, "b": 1})
    granted: list[str] = []
    barrier = threading.Barrier(2)

    def taker(key: str) -> None:
        barrier.wait()
        for i in range(6):
            slots.acquire(key, handing_back=i > 0)  # as an engine's job thread does
            granted.append(key)
            time.sleep(0.005)
        slots.release()

    threads = [threading.Thread(target=taker, args=(k,)) for k in ("a", "b")]  # one per queue
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert granted.count("a") == granted.count("b") == 6
    first_nine = granted[:9]
    assert 5 <= first_nine.count("a") <= 7, granted
