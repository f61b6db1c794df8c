"""What goes on the wire (sqs-workers' format) and how sends are batched."""

from __future__ import annotations

import base64
import json
import pickle
import threading
import zlib
from collections.abc import Callable

import pytest

from sqsw_core import SQSBatchError, SQSEnv, create_fifo_queue, create_standard_queue


def test_json_job_wire_format(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "wire")
    with sqs.context(request_id="r-1"):
        sqs.queue("wire").add_job("send_email", to="a@x", n=3)
    [raw] = sqs.sqs_client.receive_message(
        QueueUrl=sqs.queue("wire").url, MessageAttributeNames=["All"], WaitTimeSeconds=2
    )["Messages"]
    assert json.loads(raw["Body"]) == {"to": "a@x", "n": 3}
    attrs = {k: (v["DataType"], v["StringValue"]) for k, v in raw["MessageAttributes"].items()}
    assert attrs == {
        "ContentType": ("String", "json"),
        "JobName": ("String", "send_email"),
        "JobContext": ("String", json.dumps({"request_id": "r-1"})),
    }


@pytest.mark.parametrize(
    ("codec", "protocol"), [("pickle", pickle.DEFAULT_PROTOCOL), ("pickle_compat", 2)]
)
def test_pickle_job_wire_format(make_env: Callable[..., SQSEnv], codec: str, protocol: int) -> None:
    env = make_env(codec=codec)
    create_standard_queue(env, "wire")
    env.queue("wire").add_job("job", data={"a": (1, 2)})
    [raw] = env.sqs_client.receive_message(
        QueueUrl=env.queue("wire").url, MessageAttributeNames=["All"], WaitTimeSeconds=2
    )["Messages"]
    expected = base64.urlsafe_b64encode(
        zlib.compress(pickle.dumps({"data": {"a": (1, 2)}}, protocol=protocol))
    ).decode()
    assert raw["Body"] == expected
    assert raw["MessageAttributes"]["ContentType"]["StringValue"] == codec


def test_fifo_messages_default_to_group_default(sqs: SQSEnv) -> None:
    create_fifo_queue(sqs, "wire.fifo", content_based_deduplication=True)
    sqs.queue("wire.fifo").add_job("job", n=1)
    sqs.queue("wire.fifo").add_job("job", n=2, _group_id="g2")
    raw = sqs.sqs_client.receive_message(
        QueueUrl=sqs.queue("wire.fifo").url,
        AttributeNames=["All"],
        MaxNumberOfMessages=10,
        WaitTimeSeconds=2,
    )["Messages"]
    groups = sorted(m["Attributes"]["MessageGroupId"] for m in raw)
    assert groups == ["default", "g2"]


def test_add_batch_sends_many_jobs_and_returns_their_ids(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "bulk")
    queue = sqs.queue("bulk")
    seen: list[int] = []

    @queue.processor("job")
    def job(n: int) -> None:
        seen.append(n)

    with job.batch() as batch:
        for n in range(25):
            assert job.delay(n=n) is None
    assert len(batch.message_ids) == len(set(batch.message_ids)) == 25
    while queue.process_batch(wait_seconds=1).total_count():
        pass
    assert sorted(seen) == list(range(25))


def test_add_batch_splits_by_total_size(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "bulk")
    queue = sqs.queue("bulk")
    big = "x" * int(sqs.max_message_size * 0.4)
    with queue.add_batch() as batch:
        for n in range(5):
            queue.add_job("job", n=n, data=big)
    assert len(batch.message_ids) == 5
    got = []
    for _ in range(20):
        got += queue.get_raw_messages(wait_seconds=1)
        if len(got) >= 5:
            break
    assert sorted(sqs.decode_job(m)[0]["n"] for m in got) == [0, 1, 2, 3, 4]


def test_fifo_without_dedup_id_is_refused_before_sending(sqs: SQSEnv) -> None:
    create_fifo_queue(sqs, "strict.fifo")  # no content-based dedup: dedup ids required
    queue = sqs.queue("strict.fifo")
    with pytest.raises(ValueError, match="pass _deduplication_id"):
        queue.add_job("without_id", n=2)
    queue.add_job("with_id", _deduplication_id="d1", n=1)
    assert [m.job_name for m in queue.get_raw_messages(wait_seconds=2)] == ["with_id"]


def test_refused_batch_entries_are_reported_with_their_job(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "bulk")
    queue = sqs.queue("bulk")
    with pytest.raises(SQSBatchError) as info, queue.add_batch():
        queue.add_job("fine", n=1)
        # A body with a NUL character: SQS refuses that entry alone.
        queue.add_raw_job("nul_body", "bad\x00body", "{}", "json")
        queue.add_job("fine", n=2)
    errors = info.value.errors
    assert [(e["job_name"], e["Code"]) for e in errors] == [("nul_body", "InvalidMessageContents")]
    assert errors[0]["_message"]["MessageBody"] == "bad\x00body"
    assert "nul_body" in str(info.value)
    got = queue.get_raw_messages(wait_seconds=2)
    while len(got) < 2:
        more = queue.get_raw_messages(wait_seconds=1)
        if not more:
            break
        got += more
    assert sorted(sqs.decode_job(m)[0]["n"] for m in got) == [1, 2]


def test_context_is_per_thread(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "ctx")
    queue = sqs.queue("ctx")
    seen: list[tuple[str, str]] = []

    @queue.processor("who", pass_context=True)
    def who(n: str, context=None) -> None:  # type: ignore[no-untyped-def]
        seen.append((n, context.get("user", "-")))

    barrier = threading.Barrier(2)

    def producer(user: str) -> None:
        sqs.context["user"] = user
        barrier.wait()
        who.delay(n=user)

    threads = [threading.Thread(target=producer, args=(u,)) for u in ("alice", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    who.delay(n="main")
    while queue.process_batch(wait_seconds=1).total_count():
        pass
    assert sorted(seen) == [("alice", "alice"), ("bob", "bob"), ("main", "-")]


@pytest.mark.parametrize(
    "text",
    [
        '{"n": NaN, "big": 123456789012345678901234567890}',
        '{"s": "\\ud800 lone surrogate", "inf": Infinity}',
        '{"a": [1, 2.5, "x", null, true, {"b": {}}]}',
    ],
)
def test_json_codec_decodes_exactly_what_the_standard_library_decodes(text: str) -> None:
    from sqsw_json import JSONCodec

    decoded = JSONCodec().deserialize(text)
    expected = json.loads(text)
    assert repr(decoded) == repr(expected)  # repr: NaN != NaN
