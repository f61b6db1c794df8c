"""Shutdown policies as the engine tells them about jobs.

The engine tells a policy about every job as it ends: with ``jobs_ended(succeeded,
failed)`` where the policy has it (the built-in ones and their combinations), else
with a ``BatchProcessingResult`` holding the job's message. Either way a policy
stops the worker after exactly the jobs it asked for, and what was prefetched
goes back to the queue once, with nothing left in flight but the failed jobs
waiting out their backoff.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqsw_core import SQSEnv, create_standard_queue
from sqsw_core.backoff_policies import ConstantBackoff
from sqsw_core.messages import Message
from sqsw_core.results import BatchProcessingResult
from sqsw_core.shutdown_policies import (
    AndShutdown,
    IdleShutdown,
    MaxTasksShutdown,
    OrShutdown,
    ShutdownPolicy,
    jobs_ended_hook,
)
from tests.helpers import expect_counts, receive_counts

#: Failed jobs wait this long before SQS delivers them again: still hidden when a test looks.
RETRY_DELAY = 120


class RecordingPolicy:
    """A user's policy without ``jobs_ended``: it reads the messages of each result."""

    def __init__(self, stop_after: int) -> None:
        self.stop_after = stop_after
        self.succeeded: list[int] = []
        self.failed: list[int] = []
        self.empty_results = 0
        self.lock = threading.Lock()

    def update_state(self, batch_processing_result: BatchProcessingResult) -> None:
        with self.lock:
            self.succeeded += [json.loads(m.body)["n"] for m in batch_processing_result.succeeded]
            self.failed += [json.loads(m.body)["n"] for m in batch_processing_result.failed]
            if batch_processing_result.total_count() == 0:
                self.empty_results += 1

    def need_shutdown(self) -> bool:
        return len(self.succeeded) + len(self.failed) >= self.stop_after


def _queue_of_jobs(sqs: SQSEnv, jobs: int, fail: set[int]) -> tuple[Any, list[int]]:
    """A queue of ``jobs`` jobs numbered 0..jobs-1; those in ``fail`` raise. Returns the
    queue and the list the jobs append their number to when they run."""
    create_standard_queue(sqs, "jobs")
    queue = sqs.queue("jobs", backoff_policy=ConstantBackoff(RETRY_DELAY))
    ran: list[int] = []
    lock = threading.Lock()

    @queue.processor("job")
    def job(n: int) -> None:
        with lock:
            ran.append(n)
        if n in fail:
            raise ValueError(f"job {n} fails")

    with queue.add_batch():
        for n in range(jobs):
            job.delay(n=n)
    return queue, ran


@pytest.mark.parametrize("concurrency", [1, 3])
def test_max_tasks_stops_after_exactly_that_many_jobs(sqs: SQSEnv, concurrency: int) -> None:
    fail = set(range(0, 40, 3))
    queue, ran = _queue_of_jobs(sqs, 40, fail)
    stats = queue.process_queue(
        MaxTasksShutdown(9), concurrency=concurrency, wait_seconds=1, handle_signals=False
    )
    if concurrency == 1:
        assert len(ran) == 9  # one job at a time: the policy stops it after the 9th
    else:
        assert 9 <= len(ran) < 9 + concurrency  # the other threads finish theirs
    assert len(set(ran)) == len(ran)
    failed = len(fail.intersection(ran))
    assert (stats.succeeded, stats.failed) == (len(ran) - failed, failed)
    # The failed ones wait out their backoff (hidden); the rest went back, each at most
    # one receive older (the prefetch), none of them in flight.
    expect_counts(queue, (40 - len(ran), failed, 0), "after the stop")
    counts = receive_counts(queue, expected=40 - len(ran))
    assert set(counts.values()) <= {0, 1}, counts


def test_a_policy_without_jobs_ended_sees_each_job_s_message(sqs: SQSEnv) -> None:
    fail = {2, 5, 11}
    queue, ran = _queue_of_jobs(sqs, 15, fail)
    policy = RecordingPolicy(stop_after=15)
    assert jobs_ended_hook(policy) is None
    queue.process_queue(policy, concurrency=1, wait_seconds=1, handle_signals=False)
    assert sorted(ran) == list(range(15))
    assert sorted(policy.failed) == sorted(fail)
    assert sorted(policy.succeeded) == sorted(set(range(15)) - fail)
    expect_counts(queue, (0, len(fail), 0), "failed jobs waiting out their backoff")


def test_a_combination_with_a_user_s_policy_tells_it_each_message(sqs: SQSEnv) -> None:
    queue, ran = _queue_of_jobs(sqs, 20, fail={1})
    recording = RecordingPolicy(stop_after=10**9)
    policy = OrShutdown(MaxTasksShutdown(6), recording)
    assert jobs_ended_hook(policy) is None
    queue.process_queue(policy, concurrency=1, wait_seconds=1, handle_signals=False)
    assert len(ran) == 6
    assert sorted(recording.succeeded + recording.failed) == sorted(ran)
    expect_counts(queue, (14, 1 if 1 in ran else 0, 0), "after the stop")


def test_combinations_of_counting_policies_count_without_results() -> None:
    for policy in (
        OrShutdown(MaxTasksShutdown(3), IdleShutdown(60)),
        AndShutdown(MaxTasksShutdown(3), OrShutdown(IdleShutdown(0), MaxTasksShutdown(9))),
    ):
        assert jobs_ended_hook(policy) is not None


# jobs_ended(s, f) does what update_state does with a result of s succeeded and f failed
# jobs, for every built-in policy and combination, after any sequence of reports.

#: A policy as a tree: ("max", n), ("idle", seconds), ("or" | "and", [trees]).
_Tree = tuple[str, Any]
_trees = st.recursive(
    st.one_of(
        st.tuples(st.just("max"), st.integers(1, 12)),
        st.tuples(st.just("idle"), st.sampled_from([0.0, 3600.0])),
    ),
    lambda parts: st.tuples(
        st.sampled_from(["or", "and"]), st.lists(parts, min_size=1, max_size=3)
    ),
    max_leaves=5,
)
_reports = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), max_size=12)


def _build(tree: _Tree) -> ShutdownPolicy:
    """A fresh policy of ``tree``."""
    kind, arg = tree
    if kind == "max":
        return MaxTasksShutdown(arg)
    if kind == "idle":
        return IdleShutdown(arg)
    combine = OrShutdown if kind == "or" else AndShutdown
    return combine(*map(_build, arg))


def _message(n: int) -> Message:
    return Message(queue_name="q", message_id=str(n), receipt_handle=f"h{n}", body="{}")


@settings(max_examples=200, deadline=None)
@given(tree=_trees, reports=_reports)
def test_jobs_ended_agrees_with_update_state(tree: _Tree, reports: list[tuple[int, int]]) -> None:
    counted, told = _build(tree), _build(tree)
    hook = jobs_ended_hook(counted)
    assert hook is not None
    for succeeded, failed in reports:
        if succeeded or failed:
            hook(succeeded, failed)
        else:
            counted.update_state(BatchProcessingResult("q"))  # an idle poll
        result = BatchProcessingResult(
            "q",
            [_message(i) for i in range(succeeded)],
            [_message(i) for i in range(failed)],
        )
        told.update_state(result)
        assert counted.need_shutdown() == told.need_shutdown(), (counted, reports)


# A shutdown policy that raises (a bug in a user's policy) stops the worker warm: the jobs
# that ran are acked, every other message goes back once, nothing stays in flight, and
# process_queue raises the policy's error. Before, the thread that asked it died and the
# worker hung with its prefetched messages hidden by the heartbeat.


class PolicyBug(Exception):
    """What the failing policy raises."""


class FailingPolicy:
    """Raises :class:`PolicyBug` from ``where`` at its ``on_call``-th call."""

    def __init__(self, where: str, on_call: int) -> None:
        self.where = where
        self.on_call = on_call
        self.calls = 0
        if where == "jobs_ended":
            self.jobs_ended = self._jobs_ended
        if where == "receive_wait_limit":
            self.receive_wait_limit = self._receive_wait_limit

    def _count(self, where: str) -> None:
        if where == self.where:
            self.calls += 1
            if self.calls == self.on_call:
                raise PolicyBug(f"{where} failed")

    def update_state(self, batch_processing_result: BatchProcessingResult) -> None:
        idle = batch_processing_result.total_count() == 0
        self._count("update_state (idle)" if idle else "update_state")

    def _jobs_ended(self, succeeded: int, failed: int) -> None:
        self._count("jobs_ended")

    def need_shutdown(self) -> bool:
        self._count("need_shutdown")
        return False

    def _receive_wait_limit(self) -> float:
        self._count("receive_wait_limit")
        return 5.0


@pytest.mark.parametrize("concurrency", [1, 3])
@pytest.mark.parametrize(
    ("where", "on_call", "jobs"),
    [
        ("update_state", 4, 30),
        ("jobs_ended", 4, 30),
        ("need_shutdown", 4, 30),
        ("update_state (idle)", 1, 3),
        ("receive_wait_limit", 2, 30),
    ],
)
def test_a_policy_that_raises_stops_the_worker_and_loses_nothing(
    sqs: SQSEnv, concurrency: int, where: str, on_call: int, jobs: int
) -> None:
    queue, ran = _queue_of_jobs(sqs, jobs, fail=set())
    policy = FailingPolicy(where, on_call)
    with pytest.raises(PolicyBug, match=re.escape(where)):
        queue.process_queue(policy, concurrency=concurrency, wait_seconds=1, handle_signals=False)
    assert policy.calls == on_call  # not asked again once it failed
    assert len(set(ran)) == len(ran)
    expect_counts(queue, (jobs - len(ran), 0, 0), f"after {where} raised")
    if jobs > len(ran):
        counts = receive_counts(queue, expected=jobs - len(ran))
        assert set(counts.values()) <= {0, 1}, counts
