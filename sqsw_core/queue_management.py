"""Creating and deleting queues, and redrive (dead-letter) policies."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqsw_core.env import SQSEnv


class RedrivePolicy:
    """Move a message to ``dead_letter_queue_name`` after ``max_receive_count`` deliveries."""

    def __init__(
        self, sqs_env: SQSEnv, dead_letter_queue_name: str, max_receive_count: int
    ) -> None:
        if max_receive_count < 1:
            raise ValueError(f"max_receive_count must be >= 1, got {max_receive_count!r}")
        self.sqs_env = sqs_env
        self.dead_letter_queue_name = dead_letter_queue_name
        self.max_receive_count = max_receive_count

    def dead_letter_queue_arn(self) -> str:
        env = self.sqs_env
        url = env.get_queue_url(self.dead_letter_queue_name)
        response = env.api.call(
            "get_queue_attributes",
            self.dead_letter_queue_name,
            QueueUrl=url,
            AttributeNames=["QueueArn"],
        )
        arn: str = response["Attributes"]["QueueArn"]
        return arn

    def __json__(self) -> str:
        """The ``RedrivePolicy`` queue attribute (JSON inside a string)."""
        return json.dumps(
            {
                "deadLetterTargetArn": self.dead_letter_queue_arn(),
                "maxReceiveCount": str(self.max_receive_count),
            }
        )

    def __repr__(self) -> str:
        return f"RedrivePolicy({self.dead_letter_queue_name!r}, {self.max_receive_count})"


def _queue_attributes(
    message_retention_period: int | None,
    visibility_timeout: int | None,
    redrive_policy: RedrivePolicy | None,
    delay_seconds: int | None,
    receive_wait_time_seconds: int | None,
) -> dict[str, str]:
    attrs: dict[str, str] = {}
    if message_retention_period is not None:
        attrs["MessageRetentionPeriod"] = str(message_retention_period)
    if visibility_timeout is not None:
        attrs["VisibilityTimeout"] = str(visibility_timeout)
    if delay_seconds is not None:
        attrs["DelaySeconds"] = str(delay_seconds)
    if receive_wait_time_seconds is not None:
        attrs["ReceiveMessageWaitTimeSeconds"] = str(receive_wait_time_seconds)
    if redrive_policy is not None:
        attrs["RedrivePolicy"] = redrive_policy.__json__()
    return attrs


def _create(env: SQSEnv, queue_name: str, attrs: dict[str, str]) -> str:
    response = env.api.call(
        "create_queue", queue_name, QueueName=env.get_sqs_queue_name(queue_name), Attributes=attrs
    )
    url: str = response["QueueUrl"]
    env.forget_queue_url(queue_name)
    return url


def create_standard_queue(
    env: SQSEnv,
    queue_name: str,
    message_retention_period: int | None = None,
    visibility_timeout: int | None = None,
    redrive_policy: RedrivePolicy | None = None,
    delay_seconds: int | None = None,
    receive_wait_time_seconds: int | None = None,
) -> str:
    """Create a standard queue (no-op if it exists with the same settings); returns its URL."""
    if queue_name.endswith(".fifo"):
        raise ValueError(
            f"queue name {queue_name!r} ends with .fifo: use create_fifo_queue for FIFO queues"
        )
    attrs = _queue_attributes(
        message_retention_period,
        visibility_timeout,
        redrive_policy,
        delay_seconds,
        receive_wait_time_seconds,
    )
    return _create(env, queue_name, attrs)


def create_fifo_queue(
    env: SQSEnv,
    queue_name: str,
    content_based_deduplication: bool = False,
    message_retention_period: int | None = None,
    visibility_timeout: int | None = None,
    redrive_policy: RedrivePolicy | None = None,
    delay_seconds: int | None = None,
    receive_wait_time_seconds: int | None = None,
) -> str:
    """Create a FIFO queue; the name must end with ``.fifo``. Returns its URL."""
    if not queue_name.endswith(".fifo"):
        raise ValueError(f"FIFO queue names must end with .fifo, got {queue_name!r}")
    attrs = _queue_attributes(
        message_retention_period,
        visibility_timeout,
        redrive_policy,
        delay_seconds,
        receive_wait_time_seconds,
    )
    attrs["FifoQueue"] = "true"
    if content_based_deduplication:
        attrs["ContentBasedDeduplication"] = "true"
    return _create(env, queue_name, attrs)


def delete_queue(env: SQSEnv, queue_name: str) -> None:
    """Delete a queue and every message in it."""
    url = env.get_queue_url(queue_name)
    env.api.call("delete_queue", queue_name, QueueUrl=url)
    env.forget_queue_url(queue_name)


def get_queue_attributes(env: SQSEnv, queue_name: str) -> dict[str, Any]:
    """Every attribute SQS reports for a queue."""
    url = env.get_queue_url(queue_name)
    response = env.api.call(
        "get_queue_attributes", queue_name, QueueUrl=url, AttributeNames=["All"]
    )
    attributes: dict[str, Any] = response.get("Attributes", {})
    return attributes


def oldest_message_age(env: SQSEnv, queue_name: str, window: int = 900) -> float | None:
    """Seconds since the oldest message waiting in the queue was sent, per CloudWatch.

    SQS's API does not report it; CloudWatch's ``ApproximateAgeOfOldestMessage``
    metric (namespace ``AWS/SQS``) does, a minute or more behind. This reads its
    latest one-minute maximum within the last ``window`` seconds, with a client
    of the environment's session (needs ``cloudwatch:GetMetricStatistics``).
    ``None``: no datapoint (an empty queue sends none). Errors of the call
    (no permission, no CloudWatch at the endpoint) are raised.
    """
    now = dt.datetime.now(dt.timezone.utc)
    client = env.session.client("cloudwatch")
    response = client.get_metric_statistics(
        Namespace="AWS/SQS",
        MetricName="ApproximateAgeOfOldestMessage",
        Dimensions=[{"Name": "QueueName", "Value": env.get_sqs_queue_name(queue_name)}],
        StartTime=now - dt.timedelta(seconds=window),
        EndTime=now,
        Period=60,
        Statistics=["Maximum"],
    )
    points = sorted(response.get("Datapoints", []), key=lambda p: p["Timestamp"])
    return float(points[-1]["Maximum"]) if points else None
