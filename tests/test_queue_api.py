"""Queue methods outside the worker loop: ``drain_queue``, ``get_processor``, ``copy_processors``.

Every test takes ``sqs``/``make_env``, so it runs on the memory session and on LocalStack.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqsw_core import IMMEDIATE_RETURN, JobQueue, SQSEnv, create_standard_queue
from tests.helpers import (
    InterceptedClient,
    expect_counts,
    poll,
    process_until_idle,
)


def test_drain_queue_deletes_every_message_without_running_it(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "drained", visibility_timeout=60)
    queue = sqs.queue("drained")
    ran: list[int] = []

    @queue.processor("job")
    def job(n: int) -> None:
        ran.append(n)

    with queue.add_batch():
        for n in range(25):  # more than one receive of 10
            job.delay(n=n)
    expect_counts(queue, (25, 0, 0), "before the drain")

    assert queue.drain_queue(wait_seconds=poll(sqs)) == 25
    assert ran == []
    expect_counts(queue, (0, 0, 0), "after the drain")


def test_drain_queue_of_an_empty_queue_returns_zero(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "empty")
    queue = sqs.queue("empty")
    assert queue.drain_queue() == 0
    expect_counts(queue, (0, 0, 0))


class RefusesFirstDelete(InterceptedClient):
    """Each DeleteMessageBatch: SQS refuses entry ``0`` (the sender's fault), deletes the rest."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.refused = 0

    def intercept(self, operation: str, target: Any, params: dict[str, Any]) -> Any:
        if operation != "DeleteMessageBatch":
            return target(**params)
        entries = params["Entries"]
        rest = [entry for entry in entries if entry["Id"] != "0"]
        response = target(**{**params, "Entries": rest}) if rest else {"Successful": []}
        self.refused += 1
        failure = {"Id": "0", "SenderFault": True, "Code": "ReceiptHandleIsInvalid"}
        return {**response, "Failed": [*response.get("Failed", []), failure]}


def test_drain_queue_counts_only_the_messages_sqs_deleted(
    session: Any, make_env: Callable[..., SQSEnv]
) -> None:
    setup = make_env()
    create_standard_queue(setup, "refusing", visibility_timeout=60)
    client = RefusesFirstDelete(session.client("sqs"))
    env = make_env(sqs_client=client)
    queue = env.queue("refusing")
    with queue.add_batch():
        for n in range(12):
            queue.add_job("job", n=n)
    expect_counts(queue, (12, 0, 0), "before the drain")

    drained = queue.drain_queue(wait_seconds=poll(env))
    assert client.refused >= 2  # 12 messages need two receives at least
    assert drained == 12 - client.refused
    # The refused ones were received and not deleted: in flight until their timeout.
    expect_counts(queue, (0, client.refused, 0), "after the drain")


def test_get_processor_returns_the_registered_processor_or_none(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "lookup")
    queue = sqs.queue("lookup")

    @queue.processor("known")
    def known(n: int) -> int:
        return n * 2

    processor = queue.get_processor("known")
    assert processor is not None
    assert processor is queue.processors["known"]
    assert processor.fn is known.fn
    assert processor.job_name == "known"
    assert processor.queue is queue
    assert queue.get_processor("unknown") is None


def test_copy_processors_runs_the_dead_letters_on_their_queue(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "orders_dead", visibility_timeout=60)
    create_standard_queue(sqs, "orders", redrive_policy=sqs.redrive_policy("orders_dead", 1))
    queue: JobQueue = sqs.queue("orders", backoff_policy=IMMEDIATE_RETURN)
    dead = sqs.queue("orders_dead")
    fixed = False
    ran: list[int] = []

    @queue.processor("charge")
    def charge(order: int) -> None:
        if not fixed:
            raise RuntimeError("not fixed yet")
        ran.append(order)

    with queue.add_batch():
        for order in range(3):
            charge.delay(order=order)
    process_until_idle(queue)  # each fails once and moves to the dead-letter queue
    expect_counts(dead, (3, 0, 0), "dead letters")
    assert ran == []
    assert dead.get_processor("charge") is None

    queue.copy_processors(dead)
    copied = dead.get_processor("charge")
    original = queue.get_processor("charge")
    assert copied is not None
    assert original is not None
    assert copied is not original
    assert copied.queue is dead
    assert copied.fn is original.fn
    assert original.queue is queue

    fixed = True
    process_until_idle(dead)
    assert sorted(ran) == [0, 1, 2]
    expect_counts(dead, (0, 0, 0), "dead letters after the run")
    expect_counts(queue, (0, 0, 0), "the source queue")
