"""Test doubles: SQS events as Lambda builds them, and an event source mapping to run locally.

:func:`sqs_record` turns one ``ReceiveMessage`` entry (boto3's shape) into
the record Lambda's event source mapping puts in the event, as AWS documents
it: camelCase keys, ``stringValue``/``binaryValue`` (base64) attributes with
their ``stringListValues``/``binaryListValues``, ``eventSource``,
``eventSourceARN`` and ``awsRegion``. :class:`EventSourceMapping` does what
the mapping does with a function: receive, invoke with the event, delete the
records the function did not report as failed, against any session (the
in-memory SQS, LocalStack), so a function can be tried without deploying it.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from typing import Any

from sqsw_lambda.records import QueueArn

__all__ = ["EventSourceMapping", "sqs_event", "sqs_record"]


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _record_attribute(raw: dict[str, Any]) -> dict[str, Any]:
    attribute: dict[str, Any] = {}
    if "StringValue" in raw:
        attribute["stringValue"] = raw["StringValue"]
    if "BinaryValue" in raw:
        attribute["binaryValue"] = _b64(raw["BinaryValue"])
    attribute["stringListValues"] = list(raw.get("StringListValues") or [])
    attribute["binaryListValues"] = [_b64(v) for v in raw.get("BinaryListValues") or []]
    attribute["dataType"] = raw["DataType"]
    return attribute


def sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """The Lambda event record for one ``ReceiveMessage`` entry of the queue ``queue_arn``."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": {
            name: _record_attribute(value)
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": QueueArn(queue_arn).region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The Lambda event for a batch of ``ReceiveMessage`` entries of ``queue_arn``."""
    return {"Records": [sqs_record(m, queue_arn) for m in messages]}


class FakeLambdaContext:
    """The parts of Lambda's context object a function usually reads."""

    def __init__(self, function_name: str, timeout: float, request_id: str) -> None:
        self.function_name = function_name
        self.aws_request_id = request_id
        self.memory_limit_in_mb = 128
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class EventSourceMapping:
    """Polls a queue and invokes ``function(event, context)`` as Lambda's mapping does.

    Each poll receives up to ``batch_size`` (at most 10) messages with every
    attribute, builds the event, invokes the function and deletes the
    records it did not list in ``batchItemFailures`` (all of them when it
    raises, or when its answer is not a valid partial batch response: those
    stay for their visibility timeout, as on Lambda).
    """

    def __init__(
        self,
        client: Any,
        queue_url: str,
        function: Callable[[dict[str, Any], Any], Any],
        *,
        batch_size: int = 10,
        function_timeout: float = 60.0,
        function_name: str = "sqsw-test-function",
    ) -> None:
        self.client = client
        self.queue_url = queue_url
        self.function = function
        self.batch_size = max(1, min(10, batch_size))
        self.function_timeout = function_timeout
        self.function_name = function_name
        attributes = client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        self.queue_arn: str = attributes["Attributes"]["QueueArn"]
        self.invocations = 0
        #: Answers of the function that were not a valid partial batch response.
        self.bad_responses: list[Any] = []
        self._lock = threading.Lock()

    def poll(self, wait_seconds: int = 0) -> int:
        """One receive and invocation; how many records the event had."""
        response = self.client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return 0
        with self._lock:
            self.invocations += 1
            request_id = f"req-{self.invocations}"
        context = FakeLambdaContext(self.function_name, self.function_timeout, request_id)
        try:
            answer = self.function(sqs_event(messages, self.queue_arn), context)
        except Exception:
            return len(messages)  # the whole batch returns after its visibility timeout
        failed = self._failed_ids(answer, messages)
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(done[start : start + 10])
            ]
            self.client.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        return len(messages)

    def _failed_ids(self, answer: Any, messages: list[dict[str, Any]]) -> set[str]:
        """The ids the answer reports failed; every id if the answer is not valid."""
        every = {m["MessageId"] for m in messages}
        if answer is None:
            return set()
        if not isinstance(answer, dict):
            with self._lock:
                self.bad_responses.append(answer)
            return every
        failures = answer.get("batchItemFailures")
        if failures is None:  # {} and {"batchItemFailures": null}: all succeeded
            return set()
        ids = [f.get("itemIdentifier") if isinstance(f, dict) else None for f in failures or []]
        if not isinstance(failures, list) or any(i not in every for i in ids):
            with self._lock:
                self.bad_responses.append(answer)
            return every
        return {str(i) for i in ids}

    def run(self, until: Callable[[], bool], timeout: float, pollers: int = 1) -> None:
        """Poll with ``pollers`` threads until ``until()`` holds (checked between polls).

        Raises ``TimeoutError`` after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        errors: list[BaseException] = []

        def loop() -> None:
            try:
                while not until() and time.monotonic() < deadline:
                    if not self.poll(wait_seconds=0):
                        time.sleep(0.05)
            except BaseException as exc:  # reported in the calling thread
                errors.append(exc)

        threads = [threading.Thread(target=loop, daemon=True) for _ in range(pollers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        if not until():
            raise TimeoutError(f"the event source mapping did not finish in {timeout} s")
