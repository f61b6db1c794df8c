"""Behaviour of the in-memory SQS (sqsw_memory), checked against a real server too.

Tests taking ``client`` run on every backend: ``memory`` (a MemorySession client)
and ``localstack`` (boto3 at ``$SQSW_TEST_ENDPOINT``; skipped when it is not set).
Select with ``pytest -k memory`` / ``-k localstack``. Tests taking ``mem`` (or
``fake``) use memory-only features (the injectable clock, internals, speed) and
only run on ``memory``. Timing tests keep at least 1 s of slack: LocalStack's
timers tick about once a second.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError, ParamValidationError

from sqsw_memory import MemorySession, MemorySQSClient
from tests.localstack_server import SKIP_REASON, localstack_endpoint

BACKENDS = ["memory", "localstack"]
MISSING_ARN = "arn:aws:sqs:us-east-1:000000000000:nope"


# -- fixtures ---------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def client(request: pytest.FixtureRequest) -> Any:
    """A boto3-shaped SQS client on each backend."""
    if request.param == "memory":
        return MemorySession().client("sqs")
    endpoint = localstack_endpoint()
    if endpoint is None:
        pytest.skip(SKIP_REASON)
    import boto3

    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


class FakeClock:
    """A monotonic and a wall clock that only move when told to."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.wall = 1_700_000_000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall += seconds


@pytest.fixture(params=["memory"])
def fake(request: pytest.FixtureRequest) -> tuple[Any, FakeClock]:
    """(memory client, its fake clock)."""
    clock = FakeClock()
    session = MemorySession(clock=clock.monotonic, wall_clock=clock.time)
    return session.client("sqs"), clock


@pytest.fixture(params=["memory"])
def mem(request: pytest.FixtureRequest) -> Any:
    """A memory client on real time (memory-only checks)."""
    return MemorySession().client("sqs")


QueueFactory = Callable[..., str]


def _factory(sqs: Any) -> Iterator[QueueFactory]:
    urls: list[str] = []

    def make(suffix: str = "", fifo: bool = False, **attributes: Any) -> str:
        name = f"t{uuid.uuid4().hex[:12]}{suffix}" + (".fifo" if fifo else "")
        attrs = {k: str(v) for k, v in attributes.items()}
        if fifo:
            attrs["FifoQueue"] = "true"
        url: str = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
        urls.append(url)
        return url

    yield make
    for url in reversed(urls):
        try:
            sqs.delete_queue(QueueUrl=url)
        except ClientError:
            pass


@pytest.fixture
def queue(client: Any) -> Iterator[QueueFactory]:
    """Make uniquely named queues on ``client``; they are deleted afterwards."""
    yield from _factory(client)


@pytest.fixture
def fake_queue(fake: tuple[Any, FakeClock]) -> Iterator[QueueFactory]:
    yield from _factory(fake[0])


@pytest.fixture
def mem_queue(mem: Any) -> Iterator[QueueFactory]:
    yield from _factory(mem)


# -- helpers ----------------------------------------------------------------------


def is_memory(sqs: Any) -> bool:
    return isinstance(sqs, MemorySQSClient)


def arn_of(sqs: Any, url: str) -> str:
    return str(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
    )


def counts(sqs: Any, url: str) -> tuple[int, int, int]:
    """(visible, in flight, delayed)."""
    a = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return (
        int(a["ApproximateNumberOfMessages"]),
        int(a["ApproximateNumberOfMessagesNotVisible"]),
        int(a["ApproximateNumberOfMessagesDelayed"]),
    )


def wait_visible(sqs: Any, url: str, timeout: float = 10.0) -> None:
    """Wait until the queue's one message is visible again (its visibility timeout ran out)."""
    end = time.monotonic() + timeout
    while (now := counts(sqs, url)) != (1, 0, 0):
        assert time.monotonic() < end, f"still (visible, in flight, delayed) = {now}"
        time.sleep(0.1)


def receive(sqs: Any, url: str, **kwargs: Any) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = sqs.receive_message(QueueUrl=url, **kwargs).get("Messages", [])
    return messages


def collect(
    sqs: Any, url: str, expected: int, timeout: float = 10.0, **kwargs: Any
) -> list[dict[str, Any]]:
    """Receive (and delete) until ``expected`` messages arrived or ``timeout`` passed."""
    got: list[dict[str, Any]] = []
    end = time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < end:
        batch = receive(sqs, url, MaxNumberOfMessages=10, WaitTimeSeconds=1, **kwargs)
        for m in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        got.extend(batch)
    return got


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> dict[str, Any]:
    error: dict[str, Any] = excinfo.value.response["Error"]
    return error


def dlq_pipe(
    sqs: Any, queue: QueueFactory, max_receives: int = 1, fifo: bool = False
) -> tuple[str, str]:
    """(source queue url, its dead-letter queue url)."""
    dlq = queue("-dlq", fifo=fifo, **({"ContentBasedDeduplication": "true"} if fifo else {}))
    policy = json.dumps({"deadLetterTargetArn": arn_of(sqs, dlq), "maxReceiveCount": max_receives})
    extra = {"ContentBasedDeduplication": "true"} if fifo else {}
    source = queue("-src", fifo=fifo, RedrivePolicy=policy, **extra)
    return source, dlq


# -- queues -----------------------------------------------------------------------


def test_create_queue_is_idempotent_while_attributes_match(
    client: Any, queue: QueueFactory
) -> None:
    url = queue(VisibilityTimeout=45)
    name = url.rsplit("/", 1)[-1]
    again = client.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "45"})
    assert again["QueueUrl"] == url
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert client.create_queue(QueueName=name)["QueueUrl"] == url
    with pytest.raises(client.exceptions.QueueNameExists) as exc:
        client.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "46"})
    assert error_of(exc)["Code"] == "QueueAlreadyExists"


@pytest.mark.parametrize(
    ("name", "attributes"),
    [
        ("has space", {}),
        ("x" * 81, {}),
        ("bad.fifo", {}),  # .fifo suffix without FifoQueue
        ("nosuffix", {"FifoQueue": "true"}),  # FIFO without .fifo
        ("", {}),
    ],
)
def test_create_queue_rejects_invalid_names(
    client: Any, name: str, attributes: dict[str, str]
) -> None:
    with pytest.raises(ClientError) as exc:
        client.create_queue(QueueName=name, Attributes=attributes)
    assert error_of(exc)["Code"] == "InvalidParameterValue"


def test_missing_queue_raises_queue_does_not_exist(client: Any) -> None:
    with pytest.raises(client.exceptions.QueueDoesNotExist) as exc:
        client.get_queue_url(QueueName=f"missing-{uuid.uuid4().hex}")
    error = error_of(exc)
    assert error["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
    assert error["QueryErrorCode"] == "QueueDoesNotExist"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_operations_on_a_deleted_queue_fail(client: Any, queue: QueueFactory) -> None:
    url = queue()
    client.delete_queue(QueueUrl=url)
    with pytest.raises(client.exceptions.QueueDoesNotExist):
        client.send_message(QueueUrl=url, MessageBody="x")


def test_list_queues_by_prefix_with_pagination(client: Any, queue: QueueFactory) -> None:
    prefix = f"t{uuid.uuid4().hex[:12]}"
    urls = []
    for i in range(3):
        name = f"{prefix}-{i}"
        urls.append(client.create_queue(QueueName=name)["QueueUrl"])
    try:
        listed = client.list_queues(QueueNamePrefix=prefix)["QueueUrls"]
        assert sorted(listed) == sorted(urls)
        first = client.list_queues(QueueNamePrefix=prefix, MaxResults=2)
        assert len(first["QueueUrls"]) == 2
        rest = client.list_queues(
            QueueNamePrefix=prefix, MaxResults=2, NextToken=first["NextToken"]
        )
        assert sorted(first["QueueUrls"] + rest["QueueUrls"]) == sorted(urls)
        assert "QueueUrls" not in client.list_queues(QueueNamePrefix=f"{prefix}-none")
    finally:
        for url in urls:
            client.delete_queue(QueueUrl=url)


def test_queue_attributes_report_arn_and_counters(client: Any, queue: QueueFactory) -> None:
    url = queue()
    name = url.rsplit("/", 1)[-1]
    attrs = client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["QueueArn"].startswith("arn:aws:sqs:us-east-1:")
    assert attrs["QueueArn"].endswith(f":{name}")
    assert attrs["VisibilityTimeout"] == "30"
    assert int(attrs["CreatedTimestamp"]) > 1_600_000_000
    assert "LastModifiedTimestamp" in attrs
    client.send_message(QueueUrl=url, MessageBody="now")
    client.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
    client.send_message(QueueUrl=url, MessageBody="taken")
    assert counts(client, url) == (2, 0, 1)
    receive(client, url)
    assert counts(client, url) == (1, 1, 1)
    client.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "90"})
    assert client.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])[
        "Attributes"
    ] == {"VisibilityTimeout": "90"}


def test_unknown_queue_attribute_is_rejected(client: Any, queue: QueueFactory) -> None:
    url = queue()
    with pytest.raises(ClientError) as exc:
        client.get_queue_attributes(QueueUrl=url, AttributeNames=["Foobar"])
    assert error_of(exc)["Code"] == "InvalidAttributeName"


def test_tags(client: Any, queue: QueueFactory) -> None:
    url = queue()
    assert "Tags" not in client.list_queue_tags(QueueUrl=url)
    client.tag_queue(QueueUrl=url, Tags={"a": "1", "b": "2"})
    client.tag_queue(QueueUrl=url, Tags={"a": "3"})
    client.untag_queue(QueueUrl=url, TagKeys=["b", "missing"])
    assert client.list_queue_tags(QueueUrl=url)["Tags"] == {"a": "3"}


def test_purge_removes_visible_in_flight_and_delayed(client: Any, queue: QueueFactory) -> None:
    url = queue()
    for i in range(3):
        client.send_message(QueueUrl=url, MessageBody=f"m{i}")
    client.send_message(QueueUrl=url, MessageBody="d", DelaySeconds=1)
    receive(client, url, VisibilityTimeout=1)
    client.purge_queue(QueueUrl=url)
    # In flight and delayed ones are gone too, not just hidden until they come back.
    end = time.monotonic() + 5
    while (now := counts(client, url)) != (0, 0, 0):
        assert time.monotonic() < end, f"(visible, in flight, delayed) after the purge: {now}"
        time.sleep(0.1)
    assert receive(client, url, WaitTimeSeconds=2) == []


# -- messages ---------------------------------------------------------------------


def test_send_receive_delete_with_sqs_md5s(client: Any, queue: QueueFactory) -> None:
    url = queue()
    attributes = {
        "Help.Me": {"DataType": "String", "StringValue": "Me"},
        "Hello": {"DataType": "String", "StringValue": "There"},
        "General": {"DataType": "String", "StringValue": "Kenobi"},
    }
    sent = client.send_message(QueueUrl=url, MessageBody="msg", MessageAttributes=attributes)
    # digests recorded from AWS (LocalStack's parity snapshots)
    assert sent["MD5OfMessageBody"] == "6e2baaf3b97dbeef01c0043275f9a0e7"
    assert sent["MD5OfMessageAttributes"] == "4c360f3fdafd970e05fae2f149d997f5"
    assert "SequenceNumber" not in sent
    [m] = receive(client, url, MessageAttributeNames=["All"])
    assert m["MessageId"] == sent["MessageId"]
    assert m["Body"] == "msg"
    assert m["MD5OfBody"] == sent["MD5OfMessageBody"]
    assert m["MessageAttributes"] == attributes
    assert m["MD5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    assert "Attributes" not in m
    client.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert counts(client, url) == (0, 0, 0)


def test_binary_and_number_attributes_round_trip(client: Any, queue: QueueFactory) -> None:
    url = queue()
    blob = b"traceparent\x1e00-774062d6c37081a5a0b9b5b88e30627c-2d2482211f6489da-01"
    attributes = {
        "attr1": {"DataType": "Binary", "BinaryValue": blob},
        "n": {"DataType": "Number.int", "StringValue": "42"},
    }
    sent = client.send_message(QueueUrl=url, MessageBody="test", MessageAttributes=attributes)
    [m] = receive(client, url, MessageAttributeNames=["attr1"])
    assert m["MessageAttributes"] == {"attr1": {"DataType": "Binary", "BinaryValue": blob}}
    assert m["MD5OfMessageAttributes"] == "8cbe4db156db8a94db8b801b7addb984"  # recorded on AWS
    assert sent["MD5OfMessageAttributes"] != m["MD5OfMessageAttributes"]


def test_message_attribute_name_filters(client: Any, queue: QueueFactory) -> None:
    url = queue(VisibilityTimeout=0)
    client.send_message(
        QueueUrl=url,
        MessageBody="msg",
        MessageAttributes={
            "Help.Me": {"DataType": "String", "StringValue": "Me"},
            "Hello": {"DataType": "String", "StringValue": "There"},
            "General": {"DataType": "String", "StringValue": "Kenobi"},
        },
    )

    def names(filters: list[str]) -> set[str]:
        [m] = receive(client, url, MessageAttributeNames=filters, WaitTimeSeconds=1)
        return set(m.get("MessageAttributes", {}))

    everything = {"Help.Me", "Hello", "General"}
    assert names(["All"]) == everything
    assert names([".*"]) == everything
    assert names(["Hel.*"]) == {"Hello", "Help.Me"}
    assert names(["Foo", "Hello"]) == {"Hello"}
    assert names(["Foo"]) == set()
    assert names([]) == set()
    [m] = receive(client, url, MessageAttributeNames=["Hello", "General"], WaitTimeSeconds=1)
    assert m["MD5OfMessageAttributes"] == "fca026605781cb4126a1e9044df24232"  # recorded on AWS


def test_system_attributes_only_those_requested(client: Any, queue: QueueFactory) -> None:
    url = queue(VisibilityTimeout=0)
    client.send_message(QueueUrl=url, MessageBody="x")
    [m] = receive(client, url, MessageSystemAttributeNames=["SentTimestamp"])
    assert set(m["Attributes"]) == {"SentTimestamp"}
    [m] = receive(client, url, AttributeNames=["All"])
    assert {
        "SenderId",
        "SentTimestamp",
        "ApproximateReceiveCount",
        "ApproximateFirstReceiveTimestamp",
    } <= set(m["Attributes"])
    assert m["Attributes"]["ApproximateReceiveCount"] == "2"
    assert abs(int(m["Attributes"]["SentTimestamp"]) / 1000 - time.time()) < 60


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("", "MissingParameter"),
        ("bad \x01 char", "InvalidMessageContents"),
        ("\ufffe", "InvalidMessageContents"),
    ],
)
def test_invalid_bodies(client: Any, queue: QueueFactory, body: str, code: str) -> None:
    url = queue()
    with pytest.raises(ClientError) as exc:
        client.send_message(QueueUrl=url, MessageBody=body)
    assert error_of(exc)["Code"] == code


def test_message_size_limit_counts_body_and_attributes(client: Any, queue: QueueFactory) -> None:
    url = queue(MaximumMessageSize=1024)
    attrs = {"k": {"DataType": "String", "StringValue": "x"}}  # 1 + 6 + 1 = 8 bytes
    client.send_message(QueueUrl=url, MessageBody="a" * (1024 - 8), MessageAttributes=attrs)
    with pytest.raises(ClientError) as exc:
        client.send_message(QueueUrl=url, MessageBody="a" * (1024 - 7), MessageAttributes=attrs)
    assert error_of(exc)["Code"] == "InvalidParameterValue"


def test_invalid_message_attributes(client: Any, queue: QueueFactory) -> None:
    url = queue()
    bad = [
        {"AWS.x": {"DataType": "String", "StringValue": "v"}},
        {"a": {"DataType": "Blob", "StringValue": "v"}},
        {"a": {"DataType": "String", "StringValue": ""}},
    ]
    if is_memory(client):  # AWS rules LocalStack does not check
        bad.append({f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(11)})
        bad.append({"a": {"DataType": "Number", "StringValue": "twelve"}})
        bad.append({"a..b": {"DataType": "String", "StringValue": "v"}})
    for attributes in bad:
        with pytest.raises(ClientError) as exc:
            client.send_message(QueueUrl=url, MessageBody="x", MessageAttributes=attributes)
        assert error_of(exc)["Code"] == "InvalidParameterValue", attributes


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"MaxNumberOfMessages": 11}, "MaxNumberOfMessages"),
        ({"MaxNumberOfMessages": 0}, "MaxNumberOfMessages"),
        ({"WaitTimeSeconds": 21}, "WaitTimeSeconds"),
        ({"VisibilityTimeout": 43201}, "VisibilityTimeout"),
    ],
)
def test_receive_parameter_ranges(
    client: Any, queue: QueueFactory, kwargs: dict[str, int], parameter: str
) -> None:
    if (
        not is_memory(client)
        and parameter != "WaitTimeSeconds"
        and kwargs != {"MaxNumberOfMessages": 11}
    ):
        pytest.skip("LocalStack does not check this range (AWS does)")
    url = queue()
    with pytest.raises(ClientError) as exc:
        client.receive_message(QueueUrl=url, **kwargs)
    assert error_of(exc)["Code"] == "InvalidParameterValue"
    assert parameter in error_of(exc)["Message"]


# -- visibility, receive counts, delays --------------------------------------------


def test_visibility_timeout_hides_then_redelivers(client: Any, queue: QueueFactory) -> None:
    url = queue(VisibilityTimeout=1)
    client.send_message(QueueUrl=url, MessageBody="x")
    [first] = receive(client, url, AttributeNames=["All"])
    assert first["Attributes"]["ApproximateReceiveCount"] == "1"
    assert receive(client, url) == []
    [second] = receive(client, url, WaitTimeSeconds=5, AttributeNames=["All"])
    assert second["MessageId"] == first["MessageId"]
    assert second["ReceiptHandle"] != first["ReceiptHandle"]
    assert second["Attributes"]["ApproximateReceiveCount"] == "2"
    assert (
        second["Attributes"]["ApproximateFirstReceiveTimestamp"]
        == first["Attributes"]["ApproximateFirstReceiveTimestamp"]
    )


def test_receive_visibility_override_and_change_to_zero(client: Any, queue: QueueFactory) -> None:
    url = queue()
    client.send_message(QueueUrl=url, MessageBody="x")
    [m] = receive(client, url, VisibilityTimeout=0)
    [m] = receive(client, url)  # visible again at once
    assert receive(client, url) == []
    client.change_message_visibility(
        QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
    )
    [again] = receive(client, url, AttributeNames=["ApproximateReceiveCount"])
    assert again["Attributes"]["ApproximateReceiveCount"] == "3"


def test_change_visibility_extends_the_timeout(client: Any, queue: QueueFactory) -> None:
    url = queue(VisibilityTimeout=1)
    client.send_message(QueueUrl=url, MessageBody="x")
    [m] = receive(client, url)
    client.change_message_visibility(
        QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=30
    )
    assert receive(client, url, WaitTimeSeconds=2) == []
    assert counts(client, url) == (0, 1, 0)


def test_per_message_delay(client: Any, queue: QueueFactory) -> None:
    url = queue()
    client.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=1)
    assert receive(client, url) == []
    assert counts(client, url)[2] == 1
    started = time.monotonic()
    [m] = receive(client, url, WaitTimeSeconds=10)
    assert m["Body"] == "later"
    assert time.monotonic() - started < 5


def test_queue_delay(client: Any, queue: QueueFactory) -> None:
    url = queue(DelaySeconds=1)
    client.send_message(QueueUrl=url, MessageBody="later")
    client.send_message(QueueUrl=url, MessageBody="now", DelaySeconds=0)
    [now] = receive(client, url)
    assert now["Body"] == "now"
    [later] = receive(client, url, WaitTimeSeconds=10)
    assert later["Body"] == "later"


# -- long polling -----------------------------------------------------------------


def test_long_poll_wakes_when_a_message_is_sent(client: Any, queue: QueueFactory) -> None:
    url = queue()
    timer = threading.Timer(0.5, lambda: client.send_message(QueueUrl=url, MessageBody="late"))
    started = time.monotonic()
    timer.start()
    try:
        [m] = receive(client, url, WaitTimeSeconds=10)
    finally:
        timer.join()
    assert m["Body"] == "late"
    assert time.monotonic() - started < 4


def test_long_poll_returns_what_is_there_without_waiting(client: Any, queue: QueueFactory) -> None:
    url = queue()
    client.send_message(QueueUrl=url, MessageBody="a")
    client.send_message(QueueUrl=url, MessageBody="b")
    started = time.monotonic()
    got = receive(client, url, MaxNumberOfMessages=10, WaitTimeSeconds=10)
    assert 1 <= len(got) <= 2
    assert time.monotonic() - started < 2


def test_long_poll_times_out_empty(client: Any, queue: QueueFactory) -> None:
    url = queue()
    started = time.monotonic()
    assert receive(client, url, WaitTimeSeconds=1) == []
    assert 0.8 <= time.monotonic() - started < 4


def test_queue_wait_time_attribute_long_polls(client: Any, queue: QueueFactory) -> None:
    url = queue(ReceiveMessageWaitTimeSeconds=10)
    threading.Timer(0.5, lambda: client.send_message(QueueUrl=url, MessageBody="x")).start()
    assert len(receive(client, url)) == 1


def test_long_poll_wakes_when_visibility_runs_out(client: Any, queue: QueueFactory) -> None:
    url = queue()
    client.send_message(QueueUrl=url, MessageBody="x")
    receive(client, url, VisibilityTimeout=1)
    started = time.monotonic()
    assert len(receive(client, url, WaitTimeSeconds=10)) == 1
    assert time.monotonic() - started < 4


# -- dead-letter queues -----------------------------------------------------------


def test_redrive_moves_message_after_max_receives(client: Any, queue: QueueFactory) -> None:
    source, dlq = dlq_pipe(client, queue, max_receives=2)
    attrs = {"k": {"DataType": "String", "StringValue": "v"}}
    sent = client.send_message(QueueUrl=source, MessageBody="poison", MessageAttributes=attrs)
    assert len(receive(client, source, VisibilityTimeout=0)) == 1
    assert len(receive(client, source, VisibilityTimeout=0)) == 1
    assert receive(client, source, VisibilityTimeout=0) == []  # third attempt: moved instead
    [dead] = receive(
        client, dlq, WaitTimeSeconds=5, AttributeNames=["All"], MessageAttributeNames=["All"]
    )
    assert dead["MessageId"] == sent["MessageId"]
    assert dead["Body"] == "poison"
    assert dead["MessageAttributes"] == attrs
    assert dead["Attributes"]["DeadLetterQueueSourceArn"] == arn_of(client, source)
    assert counts(client, source) == (0, 0, 0)


def test_redrive_policy_is_normalized_and_sources_listed(client: Any, queue: QueueFactory) -> None:
    source, dlq = dlq_pipe(client, queue, max_receives=5)
    policy = json.loads(
        client.get_queue_attributes(QueueUrl=source, AttributeNames=["RedrivePolicy"])[
            "Attributes"
        ]["RedrivePolicy"]
    )
    assert policy == {"deadLetterTargetArn": arn_of(client, dlq), "maxReceiveCount": 5}
    assert client.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"] == [source]


def test_fifo_redrive(client: Any, queue: QueueFactory) -> None:
    source, dlq = dlq_pipe(client, queue, max_receives=1, fifo=True)
    sent = client.send_message(QueueUrl=source, MessageBody="poison", MessageGroupId="g")
    receive(client, source, VisibilityTimeout=0)
    receive(client, source, VisibilityTimeout=0)
    [dead] = receive(client, dlq, WaitTimeSeconds=5, AttributeNames=["MessageGroupId"])
    assert dead["MessageId"] == sent["MessageId"]
    assert dead["Attributes"]["MessageGroupId"] == "g"


# -- FIFO -------------------------------------------------------------------------


def test_fifo_order_within_group_and_sequence_numbers(client: Any, queue: QueueFactory) -> None:
    url = queue(fifo=True)
    sequence = []
    for i in range(5):
        sent = client.send_message(
            QueueUrl=url, MessageBody=f"m{i}", MessageGroupId="g", MessageDeduplicationId=f"d{i}"
        )
        sequence.append(int(sent["SequenceNumber"]))
    assert sequence == sorted(sequence) and len(set(sequence)) == 5
    got = receive(client, url, MaxNumberOfMessages=10, AttributeNames=["All"])
    assert [m["Body"] for m in got] == [f"m{i}" for i in range(5)]
    assert [int(m["Attributes"]["SequenceNumber"]) for m in got] == sequence
    assert got[0]["Attributes"]["MessageGroupId"] == "g"
    assert got[0]["Attributes"]["MessageDeduplicationId"] == "d0"


def test_fifo_group_blocked_while_in_flight_others_served(client: Any, queue: QueueFactory) -> None:
    url = queue(fifo=True, ContentBasedDeduplication="true")
    for body, group in [("a1", "A"), ("b1", "B"), ("a2", "A"), ("b2", "B")]:
        client.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=group)
    [a1] = receive(client, url)
    assert a1["Body"] == "a1"
    # group A is blocked by a1 in flight; a second consumer gets group B, in order
    other = receive(client, url, MaxNumberOfMessages=10)
    assert [m["Body"] for m in other] == ["b1", "b2"]
    assert receive(client, url, MaxNumberOfMessages=10) == []
    client.delete_message(QueueUrl=url, ReceiptHandle=a1["ReceiptHandle"])
    [a2] = receive(client, url, MaxNumberOfMessages=10)
    assert a2["Body"] == "a2"


def test_fifo_receive_takes_a_group_in_order_before_the_next(
    client: Any, queue: QueueFactory
) -> None:
    url = queue(fifo=True, ContentBasedDeduplication="true")
    for body, group in [("g1-m1", "1"), ("g2-m1", "2"), ("g1-m2", "1"), ("g1-m3", "1")]:
        client.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=group)
    got = [m["Body"] for m in receive(client, url, MaxNumberOfMessages=10)]
    assert got == ["g1-m1", "g1-m2", "g1-m3", "g2-m1"]  # as recorded on AWS


def test_fifo_parallel_consumers_get_different_groups(client: Any, queue: QueueFactory) -> None:
    url = queue(fifo=True, ContentBasedDeduplication="true")
    for i in range(3):
        for group in "XYZ":
            client.send_message(QueueUrl=url, MessageBody=f"{group}{i}", MessageGroupId=group)
    results: list[list[str]] = []
    lock = threading.Lock()

    def consume() -> None:
        got = [m["Body"] for m in receive(client, url, MaxNumberOfMessages=3)]
        with lock:
            results.append(got)

    threads = [threading.Thread(target=consume) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    groups = [{body[0] for body in got} for got in results if got]
    assert all(len(g) == 1 for g in groups)  # each consumer got one group...
    assert len({next(iter(g)) for g in groups}) == len(groups)  # ...and no group twice
    for got in results:
        assert got == sorted(got)


def test_fifo_explicit_deduplication(client: Any, queue: QueueFactory) -> None:
    url = queue(fifo=True)
    first = client.send_message(
        QueueUrl=url, MessageBody="one", MessageGroupId="g", MessageDeduplicationId="same"
    )
    second = client.send_message(
        QueueUrl=url, MessageBody="two", MessageGroupId="g", MessageDeduplicationId="same"
    )
    assert second["MessageId"] == first["MessageId"]
    got = receive(client, url, MaxNumberOfMessages=10)
    assert [m["Body"] for m in got] == ["one"]
    client.delete_message(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"])
    client.send_message(
        QueueUrl=url, MessageBody="three", MessageGroupId="g", MessageDeduplicationId="same"
    )
    assert receive(client, url, WaitTimeSeconds=1) == []  # still within the 5-minute window


def test_fifo_content_based_deduplication(client: Any, queue: QueueFactory) -> None:
    url = queue(fifo=True, ContentBasedDeduplication="true")
    first = client.send_message(QueueUrl=url, MessageBody='{"foo": "bar"}', MessageGroupId="g1")
    second = client.send_message(QueueUrl=url, MessageBody='{"foo": "bar"}', MessageGroupId="g2")
    assert first["MessageId"] == second["MessageId"]
    assert len(receive(client, url, MaxNumberOfMessages=10)) == 1


def test_fifo_requires_group_and_deduplication_ids(client: Any, queue: QueueFactory) -> None:
    url = queue(fifo=True)
    with pytest.raises(ClientError) as exc:
        client.send_message(QueueUrl=url, MessageBody="x", MessageDeduplicationId="d")
    assert error_of(exc)["Code"] == "MissingParameter"
    with pytest.raises(ClientError) as exc:
        client.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g")
    assert error_of(exc)["Code"] == "InvalidParameterValue"


def test_fifo_rejects_per_message_delay(client: Any, queue: QueueFactory) -> None:
    url = queue(fifo=True, ContentBasedDeduplication="true")
    with pytest.raises(ClientError) as exc:
        client.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g", DelaySeconds=2)
    assert error_of(exc)["Code"] == "InvalidParameterValue"
    assert "DelaySeconds" in error_of(exc)["Message"]
    client.send_message(QueueUrl=url, MessageBody="y", MessageGroupId="g", DelaySeconds=0)


def test_standard_queue_rejects_deduplication_id(client: Any, queue: QueueFactory) -> None:
    url = queue()
    with pytest.raises(ClientError) as exc:
        client.send_message(QueueUrl=url, MessageBody="x", MessageDeduplicationId="d")
    assert error_of(exc)["Code"] == "InvalidParameterValue"


# -- batches ----------------------------------------------------------------------


def test_send_batch_reports_failures_per_entry(client: Any, queue: QueueFactory) -> None:
    url = queue()
    entries = [{"Id": str(i), "MessageBody": f"m{i}"} for i in range(9)]
    entries.append({"Id": "bad", "MessageBody": "\x01"})
    result = client.send_message_batch(QueueUrl=url, Entries=entries)
    assert {e["Id"] for e in result["Successful"]} == {str(i) for i in range(9)}
    [failed] = result["Failed"]
    assert failed["Id"] == "bad"
    assert failed["Code"] == "InvalidMessageContents"
    if is_memory(client):  # LocalStack reports SenderFault false
        assert failed["SenderFault"] is True
    assert len(collect(client, url, 9)) == 9


def test_send_batch_without_failures_has_no_failed_key(client: Any, queue: QueueFactory) -> None:
    url = queue()
    result = client.send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "x"}])
    assert "Failed" not in result
    [ok] = result["Successful"]
    assert ok["MD5OfMessageBody"] == "9dd4e461268c8034f5c8564e155c67a6"


@pytest.mark.parametrize(
    ("entries", "code"),
    [
        ([], "AWS.SimpleQueueService.EmptyBatchRequest"),
        (
            [{"Id": str(i), "MessageBody": "x"} for i in range(11)],
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
        ),
        (
            [{"Id": "a", "MessageBody": "x"}, {"Id": "a", "MessageBody": "y"}],
            "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
        ),
        ([{"Id": "no:colons", "MessageBody": "x"}], "AWS.SimpleQueueService.InvalidBatchEntryId"),
        (
            [{"Id": str(i), "MessageBody": "x" * 120_000} for i in range(10)],
            "AWS.SimpleQueueService.BatchRequestTooLong",
        ),
    ],
    ids=["empty", "too-many", "ids-not-distinct", "invalid-id", "too-long"],
)
def test_send_batch_level_errors(
    client: Any, queue: QueueFactory, entries: list[dict[str, str]], code: str
) -> None:
    url = queue()
    with pytest.raises(ClientError) as exc:
        client.send_message_batch(QueueUrl=url, Entries=entries)
    assert error_of(exc)["Code"] == code
    assert counts(client, url) == (0, 0, 0)


def test_delete_and_change_visibility_batches_report_failures_per_entry(
    client: Any, queue: QueueFactory
) -> None:
    url = queue()
    client.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(2)]
    )
    got = collect_without_delete(client, url, 2)
    changed = client.change_message_visibility_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "ok", "ReceiptHandle": got[0]["ReceiptHandle"], "VisibilityTimeout": 0},
            {"Id": "bad", "ReceiptHandle": "garbage", "VisibilityTimeout": 0},
        ],
    )
    assert [e["Id"] for e in changed["Successful"]] == ["ok"]
    assert [(e["Id"], e["Code"]) for e in changed["Failed"]] == [("bad", "ReceiptHandleIsInvalid")]
    deleted = client.delete_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "ok", "ReceiptHandle": got[1]["ReceiptHandle"]},
            {"Id": "bad", "ReceiptHandle": "garbage"},
        ],
    )
    assert [e["Id"] for e in deleted["Successful"]] == ["ok"]
    assert [(e["Id"], e["Code"]) for e in deleted["Failed"]] == [("bad", "ReceiptHandleIsInvalid")]
    with pytest.raises(ClientError) as exc:
        client.delete_message_batch(QueueUrl=url, Entries=[])
    assert error_of(exc)["Code"] == "AWS.SimpleQueueService.EmptyBatchRequest"


def collect_without_delete(sqs: Any, url: str, expected: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    end = time.monotonic() + 10
    while len(got) < expected and time.monotonic() < end:
        got.extend(receive(sqs, url, MaxNumberOfMessages=10, WaitTimeSeconds=1))
    return got


# -- receipt handles --------------------------------------------------------------


def test_garbage_receipt_handles_are_invalid(client: Any, queue: QueueFactory) -> None:
    url = queue()
    with pytest.raises(client.exceptions.ReceiptHandleIsInvalid) as exc:
        client.delete_message(QueueUrl=url, ReceiptHandle="garbage")
    assert (
        error_of(exc)["Message"]
        == 'The input receipt handle "garbage" is not a valid receipt handle.'
    )
    with pytest.raises(client.exceptions.ReceiptHandleIsInvalid):
        client.change_message_visibility(QueueUrl=url, ReceiptHandle="garbage", VisibilityTimeout=5)


def test_handles_of_deleted_messages(client: Any, queue: QueueFactory) -> None:
    url = queue()
    client.send_message(QueueUrl=url, MessageBody="x")
    [m] = receive(client, url)
    handle = m["ReceiptHandle"]
    client.delete_message(QueueUrl=url, ReceiptHandle=handle)
    client.delete_message(QueueUrl=url, ReceiptHandle=handle)  # deleting twice is fine
    with pytest.raises(ClientError) as exc:
        client.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=5)
    assert error_of(exc)["Code"] == "InvalidParameterValue"
    assert (
        "Message does not exist or is not available for visibility timeout change"
        in error_of(exc)["Message"]
    )


def test_standard_queue_deletes_with_an_expired_handle(client: Any, queue: QueueFactory) -> None:
    url = queue()
    client.send_message(QueueUrl=url, MessageBody="x")
    [m] = receive(client, url, VisibilityTimeout=1)
    wait_visible(client, url)  # the handle's visibility ran out
    client.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert counts(client, url) == (0, 0, 0)


def test_standard_queue_older_handle_still_changes_visibility(
    client: Any, queue: QueueFactory
) -> None:
    url = queue()
    client.send_message(QueueUrl=url, MessageBody="x")
    [old] = receive(client, url, VisibilityTimeout=0)
    [new] = receive(client, url, VisibilityTimeout=30)
    assert old["ReceiptHandle"] != new["ReceiptHandle"]
    client.change_message_visibility(
        QueueUrl=url, ReceiptHandle=old["ReceiptHandle"], VisibilityTimeout=0
    )
    assert len(receive(client, url, WaitTimeSeconds=1)) == 1


def test_fifo_handle_expires_with_its_visibility_timeout(client: Any, queue: QueueFactory) -> None:
    url = queue(fifo=True, ContentBasedDeduplication="true", VisibilityTimeout=1)
    client.send_message(QueueUrl=url, MessageBody="g1-m1", MessageGroupId="1")
    [m] = receive(client, url)
    wait_visible(client, url)  # the handle's visibility ran out
    with pytest.raises(ClientError) as exc:
        client.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert error_of(exc)["Code"] == "InvalidParameterValue"
    assert error_of(exc)["Message"].endswith("Reason: The receipt handle has expired.")


# -- message move tasks -----------------------------------------------------------


def _fill_dlq(sqs: Any, source: str, dlq: str, n: int) -> None:
    for i in range(n):
        sqs.send_message(QueueUrl=source, MessageBody=f"m{i}")
    for _ in range(2 * n + 2):
        receive(sqs, source, VisibilityTimeout=0, MaxNumberOfMessages=10)
    end = time.monotonic() + 10
    while counts(sqs, dlq)[0] < n and time.monotonic() < end:
        time.sleep(0.2)
    assert counts(sqs, dlq)[0] == n


def _wait_task(sqs: Any, source_arn: str, status: str) -> dict[str, Any]:
    end = time.monotonic() + 20
    while True:
        [task] = sqs.list_message_move_tasks(SourceArn=source_arn)["Results"]
        if task["Status"] == status or time.monotonic() > end:
            return dict(task)
        time.sleep(0.2)


def test_move_task_to_a_destination(client: Any, queue: QueueFactory) -> None:
    source, dlq = dlq_pipe(client, queue)
    destination = queue("-dst")
    _fill_dlq(client, source, dlq, 3)
    dlq_arn = arn_of(client, dlq)
    handle = client.start_message_move_task(
        SourceArn=dlq_arn, DestinationArn=arn_of(client, destination)
    )["TaskHandle"]
    assert handle
    bodies = {m["Body"] for m in collect(client, destination, 3)}
    assert bodies == {"m0", "m1", "m2"}
    task = _wait_task(client, dlq_arn, "COMPLETED")
    assert task["Status"] == "COMPLETED"
    assert task["ApproximateNumberOfMessagesMoved"] == 3
    assert task["DestinationArn"] == arn_of(client, destination)
    assert "TaskHandle" not in task
    assert counts(client, dlq) == (0, 0, 0)


def test_move_task_back_to_source_queues(client: Any, queue: QueueFactory) -> None:
    source, dlq = dlq_pipe(client, queue, max_receives=3)
    _fill_dlq(client, source, dlq, 2)
    client.start_message_move_task(SourceArn=arn_of(client, dlq))
    got = collect(client, source, 2, AttributeNames=["ApproximateReceiveCount"])
    assert {m["Body"] for m in got} == {"m0", "m1"}
    if is_memory(client):  # redriven messages are new messages on AWS, not on LocalStack
        assert all(m["Attributes"]["ApproximateReceiveCount"] == "1" for m in got)


def test_move_task_rate_limit_and_cancel(client: Any, queue: QueueFactory) -> None:
    source, dlq = dlq_pipe(client, queue)
    destination = queue("-dst")
    _fill_dlq(client, source, dlq, 5)
    dlq_arn = arn_of(client, dlq)
    handle = client.start_message_move_task(
        SourceArn=dlq_arn,
        DestinationArn=arn_of(client, destination),
        MaxNumberOfMessagesPerSecond=1,
    )["TaskHandle"]
    [running] = client.list_message_move_tasks(SourceArn=dlq_arn)["Results"]
    assert running["Status"] == "RUNNING"
    assert running["TaskHandle"] == handle
    assert running["MaxNumberOfMessagesPerSecond"] == 1
    with pytest.raises(ClientError) as exc:
        client.start_message_move_task(
            SourceArn=dlq_arn, DestinationArn=arn_of(client, destination)
        )
    assert error_of(exc)["Code"] == "InvalidParameterValue"
    collect(client, destination, 1, timeout=5)
    client.cancel_message_move_task(TaskHandle=handle)
    assert _wait_task(client, dlq_arn, "CANCELLED")["Status"] == "CANCELLED"
    assert counts(client, dlq)[0] >= 1  # not everything moved


def test_move_task_errors(client: Any, queue: QueueFactory) -> None:
    plain = queue()
    other = queue()
    with pytest.raises(ClientError) as exc:
        client.start_message_move_task(
            SourceArn=arn_of(client, plain), DestinationArn=arn_of(client, other)
        )
    assert error_of(exc)["Code"] == "InvalidParameterValue"
    assert error_of(exc)["Message"] == "Source queue must be configured as a Dead Letter Queue."
    _, dlq = dlq_pipe(client, queue)
    with pytest.raises(ClientError) as exc:
        client.start_message_move_task(
            SourceArn=arn_of(client, dlq), DestinationArn=arn_of(client, other) + "x"
        )
    assert error_of(exc)["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as exc:
        client.cancel_message_move_task(TaskHandle="foobared")
    assert error_of(exc)["Code"] == "InvalidParameterValue"


# -- memory only: exact time with the injectable clock ------------------------------


def test_memory_visibility_and_delay_are_exact(
    fake: tuple[Any, FakeClock], fake_queue: QueueFactory
) -> None:
    sqs, clock = fake
    url = fake_queue(VisibilityTimeout=10)
    sqs.send_message(QueueUrl=url, MessageBody="x")
    sqs.send_message(QueueUrl=url, MessageBody="d", DelaySeconds=5)
    [m] = receive(sqs, url, AttributeNames=["All"])
    assert m["Attributes"]["SentTimestamp"] == "1700000000000"
    assert m["Attributes"]["ApproximateFirstReceiveTimestamp"] == "1700000000000"
    clock.advance(4.999)
    assert receive(sqs, url) == []
    clock.advance(0.001)
    [d] = receive(sqs, url)
    assert d["Body"] == "d"
    clock.advance(4.999)
    assert receive(sqs, url) == []
    assert counts(sqs, url) == (0, 2, 0)
    clock.advance(0.001)
    [again] = receive(sqs, url, AttributeNames=["ApproximateReceiveCount"])
    assert again["Body"] == "x"
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"


def test_memory_twelve_hour_visibility_limit(
    fake: tuple[Any, FakeClock], fake_queue: QueueFactory
) -> None:
    sqs, clock = fake
    url = fake_queue()
    sqs.send_message(QueueUrl=url, MessageBody="x")
    [m] = receive(sqs, url, VisibilityTimeout=43200)
    clock.advance(100)
    with pytest.raises(ClientError) as exc:
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=43200
        )
    assert "Total VisibilityTimeout for the message is beyond the limit" in error_of(exc)["Message"]
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=43100
    )


def test_memory_retention_period_expires_messages(
    fake: tuple[Any, FakeClock], fake_queue: QueueFactory
) -> None:
    sqs, clock = fake
    url = fake_queue(MessageRetentionPeriod=60)
    sqs.send_message(QueueUrl=url, MessageBody="old")
    clock.advance(30)
    sqs.send_message(QueueUrl=url, MessageBody="new")
    clock.advance(30)
    assert [m["Body"] for m in receive(sqs, url, MaxNumberOfMessages=10)] == ["new"]


def test_memory_fifo_dedup_window_is_five_minutes(
    fake: tuple[Any, FakeClock], fake_queue: QueueFactory
) -> None:
    sqs, clock = fake
    url = fake_queue(fifo=True)
    first = sqs.send_message(
        QueueUrl=url, MessageBody="a", MessageGroupId="g", MessageDeduplicationId="d"
    )
    clock.advance(299)
    assert (
        sqs.send_message(
            QueueUrl=url, MessageBody="a", MessageGroupId="g", MessageDeduplicationId="d"
        )["MessageId"]
        == first["MessageId"]
    )
    clock.advance(1)
    third = sqs.send_message(
        QueueUrl=url, MessageBody="a", MessageGroupId="g", MessageDeduplicationId="d"
    )
    assert third["MessageId"] != first["MessageId"]
    assert len(receive(sqs, url, MaxNumberOfMessages=10)) == 2


def test_memory_fifo_dedup_scope_message_group(
    fake: tuple[Any, FakeClock], fake_queue: QueueFactory
) -> None:
    sqs, _ = fake
    url = fake_queue(
        fifo=True, DeduplicationScope="messageGroup", FifoThroughputLimit="perMessageGroupId"
    )
    a = sqs.send_message(
        QueueUrl=url, MessageBody="x", MessageGroupId="g1", MessageDeduplicationId="d"
    )
    b = sqs.send_message(
        QueueUrl=url, MessageBody="x", MessageGroupId="g2", MessageDeduplicationId="d"
    )
    assert a["MessageId"] != b["MessageId"]


def test_memory_fifo_head_visible_again_unblocks_group(
    fake: tuple[Any, FakeClock], fake_queue: QueueFactory
) -> None:
    sqs, clock = fake
    url = fake_queue(fifo=True, ContentBasedDeduplication="true", VisibilityTimeout=30)
    for body in ["m1", "m2", "m3"]:
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId="g")
    sqs.send_message(QueueUrl=url, MessageBody="other", MessageGroupId="h")
    m1, _ = receive(sqs, url, MaxNumberOfMessages=2)
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=m1["ReceiptHandle"], VisibilityTimeout=0
    )
    # m1 is receivable again, m2 (in flight) still blocks m3 (as recorded on AWS)
    assert [m["Body"] for m in receive(sqs, url, MaxNumberOfMessages=10)] == ["other", "m1"]
    clock.advance(30)
    bodies = [m["Body"] for m in receive(sqs, url, MaxNumberOfMessages=10)]
    assert [b for b in bodies if b.startswith("m")] == ["m1", "m2", "m3"]
    assert sorted(bodies) == ["m1", "m2", "m3", "other"]


def test_memory_fifo_stale_handle_rules(
    fake: tuple[Any, FakeClock], fake_queue: QueueFactory
) -> None:
    sqs, clock = fake
    url = fake_queue(fifo=True, ContentBasedDeduplication="true", VisibilityTimeout=10)
    sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g")
    [old] = receive(sqs, url)
    clock.advance(10)
    [new] = receive(sqs, url)
    for call in (
        lambda h: sqs.delete_message(QueueUrl=url, ReceiptHandle=h),
        lambda h: sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=h, VisibilityTimeout=5),
    ):
        with pytest.raises(ClientError) as exc:
            call(old["ReceiptHandle"])
        assert error_of(exc)["Code"] == "InvalidParameterValue"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=new["ReceiptHandle"])


def test_memory_receive_request_attempt_id_replays(
    fake: tuple[Any, FakeClock], fake_queue: QueueFactory
) -> None:
    sqs, clock = fake
    url = fake_queue(fifo=True, ContentBasedDeduplication="true")
    for body in ["a", "b"]:
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId="g")
    first = receive(sqs, url, MaxNumberOfMessages=10, ReceiveRequestAttemptId="attempt-1")
    clock.advance(20)
    retry = receive(sqs, url, MaxNumberOfMessages=10, ReceiveRequestAttemptId="attempt-1")
    assert [m["ReceiptHandle"] for m in retry] == [m["ReceiptHandle"] for m in first]
    clock.advance(20)  # the retry restarted the 30 s visibility timeout
    assert receive(sqs, url) == []


def test_memory_purge_and_recreate_cooldowns(
    fake: tuple[Any, FakeClock], fake_queue: QueueFactory
) -> None:
    sqs, clock = fake
    url = fake_queue()
    sqs.purge_queue(QueueUrl=url)
    with pytest.raises(sqs.exceptions.PurgeQueueInProgress) as exc:
        sqs.purge_queue(QueueUrl=url)
    assert error_of(exc)["Code"] == "AWS.SimpleQueueService.PurgeQueueInProgress"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    clock.advance(60)
    sqs.purge_queue(QueueUrl=url)
    name = url.rsplit("/", 1)[-1]
    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(sqs.exceptions.QueueDeletedRecently):
        sqs.create_queue(QueueName=name)
    clock.advance(60)
    assert sqs.create_queue(QueueName=name)["QueueUrl"] == url


def test_memory_long_poll_with_frozen_fake_clock_ends_in_real_time(
    fake: tuple[Any, FakeClock], fake_queue: QueueFactory
) -> None:
    sqs, _ = fake
    url = fake_queue()
    started = time.monotonic()
    assert receive(sqs, url, WaitTimeSeconds=1) == []
    assert 0.9 <= time.monotonic() - started < 3


# -- memory only: validation details --------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "code"),
    [
        ({"VisibilityTimeout": "43201"}, "InvalidAttributeValue"),
        ({"DelaySeconds": "901"}, "InvalidAttributeValue"),
        ({"MessageRetentionPeriod": "59"}, "InvalidAttributeValue"),
        ({"MaximumMessageSize": "1048577"}, "InvalidAttributeValue"),
        ({"ReceiveMessageWaitTimeSeconds": "21"}, "InvalidAttributeValue"),
        ({"VisibilityTimeout": "ten"}, "InvalidAttributeValue"),
        ({"Foobar": "1"}, "InvalidAttributeName"),
        ({"ContentBasedDeduplication": "true"}, "InvalidAttributeName"),
        ({"FifoQueue": "false"}, "InvalidAttributeName"),
        ({"RedrivePolicy": "not json"}, "InvalidAttributeValue"),
        ({"RedrivePolicy": '{"maxReceiveCount": 3}'}, "InvalidParameterValue"),
        (
            {"RedrivePolicy": '{"deadLetterTargetArn": "dummy", "maxReceiveCount": 3}'},
            "InvalidParameterValue",
        ),
        (
            {
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": MISSING_ARN, "maxReceiveCount": 3}
                )
            },
            "InvalidParameterValue",
        ),
        ({"RedriveAllowPolicy": '{"redrivePermission": "sometimes"}'}, "InvalidParameterValue"),
    ],
)
def test_memory_queue_attribute_validation(mem: Any, attributes: dict[str, str], code: str) -> None:
    with pytest.raises(ClientError) as exc:
        mem.create_queue(QueueName=f"t{uuid.uuid4().hex[:8]}", Attributes=attributes)
    assert error_of(exc)["Code"] == code


def test_memory_dead_letter_queue_must_have_the_same_type(
    mem: Any, mem_queue: QueueFactory
) -> None:
    fifo_dlq = mem_queue(fifo=True)
    policy = json.dumps({"deadLetterTargetArn": arn_of(mem, fifo_dlq), "maxReceiveCount": 1})
    with pytest.raises(ClientError) as exc:
        mem_queue(RedrivePolicy=policy)
    assert "same type" in error_of(exc)["Message"]
    deny = mem_queue(RedriveAllowPolicy=json.dumps({"redrivePermission": "denyAll"}))
    policy = json.dumps({"deadLetterTargetArn": arn_of(mem, deny), "maxReceiveCount": 1})
    with pytest.raises(ClientError):
        mem_queue(RedrivePolicy=policy)


def test_memory_parameter_types_are_checked_like_botocore(
    mem: Any, mem_queue: QueueFactory
) -> None:
    url = mem_queue()
    with pytest.raises(ParamValidationError, match="MessageBody"):
        mem.send_message(QueueUrl=url, MessageBody=42)
    with pytest.raises(ParamValidationError, match="Missing required parameter"):
        mem.send_message(QueueUrl=url)
    with pytest.raises(ParamValidationError, match="Unknown parameter"):
        mem.send_message_batch(QueueUrl=url, Entries=[{"Id": "1", "MessageBody": "x", "Body": "y"}])
    with pytest.raises(ParamValidationError):
        mem.receive_message(QueueUrl=url, MaxNumberOfMessages="3")
    with pytest.raises(ParamValidationError):
        mem.send_message(QueueUrl=url, MessageBody="x", DelaySeconds=None)
    with pytest.raises(TypeError):
        mem.send_message(url, "x")


def test_memory_exceptions_are_botocore_classes(mem: Any) -> None:
    import botocore.session

    real = botocore.session.get_session().create_client(
        "sqs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    assert set(real.exceptions._code_to_exception) == set(mem.exceptions._code_to_exception)
    assert issubclass(mem.exceptions.QueueDoesNotExist, ClientError)
    with pytest.raises(ClientError) as exc:
        mem.get_queue_url(QueueName="nope")
    assert exc.value.operation_name == "GetQueueUrl"
    assert str(exc.value) == (
        "An error occurred (AWS.SimpleQueueService.NonExistentQueue) when calling the "
        "GetQueueUrl operation: The specified queue does not exist."
    )


def test_memory_system_attribute_md5_and_trace_header(mem: Any, mem_queue: QueueFactory) -> None:
    url = mem_queue()
    header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    sent = mem.send_message(
        QueueUrl=url,
        MessageBody="test",
        MessageSystemAttributes={"AWSTraceHeader": {"DataType": "String", "StringValue": header}},
    )
    assert sent["MD5OfMessageSystemAttributes"] == "5ae4d5d7636402d80f4eb6d213245a88"  # AWS
    [m] = receive(mem, url, MessageSystemAttributeNames=["AWSTraceHeader"])
    assert m["Attributes"] == {"AWSTraceHeader": header}


# -- memory only: sessions, threads, speed ------------------------------------------


def test_memory_sessions_are_isolated_and_clients_share(mem: Any) -> None:
    session = MemorySession()
    a, b = session.client("sqs"), session.client("sqs", region_name="us-east-1")
    url = a.create_queue(QueueName="shared")["QueueUrl"]
    b.send_message(QueueUrl=url, MessageBody="x")
    assert len(receive(a, url)) == 1
    with pytest.raises(mem.exceptions.QueueDoesNotExist):
        MemorySession().client("sqs").get_queue_url(QueueName="shared")
    other_region = session.client("sqs", region_name="eu-west-1")
    assert "QueueUrls" not in other_region.list_queues()


def test_memory_package_does_not_import_sqsw_core() -> None:
    code = (
        "import sys, sqsw_memory; sqsw_memory.MemorySession().client('sqs');"
        "assert 'sqsw_core' not in sys.modules, sorted(m for m in sys.modules if 'sqsw' in m)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_memory_concurrent_consumers_get_each_message_once(
    mem: Any, mem_queue: QueueFactory
) -> None:
    url = mem_queue(VisibilityTimeout=300)
    total = 2000
    for i in range(0, total, 10):
        mem.send_message_batch(
            QueueUrl=url, Entries=[{"Id": str(j), "MessageBody": str(i + j)} for j in range(10)]
        )
    seen: list[str] = []
    lock = threading.Lock()

    def consume() -> None:
        while True:
            got = receive(mem, url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            if not got:
                return
            mem.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(k), "ReceiptHandle": m["ReceiptHandle"]} for k, m in enumerate(got)
                ],
            )
            with lock:
                seen.extend(m["Body"] for m in got)

    threads = [threading.Thread(target=consume) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen, key=int) == [str(i) for i in range(total)]
    assert counts(mem, url) == (0, 0, 0)


def test_memory_deleting_a_queue_ends_long_polls(mem: Any, mem_queue: QueueFactory) -> None:
    url = mem_queue()
    errors: list[BaseException] = []

    def poll() -> None:
        try:
            receive(mem, url, WaitTimeSeconds=20)
        except ClientError as exc:
            errors.append(exc)

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(0.2)
    mem.delete_queue(QueueUrl=url)
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert isinstance(errors[0], mem.exceptions.QueueDoesNotExist)


def test_memory_paginator_and_queue_name_as_url(mem: Any) -> None:
    urls = [mem.create_queue(QueueName=f"page-{i}")["QueueUrl"] for i in range(5)]
    pages = list(mem.get_paginator("list_queues").paginate(PaginationConfig={"PageSize": 2}))
    assert [len(p["QueueUrls"]) for p in pages] == [2, 2, 1]
    assert [u for p in pages for u in p["QueueUrls"]] == urls
    mem.send_message(QueueUrl="page-0", MessageBody="by name")  # SQS accepts a name too
    assert counts(mem, urls[0]) == (1, 0, 0)
