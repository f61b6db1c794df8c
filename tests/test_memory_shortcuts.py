"""The in-memory SQS's own receive and delete (``receive_message_rows``,
``delete_message_handles``): what sqsw's workers use on it instead of ReceiveMessage and
DeleteMessageBatch. Same answers, same queue state, and the SQS operations again when
the client is wrapped by something that does not have them."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from sqsw_core import SQSEnv, create_fifo_queue, create_standard_queue
from sqsw_core.backoff_policies import ConstantBackoff
from sqsw_core.messages import Message
from sqsw_core.settling import Acker
from sqsw_core.shutdown_policies import IdleShutdown
from sqsw_memory import MemorySession
from tests.helpers import (
    InterceptedClient,
    dead_letter_depth,
    expect_counts,
    queue_with_dead_letters,
)

ATTRIBUTES = {
    "ContentType": {"DataType": "String", "StringValue": "json"},
    "Size": {"DataType": "Number", "StringValue": "12"},
    "Blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
}


@pytest.mark.parametrize("fifo", [False, True])
def test_rows_are_what_receive_message_answers(fifo: bool) -> None:
    env = SQSEnv(MemorySession())
    client = env.sqs_client
    make = create_fifo_queue if fifo else create_standard_queue
    urls = []
    for name in ("dicts", "rows"):
        make(env, f"{name}.fifo" if fifo else name)
        url = env.queue(f"{name}.fifo" if fifo else name).url
        extra = {"MessageGroupId": "g", "MessageDeduplicationId": "d"} if fifo else {}
        client.send_message(
            QueueUrl=url, MessageBody="hello", MessageAttributes=ATTRIBUTES, **extra
        )
        urls.append(url)
    every = {"AttributeNames": ["All"], "MessageAttributeNames": ["All"]}
    for attempt in (1, 2):  # a second delivery too (visibility 0: visible again at once)
        (dicts,) = client.receive_message(QueueUrl=urls[0], VisibilityTimeout=0, **every)[
            "Messages"
        ]
        (row,) = client.receive_message_rows(QueueUrl=urls[1], MaxNumberOfMessages=10)["Rows"]
        _, handle, body, md5, attributes, message_attributes = row
        assert (body, md5, message_attributes) == (
            dicts["Body"],
            dicts["MD5OfBody"],
            dicts["MessageAttributes"],
        )
        assert attributes.keys() == dicts["Attributes"].keys()
        assert attributes["ApproximateReceiveCount"] == str(attempt)
        if fifo:
            assert attributes["MessageGroupId"] == "g"
            assert attributes["SequenceNumber"]
        # Fresh dicts: changing what a receive gave changes nothing stored.
        message_attributes["Size"]["StringValue"] = "0"
        attributes.clear()
        client.change_message_visibility(
            QueueUrl=urls[1], ReceiptHandle=handle, VisibilityTimeout=0
        )
    (row,) = client.receive_message_rows(QueueUrl=urls[1])["Rows"]
    assert row[5]["Size"]["StringValue"] == "12"
    assert row[4]["ApproximateReceiveCount"] == "3"
    failed = client.delete_message_handles(QueueUrl=urls[1], ReceiptHandles=[row[1], "nonsense"])
    assert [(f["Id"], f["Code"]) for f in failed["Failed"]] == [("1", "ReceiptHandleIsInvalid")]
    expect_counts(env.queue("rows.fifo" if fifo else "rows"), (0, 0, 0))


class Watched:
    """An SQS client wrapper that passes every call on (shortcuts included) and names
    each one."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._client, name)
        if name.startswith("_") or not callable(target):
            return target

        def call(**params: Any) -> Any:
            self.calls.append(name)
            return target(**params)

        return call


class Refusing(InterceptedClient):
    """tests.helpers' wrapper: it has no shortcuts, so the worker must make SQS calls."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.calls: list[str] = []

    def intercept(self, operation: str, target: Any, params: dict[str, Any]) -> Any:
        self.calls.append(operation)
        return target(**params)


@pytest.mark.parametrize("wrapper", [Watched, Refusing])
@pytest.mark.parametrize("engine", [True, False])
def test_worker_settles_the_same_with_or_without_shortcuts(wrapper: Any, engine: bool) -> None:
    session = MemorySession()
    client = wrapper(session.client("sqs"))
    env = SQSEnv(session, sqs_client=client, backoff_policy=ConstantBackoff(0))
    queue, dead = queue_with_dead_letters(env, "work", 2)
    runs: dict[int, int] = {}

    @queue.processor("job")
    def job(n: int) -> None:
        runs[n] = runs.get(n, 0) + 1
        if n % 5 == 0 and runs[n] == 1:
            raise ValueError("fails once")
        if n == 7:
            raise ValueError("fails always")

    with queue.add_batch():
        for n in range(25):
            job.delay(n=n)
    if engine:
        queue.process_queue(
            IdleShutdown(0.3),
            wait_seconds=0,
            concurrency=1,
            handle_signals=False,
        )
    else:
        while queue.process_batch().total_count():
            pass
    assert runs == {n: 2 if n % 5 == 0 or n == 7 else 1 for n in range(25)}
    expect_counts(queue, (0, 0, 0))
    assert dead_letter_depth(dead) == 1
    if wrapper is Watched:
        assert {"receive_message_rows", "delete_message_handles"} <= set(client.calls)
        assert "receive_message" not in client.calls
        assert "delete_message_batch" not in client.calls
    else:
        assert {"ReceiveMessage", "DeleteMessageBatch"} <= set(client.calls)


def test_a_refused_delete_is_logged_and_counted(
    sqs: SQSEnv, caplog: pytest.LogCaptureFixture
) -> None:
    create_standard_queue(sqs, "acks")
    queue = sqs.queue("acks")
    queue.add_job("job")
    (received,) = queue.get_raw_messages()
    bad = Message(queue_name=queue.name, message_id="m-1", receipt_handle="nonsense", body="{}")
    acker = Acker(queue)
    acker.ack(received)
    acker.ack(bad)
    with caplog.at_level(logging.WARNING, logger="sqsw.sqs_calls"):
        acker.close()
    assert acker.failed_acks == 1
    assert "Could not delete message m-1" in caplog.text
    expect_counts(queue, (0, 0, 0))
