"""Dead-letter queues (sqsw-deadletter): push-back, selective redrive, server-side redrive.

Dead letters are made the real way: a job queue whose jobs fail, with
``IMMEDIATE_RETURN`` backoff and ``redrive_policy(dlq, 1)``, so SQS (or the
memory session) moves them. Every test taking ``sqs``/``make_env`` runs on the
memory session and on LocalStack.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from sqsw_core import (
    IMMEDIATE_RETURN,
    ConfigurationError,
    JobQueue,
    Message,
    SQSEnv,
    create_fifo_queue,
    create_standard_queue,
    get_queue_attributes,
)
from sqsw_core import plugins as sqsw_plugins
from sqsw_core.shutdown_policies import IdleShutdown
from sqsw_deadletter import (
    DeadLetterQueue,
    NoRedriveRunningError,
    RedriveCandidate,
    RedriveFilter,
)
from sqsw_deadletter import deadletter_queue as deadletter_module
from tests.helpers import on_memory, poll, process_until_idle

N_JOBS = 25


@dataclass
class Failing:
    """An upstream job queue whose jobs fail until ``fixed``; records what ran."""

    queue: JobQueue
    dead_name: str
    fixed: bool = False
    ran: Counter[tuple[str, int]] = field(default_factory=Counter)


def make_failing_queue(sqs: SQSEnv, fifo: bool = False, max_receive_count: int = 1) -> Failing:
    suffix = ".fifo" if fifo else ""
    dead_name, name = f"foo_dead{suffix}", f"foo{suffix}"
    create = create_fifo_queue if fifo else create_standard_queue
    create(sqs, dead_name)
    create(sqs, name, redrive_policy=sqs.redrive_policy(dead_name, max_receive_count))
    queue = sqs.queue(name, backoff_policy=IMMEDIATE_RETURN)
    state = Failing(queue, dead_name)

    def job(job_name: str) -> Callable[[int], None]:
        def run(n: int) -> None:
            if not state.fixed:
                raise RuntimeError(f"bug in {job_name}")
            state.ran[(job_name, n)] += 1

        return run

    queue.connect_processor("work", job("work"))
    queue.connect_processor("other", job("other"))
    return state


def fill_dead_letters(state: Failing, jobs: dict[str, range]) -> None:
    """Send the jobs, let every one fail into the dead-letter queue."""
    fifo = state.queue.is_fifo
    with state.queue.add_batch():
        for job_name, numbers in jobs.items():
            for n in numbers:
                extra: dict[str, Any] = {"_deduplication_id": f"{job_name}-{n}"} if fifo else {}
                state.queue.add_job(job_name, n=n, **extra)
    process_until_idle(state.queue)
    assert not state.ran
    assert visible(state.queue.env, state.dead_name) == sum(len(r) for r in jobs.values())


def visible(env: SQSEnv, name: str) -> int:
    attributes = get_queue_attributes(env, name)
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def wait_until(condition: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


# -- the seed README, literally ------------------------------------------------------


def test_seed_example_pushes_every_message_back(sqs: SQSEnv) -> None:
    state = make_failing_queue(sqs)
    fill_dead_letters(state, {"work": range(N_JOBS)})
    state.fixed = True

    env = sqs
    foo = env.queue("foo")
    foo_dead = env.queue("foo_dead", DeadLetterQueue.maker(foo))
    foo_dead.process_queue(shutdown_policy=IdleShutdown(1), wait_seconds=1)

    assert visible(sqs, "foo_dead") == 0
    process_until_idle(foo, 2.5)  # copies carry the seed's 1 s delay
    assert state.ran == Counter({("work", n): 1 for n in range(N_JOBS)})
    assert visible(sqs, "foo") == 0


def test_fifo_push_back_loses_and_duplicates_nothing(sqs: SQSEnv) -> None:
    state = make_failing_queue(sqs, fifo=True)
    fill_dead_letters(state, {"work": range(N_JOBS)})
    state.fixed = True

    # Pushed back seconds after the original sends: reusing their deduplication
    # ids would make SQS drop every copy. The derived ids keep them.
    dead = sqs.queue("foo_dead.fifo", DeadLetterQueue.maker(state.queue))
    report = dead.push_back(wait_seconds=poll(sqs))
    assert (report.moved, report.skipped, report.failed) == (N_JOBS, 0, 0)

    order: list[int] = []
    state.queue.connect_processor("work", lambda n: order.append(n))
    process_until_idle(state.queue)
    assert sorted(order) == list(range(N_JOBS))
    if on_memory(sqs):
        # One group: pushed back in order. LocalStack 4.13 puts a FIFO message made
        # visible again by ChangeMessageVisibility behind the rest of its group (AWS
        # keeps the order), so the dead-letter queue itself is out of order there.
        assert order == sorted(order)
    assert visible(sqs, "foo_dead.fifo") == 0


def test_deadletter_queue_by_name(make_env: Callable[..., SQSEnv]) -> None:
    sqs = make_env()
    state = make_failing_queue(sqs)
    fill_dead_letters(state, {"work": range(3)})
    state.fixed = True

    assert sqsw_plugins.load(sqsw_plugins.QUEUE_TYPES, "deadletter") is DeadLetterQueue
    dead = sqs.queue("foo_dead", "deadletter", upstream="foo", delay_seconds=0)
    assert isinstance(dead, DeadLetterQueue)
    assert dead.upstream is state.queue
    assert dead.process_batch().succeeded_count() == 3
    process_until_idle(state.queue)
    assert state.ran == Counter({("work", n): 1 for n in range(3)})

    other = make_env()
    by_object = other.queue("foo_dead", "deadletter", upstream_queue=other.queue("foo"))
    assert by_object.upstream.name == "foo"
    from sqsw_deadletter.deadletter_queue import DeadLetterQueue as FromSeedModule

    assert FromSeedModule is DeadLetterQueue


def test_configuration_errors(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "lonely_dead")
    lonely = sqs.queue("lonely_dead", "deadletter")
    with pytest.raises(ConfigurationError, match="has no upstream queue"):
        lonely.process_batch()
    with pytest.raises(ConfigurationError, match="its own upstream"):
        sqs.queue("self_dead", "deadletter", upstream="self_dead")
    with pytest.raises(ConfigurationError, match="delay_seconds"):
        sqs.queue("late_dead", "deadletter", upstream="foo", delay_seconds=901)
    with pytest.raises(ConfigurationError, match="unknown options"):
        sqs.queue("typo_dead", "deadletter", upstream="foo", delay=1)


# -- what is kept ------------------------------------------------------------------


def receive_all(queue: Any, count: int, timeout: float = 15) -> dict[str, Message]:
    """Receive until ``count`` distinct messages were seen; they stay in flight."""
    seen: dict[str, Message] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < count:
        assert time.monotonic() < deadline, f"only {len(seen)} of {count} messages arrived"
        seen.update((m.message_id, m) for m in queue.get_raw_messages(wait_seconds=1))
    return seen


def release(queue: Any, messages: list[Message]) -> None:
    for message in messages:
        queue.call(
            "change_message_visibility", ReceiptHandle=message.receipt_handle, VisibilityTimeout=0
        )


def test_body_and_every_attribute_are_kept(make_env: Callable[..., SQSEnv]) -> None:
    sqs = make_env()
    create_standard_queue(sqs, "foo")
    create_standard_queue(sqs, "foo_dead")
    # Messages put straight into the dead-letter queue, as another producer would.
    producer = make_env()
    peek = producer.queue("foo_dead")
    with producer.context(remote_addr="127.0.0.1", trace="abc"):
        peek.add_job("work", n=1)
    peek.call(
        "send_message",
        MessageBody="raw \u00e9 body",
        MessageAttributes={
            "traceparent": {"DataType": "String", "StringValue": "00-0af7651916cd43dd-01"},
            "Count": {"DataType": "Number", "StringValue": "42"},
            "Blob": {"DataType": "Binary", "BinaryValue": b"\x00\xffbinary"},
            "Custom": {"DataType": "String.json", "StringValue": '{"a": 1}'},
        },
    )
    before = {m.body: m for m in receive_all(peek, 2).values()}
    release(peek, list(before.values()))

    dead = sqs.queue("foo_dead", DeadLetterQueue.maker("foo"))
    pushed = 0
    deadline = time.monotonic() + 15
    while pushed < 2:
        assert time.monotonic() < deadline, f"pushed back {pushed} of 2"
        pushed += dead.process_batch(wait_seconds=1).succeeded_count()
        if pushed == 1:  # the seed's 1 s delay: not visible upstream at once
            assert dead.upstream.get_raw_messages() == []
    assert dead.upstream.get_raw_messages() == []

    after = {m.body: m for m in receive_all(dead.upstream, 2).values()}
    assert after.keys() == before.keys()
    for body, message in after.items():
        assert message.message_attributes == before[body].message_attributes
    job = after['{"n": 1}']
    assert (job.job_name, job.content_type) == ("work", "json")
    assert producer.decode_job(job)[1] == {"remote_addr": "127.0.0.1", "trace": "abc"}
    blob = after["raw \u00e9 body"].message_attributes["Blob"]
    assert blob == {"DataType": "Binary", "BinaryValue": b"\x00\xffbinary"}


def test_fifo_group_is_kept(make_env: Callable[..., SQSEnv]) -> None:
    sqs = make_env()
    create_fifo_queue(sqs, "orders_dead.fifo")
    create_fifo_queue(sqs, "orders.fifo")
    producer = make_env().queue("orders_dead.fifo")
    for n in range(6):
        producer.add_job("work", n=n, _group_id=f"customer-{n % 2}", _deduplication_id=f"d{n}")

    dead = sqs.queue("orders_dead.fifo", DeadLetterQueue.maker(sqs.queue("orders.fifo")))
    assert dead.push_back(wait_seconds=poll(sqs)).moved == 6

    by_group: dict[str | None, list[int]] = {}
    upstream = sqs.queue("orders.fifo")
    seen = 0
    deadline = time.monotonic() + 15
    while seen < 6:
        assert time.monotonic() < deadline
        for message in upstream.get_raw_messages(wait_seconds=1):
            n = sqs.decode_job(message)[0]["n"]
            by_group.setdefault(message.group_id, []).append(n)
            assert message.deduplication_id is not None
            assert message.deduplication_id.startswith(f"d{n}:redrive:")
            upstream.call("delete_message", ReceiptHandle=message.receipt_handle)
            seen += 1
    assert by_group == {"customer-0": [0, 2, 4], "customer-1": [1, 3, 5]}


# -- selective redrive and dry run ------------------------------------------------------


def test_selective_redrive_by_job_name(sqs: SQSEnv) -> None:
    state = make_failing_queue(sqs)
    fill_dead_letters(state, {"work": range(5), "other": range(5)})
    state.fixed = True

    dead = sqs.queue(
        "foo_dead",
        DeadLetterQueue.maker(state.queue, filter=RedriveFilter(job_name="work"), delay_seconds=0),
    )
    result = dead.process_batch(wait_seconds=1)
    assert result.failed_count() == 0  # skipped messages are not failures
    assert all(m.job_name == "work" for m in result.succeeded)
    dead.process_queue(shutdown_policy=IdleShutdown(1), wait_seconds=1)
    process_until_idle(state.queue)
    assert state.ran == Counter({("work", n): 1 for n in range(5)})

    # The others stayed, visible again: a dry run sees them all.
    left = dead.dry_run(RedriveFilter(job_name="other"))
    assert sorted(c.job_name for c in left) == ["other"] * 5
    report = dead.push_back(RedriveFilter(job_name="other"), wait_seconds=poll(sqs))
    assert (report.moved, report.skipped, report.failed) == (5, 0, 0)
    process_until_idle(state.queue)
    assert state.ran == Counter(
        {**{("work", n): 1 for n in range(5)}, **{("other", n): 1 for n in range(5)}}
    )


def test_selective_redrive_by_predicate_age_and_receive_count(sqs: SQSEnv) -> None:
    state = make_failing_queue(sqs)
    fill_dead_letters(state, {"work": range(6)})
    state.fixed = True
    dead = sqs.queue("foo_dead", DeadLetterQueue.maker(state.queue, delay_seconds=0))

    nothing_that_old = dead.push_back(RedriveFilter(min_age=3600), wait_seconds=poll(sqs))
    assert (nothing_that_old.moved, nothing_that_old.skipped) == (0, 6)
    nothing_so_retried = dead.push_back(
        RedriveFilter(min_receive_count=100), wait_seconds=poll(sqs)
    )
    assert (nothing_so_retried.moved, nothing_so_retried.skipped) == (0, 6)

    def even(message: Message) -> bool:
        return int(sqs.decode_job(message)[0]["n"]) % 2 == 0

    report = dead.push_back(RedriveFilter(max_age=3600, predicate=even), wait_seconds=poll(sqs))
    assert (report.moved, report.skipped, report.failed) == (3, 3, 0)
    process_until_idle(state.queue)
    assert state.ran == Counter({("work", n): 1 for n in (0, 2, 4)})
    # A plain callable works as a filter too.
    assert dead.push_back(lambda m: True, wait_seconds=poll(sqs)).moved == 3


def test_dry_run_lists_without_moving(sqs: SQSEnv) -> None:
    state = make_failing_queue(sqs)
    fill_dead_letters(state, {"work": range(4), "other": range(3)})
    dead = sqs.queue("foo_dead", DeadLetterQueue.maker(state.queue))

    everything = dead.dry_run()
    assert len(everything) == 7
    message_id, job_name, age, receive_count = everything[0]
    assert message_id == everything[0].message_id
    assert isinstance(everything[0], RedriveCandidate)
    assert job_name in {"work", "other"}
    assert age is not None and 0 <= age < 120
    assert receive_count >= 2
    assert len({c.message_id for c in everything}) == 7

    only_work = dead.dry_run(RedriveFilter(job_name="work"))
    assert sorted(c.job_name for c in only_work) == ["work"] * 4
    assert len(dead.dry_run(max_messages=3)) == 3

    # Nothing moved, everything visible again at once.
    assert visible(sqs, "foo") == 0
    assert int(get_queue_attributes(sqs, "foo_dead")["ApproximateNumberOfMessages"]) == 7


def test_a_run_that_selects_nothing_ends_and_leaves_everything(
    sqs: SQSEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = make_failing_queue(sqs)
    fill_dead_letters(state, {"other": range(4)})
    dead = sqs.queue(
        "foo_dead", DeadLetterQueue.maker(state.queue, filter=RedriveFilter(job_name="work"))
    )
    started = time.monotonic()
    dead.process_queue(shutdown_policy=IdleShutdown(1), wait_seconds=1)
    assert time.monotonic() - started < 10
    assert dead.dry_run() == []  # the queue's filter selects none of them
    assert len(dead.dry_run(RedriveFilter())) == 4  # visible again, all of them

    # Even if the skipped messages cannot be hidden (they come straight back), the run ends.
    real_release = dead.settler.release

    def release_at_once(messages: Any, visibility_timeout: int = 0, **options: Any) -> int:
        return real_release(messages, 0, **options)

    monkeypatch.setattr(dead.settler, "release", release_at_once)
    dead.process_queue(shutdown_policy=IdleShutdown(1), wait_seconds=1)
    assert time.monotonic() - started < 20
    assert visible(sqs, "foo") == 0


# -- nothing deleted before it is accepted upstream ------------------------------------------


def test_failed_upstream_send_leaves_messages_in_the_dlq(
    sqs: SQSEnv, caplog: pytest.LogCaptureFixture
) -> None:
    state = make_failing_queue(sqs)
    fill_dead_letters(state, {"work": range(3)})
    dead = sqs.queue(
        "foo_dead", DeadLetterQueue.maker("missing_queue"), backoff_policy=IMMEDIATE_RETURN
    )
    with caplog.at_level(logging.ERROR, logger="sqsw"):
        result = dead.process_batch(wait_seconds=1)
    assert (result.succeeded_count(), result.failed_count()) == (0, 3)
    assert "they stay in the dead-letter queue" in caplog.text
    assert visible(sqs, "foo_dead") == 3


def test_refused_entries_stay_and_go_later(sqs: SQSEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    state = make_failing_queue(sqs)
    fill_dead_letters(state, {"work": range(5)})
    state.fixed = True
    dead = sqs.queue(
        "foo_dead",
        DeadLetterQueue.maker(state.queue, delay_seconds=0),
        backoff_policy=IMMEDIATE_RETURN,
    )
    upstream = state.queue
    real_call = upstream.call

    def refuse_first(operation: str, **params: Any) -> dict[str, Any]:
        if operation != "send_message_batch":
            return real_call(operation, **params)
        refused, *rest = params["Entries"]
        response = real_call(operation, Entries=rest) if rest else {"Successful": []}
        failure = {"Id": refused["Id"], "Code": "InternalError", "SenderFault": False}
        response["Failed"] = [*response.get("Failed", []), {**failure, "Message": "simulated"}]
        return response

    monkeypatch.setattr(upstream, "call", refuse_first)
    first = dead.process_batch(wait_seconds=1)
    assert (first.succeeded_count(), first.failed_count()) == (4, 1)
    assert visible(sqs, "foo_dead") == 1
    monkeypatch.undo()

    assert dead.push_back(wait_seconds=poll(sqs)).moved == 1
    process_until_idle(upstream)
    assert state.ran == Counter({("work", n): 1 for n in range(5)})


def test_push_back_rate_limit(sqs: SQSEnv) -> None:
    state = make_failing_queue(sqs)
    fill_dead_letters(state, {"work": range(10)})
    dead = sqs.queue("foo_dead", DeadLetterQueue.maker(state.queue, delay_seconds=0))
    started = time.monotonic()
    report = dead.push_back(max_messages_per_second=5, wait_seconds=0)
    assert report.moved == 10
    assert time.monotonic() - started >= 1.5


# -- server-side redrive ----------------------------------------------------------------


def test_server_side_redrive(sqs: SQSEnv) -> None:
    state = make_failing_queue(sqs)
    fill_dead_letters(state, {"work": range(N_JOBS)})
    state.fixed = True
    dead = sqs.queue("foo_dead", DeadLetterQueue.maker(state.queue))

    task = dead.start_redrive(max_messages_per_second=100)
    assert task.server_side
    assert task.task_handle
    finished = dead.wait_for_redrive(timeout=30, poll_seconds=0.2)
    assert finished is not None
    assert finished.status == "COMPLETED"
    assert finished.moved == N_JOBS
    assert finished.source_arn == dead.arn

    process_until_idle(state.queue)
    assert state.ran == Counter({("work", n): 1 for n in range(N_JOBS)})
    assert visible(sqs, "foo_dead") == 0
    with pytest.raises(NoRedriveRunningError):
        dead.cancel_redrive()


def test_server_side_redrive_to_the_source_queue_and_cancel(sqs: SQSEnv) -> None:
    state = make_failing_queue(sqs)
    fill_dead_letters(state, {"work": range(N_JOBS)})
    state.fixed = True
    dead = sqs.queue("foo_dead", "deadletter")  # no upstream: SQS knows the source

    dead.start_redrive(max_messages_per_second=1)
    moved = dead.cancel_redrive()
    assert moved < N_JOBS
    status = dead.wait_for_redrive(timeout=30, poll_seconds=0.2)
    assert status is not None
    assert status.status == "CANCELLED"
    process_until_idle(state.queue)
    left = visible(sqs, "foo_dead")
    assert left > 0
    assert sum(state.ran.values()) == N_JOBS - left  # each moved job ran once, none lost
    assert all(count == 1 for count in state.ran.values())


def test_fifo_redrive_falls_back_to_push_back(
    sqs: SQSEnv, caplog: pytest.LogCaptureFixture
) -> None:
    state = make_failing_queue(sqs, fifo=True)
    fill_dead_letters(state, {"work": range(5)})
    state.fixed = True
    dead = sqs.queue("foo_dead.fifo", DeadLetterQueue.maker(state.queue))

    with caplog.at_level(logging.WARNING, logger="sqsw"):
        task = dead.start_redrive(wait_seconds=poll(sqs))
    assert "FIFO queue" in caplog.text
    assert "pushing messages back" in caplog.text
    assert (task.server_side, task.status, task.moved) == (False, "COMPLETED", 5)
    process_until_idle(state.queue)
    assert state.ran == Counter({("work", n): 1 for n in range(5)})


def test_module_names_of_the_seed() -> None:
    assert deadletter_module.DeadLetterQueue is DeadLetterQueue
