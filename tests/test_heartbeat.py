"""The visibility heartbeat against SQS: what it extends, and what it says when SQS
refuses an extension.

An ack stops the heartbeat keeping its message without waiting for an extension
in progress (``VisibilityKeeper.drop_acked``), so an extension can reach SQS just
after the message's delete: SQS refuses it, and that is not worth a warning. An
extension refused for a message still held is logged, and the message is no
longer kept.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from sqsw_core import SQSEnv, create_standard_queue
from sqsw_core.backoff_policies import ConstantBackoff
from sqsw_core.heartbeat import VisibilityKeeper
from sqsw_core.job_runner import JobRunner
from sqsw_core.messages import Message
from sqsw_core.settling import Acker, Settler
from tests.helpers import InterceptedClient, expect_counts, receive_all

VISIBILITY = 30


class _CallsFirst(InterceptedClient):
    """A memory SQS client that runs ``before(operation)`` ahead of every call."""

    def __init__(self, client: Any, before: Callable[[str], None]) -> None:
        super().__init__(client)
        self._before = before

    def intercept(self, operation: str, target: Callable[..., Any], params: dict[str, Any]) -> Any:
        self._before(operation)
        return target(**params)


def _receive(queue: Any, count: int) -> list[Message]:
    runner = JobRunner(queue)
    messages: list[Message] = []
    deadline = time.monotonic() + 15
    while len(messages) < count:
        assert time.monotonic() < deadline, f"received {len(messages)} of {count}"
        messages += runner.receive(wait_seconds=1, max_messages=count - len(messages))
    return messages


def test_a_refused_extension_is_logged_unless_its_message_was_acked_meanwhile(
    backend: str, session: Any, make_env: Callable[..., SQSEnv], caplog: pytest.LogCaptureFixture
) -> None:
    on_change: list[Callable[[], None]] = []  # run as the extension goes out

    def before(operation: str) -> None:
        if operation == "ChangeMessageVisibilityBatch":
            while on_change:
                on_change.pop()()

    if backend == "memory":
        env = make_env(sqs_client=_CallsFirst(session.client("sqs"), before))
    else:
        env = make_env()
    create_standard_queue(env, "held", visibility_timeout=VISIBILITY)
    queue = env.queue("held")
    client = env.sqs_client
    handler = None
    if backend != "memory":

        def handler(**_: Any) -> None:
            before("ChangeMessageVisibilityBatch")

        client.meta.events.register("before-call.sqs.ChangeMessageVisibilityBatch", handler)
    try:
        for n in range(3):
            client.send_message(QueueUrl=queue.url, MessageBody=f"m{n}")
        acked, gone, kept = _receive(queue, 3)
        keeper = VisibilityKeeper(queue, VISIBILITY)
        # Received VISIBILITY - 1 s ago: all three are due for an extension now.
        keeper.hold_all([acked, gone, kept], time.monotonic() - (VISIBILITY - 1))

        def ack_now() -> None:  # the job's ack, landing just before the extension
            keeper.drop_acked(acked.receipt_handle, None)
            client.delete_message(QueueUrl=queue.url, ReceiptHandle=acked.receipt_handle)

        on_change.append(ack_now)
        # Deleted behind the heartbeat's back (another consumer's purge, say): still held.
        client.delete_message(QueueUrl=queue.url, ReceiptHandle=gone.receipt_handle)
        with caplog.at_level(logging.WARNING, logger="sqsw.sqs_calls"):
            keeper.extend_due(time.monotonic())
    finally:
        if handler is not None:
            client.meta.events.unregister("before-call.sqs.ChangeMessageVisibilityBatch", handler)

    refused = [r.getMessage() for r in caplog.records if "extend the visibility" in r.getMessage()]
    assert len(refused) == 1, refused
    assert gone.message_id in refused[0]
    assert [m.message_id for m in keeper.held()] == [kept.message_id]
    # The kept message's new deadline is a full visibility timeout away: not due again.
    assert keeper.extend_due(time.monotonic()) == 0
    expect_counts(queue, (0, 1, 0), "the kept message stays hidden")


def test_looking_at_the_held_messages_while_jobs_are_acked(sqs: SQSEnv) -> None:
    """``held()`` and ``extend_due`` (a stop, a metrics scrape, the heartbeat's tick) run
    while job threads ack without the heartbeat's lock: neither may trip over the acks."""
    create_standard_queue(sqs, "held")
    keeper = VisibilityKeeper(sqs.queue("held"), VISIBILITY)
    batches = [
        [
            Message(queue_name="held", message_id=f"{b}-{i}", receipt_handle=f"h{b}-{i}", body="")
            for i in range(10)
        ]
        for b in range(50)
    ]
    done = threading.Event()
    errors: list[BaseException] = []

    def ack_all() -> None:
        try:
            until = time.monotonic() + 1.5
            while time.monotonic() < until:
                for batch in batches:
                    keeper.hold_all(batch, time.monotonic())
                for batch in batches:
                    for message in batch:
                        keeper.drop_acked(message.receipt_handle, None)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            done.set()

    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns often: every chance of a clash taken
    acking = threading.Thread(target=ack_all)
    acking.start()
    looked = 0
    try:
        while not done.is_set():
            assert len(keeper.held()) <= 500
            looked += 1
            if looked % 10 == 0:
                assert keeper.extend_due(time.monotonic()) == 0  # none due: no SQS call
    finally:
        acking.join()
        sys.setswitchinterval(switch_interval)
    assert not errors
    assert looked > 100
    assert keeper.held() == []


def test_a_late_failure_does_not_delay_a_message_a_stop_released(
    sqs: SQSEnv, caplog: pytest.LogCaptureFixture
) -> None:
    """A cold stop (or a warm stop's grace over) releases the messages of running jobs;
    a job that fails after that must not delay its message: it is visible again, maybe
    in another worker's hands, and a retry's visibility change would hide it there."""
    create_standard_queue(sqs, "held", visibility_timeout=VISIBILITY)
    queue = sqs.queue("held")
    for n in range(2):
        sqs.sqs_client.send_message(QueueUrl=queue.url, MessageBody=f"m{n}")
    released, running = _receive(queue, 2)
    keeper = VisibilityKeeper(queue, VISIBILITY)
    settler = Settler(queue, Acker(queue), keeper)
    keeper.hold_all([released, running], time.monotonic())
    settler.release([released])  # the stop gives up on its job
    with caplog.at_level(logging.INFO, logger="sqsw.settling"):
        assert settler.retry(released, ConstantBackoff(60)) == 0  # its job failed after
        assert settler.retry(running, ConstantBackoff(60)) == 60  # one still held
    settler.flush()
    assert any(
        released.message_id in r.getMessage() and "no longer holds it" in r.getMessage()
        for r in caplog.records
    )
    # The released one is visible (not hidden for 60 s); the held one waits out its backoff.
    expect_counts(queue, (1, 1, 0), "after the late failure")
    (visible,) = receive_all(queue, expected=1)
    assert visible["MessageId"] == released.message_id
