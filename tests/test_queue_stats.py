"""`sqsw queue stats`: depth, in flight, delayed and the oldest message's age.

SQS reports the oldest message's age only through CloudWatch
(``ApproximateAgeOfOldestMessage``); the memory session answers those metrics
itself, and LocalStack runs without CloudWatch here, so the stats say why the
age is missing.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ParamValidationError

from sqsw_core import SQSEnv, create_standard_queue, oldest_message_age
from sqsw_core.cli.commands import format_age, queue_stats
from sqsw_memory import MemorySession
from tests.helpers import on_memory


def test_stats_report_the_oldest_waiting_message_age(sqs: SQSEnv) -> None:
    create_standard_queue(sqs, "aging")
    queue = sqs.queue("aging")

    @queue.processor("job")
    def job(n: int) -> None:
        pass

    empty = queue_stats(sqs, "aging")
    job.delay(n=1)
    time.sleep(1.1)
    job.delay(n=2)
    waiting = queue_stats(sqs, "aging")
    assert (waiting["depth"], waiting["in_flight"]) == (2, 0)
    if not on_memory(sqs):
        # This LocalStack runs SQS only: the age is missing, and the stats say why.
        assert waiting["oldest_age"] is None
        assert waiting["oldest_age_error"].startswith("CloudWatch: ")
        assert "cloudwatch" in waiting["oldest_age_error"]
        return
    assert empty["oldest_age"] is None and empty["oldest_age_error"] is None
    # The older of the two messages counts.
    assert 1.0 <= waiting["oldest_age"] < 10
    # Received messages are in flight, not waiting: they do not count.
    assert len(queue.get_raw_messages(max_messages=10)) == 2
    assert queue_stats(sqs, "aging")["oldest_age"] is None


def test_received_messages_do_not_count_as_waiting() -> None:
    wall = [1_000_000.0]
    session = MemorySession(wall_clock=lambda: wall[0])
    env = SQSEnv(session)
    create_standard_queue(env, "q")
    client = session.client("sqs")
    url = env.get_queue_url("q")
    client.send_message(QueueUrl=url, MessageBody="old")
    wall[0] += 30
    client.send_message(QueueUrl=url, MessageBody="new")
    wall[0] += 12
    assert oldest_message_age(env, "q") == pytest.approx(42)
    received = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert len(received) == 2
    assert oldest_message_age(env, "q") is None  # both in flight: none waits
    old = next(m for m in received if m["Body"] == "old")
    client.change_message_visibility(
        QueueUrl=url, ReceiptHandle=old["ReceiptHandle"], VisibilityTimeout=0
    )
    assert oldest_message_age(env, "q") == pytest.approx(42)


def test_memory_cloudwatch_answers_like_cloudwatch() -> None:
    session = MemorySession()
    env = SQSEnv(session)
    create_standard_queue(env, "q")
    client = session.client("cloudwatch")
    sqs_client = session.client("sqs")
    url = env.get_queue_url("q")
    for delay in (0, 0, 60):
        sqs_client.send_message(QueueUrl=url, MessageBody="x", DelaySeconds=delay)
    sqs_client.receive_message(QueueUrl=url, MaxNumberOfMessages=1)

    def stat(metric: str, queue_name: str = "q", **extra: Any) -> list[dict[str, Any]]:
        now = time.time()
        args: dict[str, Any] = {
            "Namespace": "AWS/SQS",
            "MetricName": metric,
            "Dimensions": [{"Name": "QueueName", "Value": queue_name}],
            "StartTime": now - 300,
            "EndTime": now,
            "Period": 60,
            "Statistics": ["Maximum", "SampleCount"],
        }
        args.update(extra)
        points: list[dict[str, Any]] = client.get_metric_statistics(**args)["Datapoints"]
        return points

    counts = {
        name: stat(f"ApproximateNumberOfMessages{name}")[0]["Maximum"]
        for name in ("Visible", "NotVisible", "Delayed")
    }
    assert counts == {"Visible": 1.0, "NotVisible": 1.0, "Delayed": 1.0}
    (point,) = stat("ApproximateNumberOfMessagesVisible")
    assert point["Unit"] == "Count" and point["SampleCount"] == 1.0
    assert set(point) == {"Timestamp", "Unit", "Maximum", "SampleCount"}
    # As on CloudWatch: other metrics, namespaces and queues simply have no datapoints.
    assert stat("NumberOfMessagesSent") == []
    assert stat("ApproximateNumberOfMessagesVisible", queue_name="missing") == []
    assert stat("ApproximateNumberOfMessagesVisible", Namespace="AWS/Lambda") == []
    with pytest.raises(ParamValidationError, match="MetricName"):
        client.get_metric_statistics(Namespace="AWS/SQS", StartTime=0, EndTime=1, Period=60)
    assert session.get_available_services() == ["cloudwatch", "sqs"]


@pytest.mark.parametrize(
    ("age", "error", "shown"),
    [
        (None, None, "-"),
        (42.4, None, "42 s"),
        (600.0, None, "10 min"),
        (9000.0, None, "2.5 h"),
        # The reason goes on a line of its own below the table (sqsw queue stats).
        (None, "CloudWatch: AccessDenied: no", "n/a"),
    ],
)
def test_age_column(age: float | None, error: str | None, shown: str) -> None:
    assert format_age(age, error) == shown
