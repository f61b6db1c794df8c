"""Processor hooks (``sending``, ``handling``) run as an ordered list: before-parts in the
order given, after-parts in reverse; a hook that raises is logged with its plugin's name and
never fails the send or the job; the job's own exception passes through every hook.

Every test runs on the memory session and on LocalStack, and checks what SQS holds after.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest

from sqsw_core import IMMEDIATE_RETURN, ConstantBackoff, Processor, SQSEnv, create_standard_queue
from sqsw_core.processors import HandlerCall
from tests.helpers import expect_counts, poll, process_until_idle, queue_with_dead_letters

#: What the hooks of one test did, in order.
EVENTS: list[str] = []


class Outer(Processor):
    broken: ClassVar[str] = ""  # "before" or "after": where sending raises

    @classmethod
    @contextlib.contextmanager
    def sending(cls, queue: Any, entries: list[dict[str, Any]]) -> Iterator[Any]:
        EVENTS.append("outer:before")
        if cls.broken == "before":
            raise RuntimeError("outer hook bug before")
        for entry in entries:
            entry.setdefault("MessageAttributes", {})["Traced"] = {
                "DataType": "String",
                "StringValue": "outer",
            }
        yield entries
        EVENTS.append("outer:after")
        if cls.broken == "after":
            raise RuntimeError("outer hook bug after")

    @classmethod
    @contextlib.contextmanager
    def handling(cls, call: HandlerCall) -> Iterator[HandlerCall]:
        EVENTS.append("outer:handling")
        if cls.broken == "handling":
            raise RuntimeError("outer handling bug")
        try:
            yield call
        except Exception as exc:
            EVENTS.append(f"outer:saw {type(exc).__name__}")
            raise


class Inner(Processor):
    @classmethod
    @contextlib.contextmanager
    def sending(cls, queue: Any, entries: list[dict[str, Any]]) -> Iterator[Any]:
        EVENTS.append("inner:before")
        yield entries
        EVENTS.append("inner:after")

    @classmethod
    @contextlib.contextmanager
    def handling(cls, call: HandlerCall) -> Iterator[HandlerCall]:
        EVENTS.append("inner:handling")
        yield call
        EVENTS.append(f"inner:failed {sorted(call.failed)}")


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    EVENTS.clear()
    Outer.broken = ""
    yield
    Outer.broken = ""


@pytest.fixture
def hooked(make_env: Callable[..., SQSEnv]) -> SQSEnv:
    return make_env(processor=[Outer, Inner], backoff_policy=IMMEDIATE_RETURN)


def hook_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "sqsw.hooks"]


def test_hooks_run_in_order_and_after_parts_in_reverse(hooked: SQSEnv) -> None:
    create_standard_queue(hooked, "q")
    queue = hooked.queue("q")
    seen: list[str | None] = []

    @queue.processor("job")
    def job(n: int) -> None:
        message = queue.processors["job"].message
        assert message is not None
        seen.append(message.string_attribute("Traced"))

    job.delay(n=1)
    assert EVENTS == ["outer:before", "inner:before", "inner:after", "outer:after"]
    process_until_idle(queue)
    assert seen == ["outer"]
    expect_counts(queue, (0, 0, 0), "after the run")


@pytest.mark.parametrize("where", ["before", "after"])
def test_a_failing_sending_hook_never_fails_the_send(
    hooked: SQSEnv, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    create_standard_queue(hooked, "q")
    queue = hooked.queue("q")
    ran: list[int] = []

    @queue.processor("job")
    def job(n: int) -> None:
        ran.append(n)

    Outer.broken = where
    with caplog.at_level(logging.ERROR, logger="sqsw.hooks"):
        assert job.delay(n=1)  # a message id: sent
        with queue.add_batch():  # one SendMessageBatch of 3
            for n in (2, 3, 4):
                job.delay(n=n)
    errors = hook_errors(caplog)
    assert len(errors) == 2, errors  # one per send call
    assert all("tests.test_processor_hooks.Outer.sending" in e for e in errors), errors
    assert all(f"failed {where} the call" in e for e in errors), errors
    # The other hook still ran around both sends.
    assert EVENTS.count("inner:before") == 2 and EVENTS.count("inner:after") == 2
    expect_counts(queue, (4, 0, 0), "after the sends")
    process_until_idle(queue)
    assert sorted(ran) == [1, 2, 3, 4]
    expect_counts(queue, (0, 0, 0), "after the run")


def test_a_failing_handling_hook_never_fails_a_bulk_job(
    make_env: Callable[..., SQSEnv], caplog: pytest.LogCaptureFixture
) -> None:
    sqs = make_env(processor=[Outer, Inner], backoff_policy=ConstantBackoff(60))
    queue, dead = queue_with_dead_letters(sqs, "bulk", 2)
    done: list[list[int]] = []

    @queue.bulk_processor("index", max_jobs=3, max_wait=0.1)
    def index(jobs: list[dict[str, Any]]) -> list[int]:
        done.append(sorted(job["n"] for job in jobs))
        return [i for i, job in enumerate(jobs) if job["n"] == 2]  # job 2 fails

    with queue.add_batch():
        for n in (1, 2, 3):
            index.delay(n=n)
    Outer.broken = "handling"
    with caplog.at_level(logging.ERROR):
        queue.process_batch(wait_seconds=poll(sqs))
    assert done == [[1, 2, 3]]
    errors = hook_errors(caplog)
    assert len(errors) == 1 and "Outer.handling failed before the call" in errors[0], errors
    # The inner hook saw the report; only job 2 waits for its retry, nothing else is left.
    assert "inner:failed [1]" in EVENTS
    expect_counts(queue, (0, 1, 0), "after the batch", dead=dead)
    assert dead.drain_queue(wait_seconds=0) == 0


def test_the_jobs_own_exception_passes_through_every_hook(
    make_env: Callable[..., SQSEnv], caplog: pytest.LogCaptureFixture
) -> None:
    sqs = make_env(processor=[Outer, Inner], backoff_policy=ConstantBackoff(60))
    queue, dead = queue_with_dead_letters(sqs, "bulk", 2)

    @queue.bulk_processor("index", max_jobs=2, max_wait=0.1)
    def index(jobs: list[dict[str, Any]]) -> None:
        raise ValueError("index down")

    with queue.add_batch():
        for n in (1, 2):
            index.delay(n=n)
    with caplog.at_level(logging.ERROR):
        result = queue.process_batch(wait_seconds=poll(sqs))
    assert result.failed_count() == 2 and result.succeeded_count() == 0
    assert "outer:saw ValueError" in EVENTS
    assert hook_errors(caplog) == []  # passing the job's exception on is no hook failure
    expect_counts(queue, (0, 2, 0), "after the failed batch", dead=dead)
