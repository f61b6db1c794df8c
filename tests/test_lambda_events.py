"""sqsw-lambda on the SQS events AWS documents, record by record.

Samples, as published:

* standard and FIFO queue events: the AWS Lambda Developer Guide, "Using Lambda
  with Amazon SQS", https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html
  (source: github.com/awsdocs/aws-lambda-developer-guide, doc_source/with-sqs.md);
* binary, list and Number message attributes: AWS's Lambda event test data,
  https://github.com/aws/aws-lambda-go/blob/main/events/testdata/sqs-event.json;
* a record whose ``binaryValue`` is not base64 (``"base64Str"``): AWS's Powertools
  for Lambda test event,
  https://github.com/aws-powertools/powertools-lambda-python/blob/develop/tests/events/sqsEvent.json.
"""

from __future__ import annotations

import copy
import logging
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sqsw_core import SQSEnv, create_standard_queue
from sqsw_core.exceptions import ConfigurationError
from sqsw_core.messages import Message
from sqsw_lambda import NotAnSQSEventError, handler, message_from_record
from sqsw_lambda.testing import sqs_record
from sqsw_memory import MemorySession
from tests.helpers import cli_environ, expect_counts, run_sqsw

STANDARD_EVENT: dict[str, Any] = {
    "Records": [
        {
            "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
            "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a...",
            "body": "Test message.",
            "attributes": {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": "1545082649183",
                "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                "ApproximateFirstReceiveTimestamp": "1545082649185",
            },
            "messageAttributes": {},
            "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:my-queue",
            "awsRegion": "us-east-2",
        },
        {
            "messageId": "2e1424d4-f796-459a-8184-9c92662be6da",
            "receiptHandle": "AQEBzWwaftRI0KuVm4tP+/7q1rGgNqicHq...",
            "body": "Test message.",
            "attributes": {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": "1545082650636",
                "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                "ApproximateFirstReceiveTimestamp": "1545082650649",
            },
            "messageAttributes": {},
            "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:my-queue",
            "awsRegion": "us-east-2",
        },
    ]
}

FIFO_EVENT: dict[str, Any] = {
    "Records": [
        {
            "messageId": "11d6ee51-4cc7-4302-9e22-7cd8afdaadf5",
            "receiptHandle": "AQEBBX8nesZEXmkhsmZeyIE8iQAMig7qw...",
            "body": "Test message.",
            "attributes": {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": "1573251510774",
                "SequenceNumber": "18849496460467696128",
                "MessageGroupId": "1",
                "SenderId": "AIDAIO23YVJENQZJOL4VO",
                "MessageDeduplicationId": "1",
                "ApproximateFirstReceiveTimestamp": "1573251510774",
            },
            "messageAttributes": {},
            "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:fifo.fifo",
            "awsRegion": "us-east-2",
        }
    ]
}

BINARY_EVENT: dict[str, Any] = {
    "Records": [
        {
            "messageId": "MessageID_1",
            "receiptHandle": "MessageReceiptHandle",
            "body": "Message Body",
            "md5OfBody": "fce0ea8dd236ccb3ed9b37dae260836f",
            "md5OfMessageAttributes": "582c92c5c5b6ac403040a4f3ab3115c9",
            "eventSourceARN": "arn:aws:sqs:us-west-2:123456789012:SQSQueue",
            "eventSource": "aws:sqs",
            "awsRegion": "us-west-2",
            "attributes": {
                "ApproximateReceiveCount": "2",
                "SentTimestamp": "1520621625029",
                "SenderId": "AROAIWPX5BD2BHG722MW4:sender",
                "ApproximateFirstReceiveTimestamp": "1520621634884",
            },
            "messageAttributes": {
                "Attribute3": {
                    "binaryValue": "MTEwMA==",
                    "stringListValues": ["abc", "123"],
                    "binaryListValues": ["MA==", "MQ==", "MA=="],
                    "dataType": "Binary",
                },
                "Attribute2": {
                    "stringValue": "123",
                    "stringListValues": [],
                    "binaryListValues": ["MQ==", "MA=="],
                    "dataType": "Number",
                },
                "Attribute1": {
                    "stringValue": "AttributeValue1",
                    "stringListValues": [],
                    "binaryListValues": [],
                    "dataType": "String",
                },
            },
        }
    ]
}

#: Powertools' test event: its first record's binaryValue is not base64.
POWERTOOLS_EVENT: dict[str, Any] = copy.deepcopy(STANDARD_EVENT)
POWERTOOLS_EVENT["Records"][0]["messageAttributes"] = {
    "testAttr": {"stringValue": "100", "binaryValue": "base64Str", "dataType": "Number"}
}
POWERTOOLS_EVENT["Records"][1]["body"] = '{"message": "foo1"}'


def _raw_env(queue_name: str) -> tuple[SQSEnv, list[Message]]:
    """An env whose raw queue ``queue_name`` records the messages it runs (``fail`` bodies
    raise)."""
    sqs = SQSEnv(MemorySession())
    seen: list[Message] = []

    @sqs.queue(queue_name, "raw").raw_processor()
    def on_message(message: Message) -> None:
        seen.append(message)
        if "fail" in message.body:
            raise RuntimeError("this record fails")

    return sqs, seen


def test_the_documented_standard_event_runs_every_record() -> None:
    sqs, seen = _raw_env("my-queue")
    answer = handler(sqs, change_visibility=False)(copy.deepcopy(STANDARD_EVENT), None)
    assert answer == {"batchItemFailures": []}
    assert [m.message_id for m in seen] == [
        "059f36b4-87a3-44ab-83d2-661975830a7d",
        "2e1424d4-f796-459a-8184-9c92662be6da",
    ]
    first = seen[0]
    assert first.body == "Test message."
    assert first.receipt_handle == "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a..."
    assert first.queue_name == "my-queue"
    assert first.receive_count == 1
    assert first.sent_timestamp == 1545082649.183
    assert first.md5_of_body == "e4e68fb7bd0e697a0ae8f1bb342846b3"
    assert first.message_attributes == {}


def test_a_failing_record_alone_is_reported() -> None:
    sqs, seen = _raw_env("my-queue")
    event = copy.deepcopy(STANDARD_EVENT)
    event["Records"][0]["body"] = "please fail"
    answer = handler(sqs, change_visibility=False)(event, None)
    assert answer == {
        "batchItemFailures": [{"itemIdentifier": "059f36b4-87a3-44ab-83d2-661975830a7d"}]
    }
    assert len(seen) == 2  # the second still ran


def test_the_documented_fifo_event_keeps_its_group_and_sequence() -> None:
    sqs, seen = _raw_env("fifo.fifo")
    assert handler(sqs, change_visibility=False)(copy.deepcopy(FIFO_EVENT), None) == {
        "batchItemFailures": []
    }
    (message,) = seen
    assert message.group_id == "1"
    assert message.deduplication_id == "1"
    assert message.attributes["SequenceNumber"] == "18849496460467696128"


def test_a_fifo_failure_reports_it_and_every_later_record_unrun() -> None:
    sqs, seen = _raw_env("fifo.fifo")
    event = copy.deepcopy(FIFO_EVENT)
    first = event["Records"][0]
    records = []
    for i, body in enumerate(["ok", "please fail", "ok", "ok"]):
        record = copy.deepcopy(first)
        record["messageId"] = f"id-{i}"
        record["body"] = body
        record["attributes"]["MessageGroupId"] = "a" if i != 3 else "b"
        records.append(record)
    answer = handler(sqs, change_visibility=False)({"Records": records}, None)
    assert answer == {"batchItemFailures": [{"itemIdentifier": f"id-{i}"} for i in (1, 2, 3)]}
    assert [m.message_id for m in seen] == ["id-0", "id-1"]  # nothing ran after the failure


def test_binary_list_and_number_attributes_are_converted_faithfully() -> None:
    (record,) = BINARY_EVENT["Records"]
    message = message_from_record("SQSQueue", record)
    assert message.message_attributes == {
        "Attribute3": {
            "DataType": "Binary",
            "BinaryValue": b"1100",
            "StringListValues": ["abc", "123"],
            "BinaryListValues": [b"0", b"1", b"0"],
        },
        "Attribute2": {
            "DataType": "Number",
            "StringValue": "123",
            "BinaryListValues": [b"1", b"0"],
        },
        "Attribute1": {"DataType": "String", "StringValue": "AttributeValue1"},
    }
    assert message.receive_count == 2
    assert message.string_attribute("Attribute2") == "123"
    assert message.string_attribute("Attribute3") is None
    sqs, seen = _raw_env("SQSQueue")
    assert handler(sqs, change_visibility=False)(copy.deepcopy(BINARY_EVENT), None) == {
        "batchItemFailures": []
    }
    assert seen[0].message_attributes["Attribute3"]["BinaryValue"] == b"1100"


def test_a_record_lambda_could_not_have_built_is_reported_with_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sqs, seen = _raw_env("my-queue")
    with caplog.at_level(logging.ERROR, logger="sqsw.lambda"):
        answer = handler(sqs, change_visibility=False)(copy.deepcopy(POWERTOOLS_EVENT), None)
    assert answer == {
        "batchItemFailures": [{"itemIdentifier": "059f36b4-87a3-44ab-83d2-661975830a7d"}]
    }
    assert [m.body for m in seen] == ['{"message": "foo1"}']
    (line,) = [r.getMessage() for r in caplog.records]
    assert "059f36b4-87a3-44ab-83d2-661975830a7d" in line
    assert "testAttr" in line and "not valid base64" in line


def test_records_of_an_unknown_queue_are_reported_and_named_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sqs, seen = _raw_env("another-queue")
    with caplog.at_level(logging.ERROR, logger="sqsw.lambda"):
        answer = handler(sqs)(copy.deepcopy(STANDARD_EVENT), None)
    assert len(answer["batchItemFailures"]) == 2 and not seen
    (line,) = [r.getMessage() for r in caplog.records]
    assert "'my-queue'" in line and "another-queue" in line


def test_a_record_without_message_id_fails_the_whole_batch_unrun() -> None:
    sqs, seen = _raw_env("my-queue")
    event = copy.deepcopy(STANDARD_EVENT)
    del event["Records"][1]["messageId"]
    answer = handler(sqs)(event, None)
    assert answer == {
        "batchItemFailures": [
            {"itemIdentifier": "059f36b4-87a3-44ab-83d2-661975830a7d"},
            {"itemIdentifier": ""},  # Lambda: the whole batch failed
        ]
    }
    assert seen == []


@pytest.mark.parametrize("event", [{}, {"Records": "x"}, [], None])
def test_an_event_that_is_not_from_sqs_is_refused_in_one_line(event: Any) -> None:
    sqs, _ = _raw_env("my-queue")
    with pytest.raises(NotAnSQSEventError, match="no Records list"):
        handler(sqs)(event, None)


@pytest.mark.parametrize("concurrency", [1, 2])
def test_the_time_margin_gives_back_what_has_not_run(concurrency: int) -> None:
    class AlmostOut:
        aws_request_id = "r"

        def get_remaining_time_in_millis(self) -> int:
            return 500

    sqs, seen = _raw_env("my-queue")
    answer = handler(sqs, change_visibility=False, time_margin=1.0, concurrency=concurrency)(
        copy.deepcopy(STANDARD_EVENT), AlmostOut()
    )
    assert len(seen) == 1  # the first record always runs
    assert answer == {
        "batchItemFailures": [{"itemIdentifier": "2e1424d4-f796-459a-8184-9c92662be6da"}]
    }


def test_sqs_record_builds_what_message_from_record_reads_back() -> None:
    received = {
        "MessageId": "m-1",
        "ReceiptHandle": "rh",
        "Body": "b",
        "MD5OfBody": "x",
        "Attributes": {"ApproximateReceiveCount": "3"},
        "MessageAttributes": {
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff"},
            "name": {"DataType": "String", "StringValue": "n"},
        },
    }
    record = sqs_record(received, "arn:aws:sqs:eu-west-1:111122223333:q")
    assert record["awsRegion"] == "eu-west-1" and record["eventSource"] == "aws:sqs"
    assert record["messageAttributes"]["blob"] == {
        "binaryValue": "AP8=",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "Binary",
    }
    message = message_from_record("q", record)
    assert message.message_attributes == received["MessageAttributes"]
    assert message.receive_count == 3


def test_sqsw_lambda_runs_an_apps_jobs_through_the_handler(
    ls_env: SQSEnv, tmp_path: Path, endpoint: str
) -> None:
    app = tmp_path / "lambda_app.py"
    app.write_text(
        "from sqsw_core import AWSSession, SQSEnv\n"
        f"sqs = SQSEnv(AWSSession(endpoint_url={endpoint!r}, region_name='us-east-1', "
        "aws_access_key_id='test', aws_secret_access_key='test'), "
        f"queue_prefix={ls_env.queue_prefix!r})\n"
        "@sqs.processor('jobs', 'write')\n"
        "def write(path, text):\n"
        "    open(path, 'a').write(text)\n"
    )
    create_standard_queue(ls_env, "jobs")
    out = tmp_path / "out.txt"
    for text in "abc":
        ls_env.queue("jobs").add_job("write", path=str(out), text=text)
    result = run_sqsw(
        "lambda", "jobs", "--app", "lambda_app:sqs", "--idle", "1.5",
        cwd=tmp_path, env=cli_environ(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(out.read_text()) == ["a", "b", "c"]
    assert "0 reported as failed" in result.stderr
    expect_counts(ls_env.queue("jobs"), (0, 0, 0))


def test_the_readmes_lambda_example_runs_as_written(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("## Running on AWS Lambda") : readme.index("## Running on Kube")]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 2 and "sqsw_lambda.handler(sqs)" in blocks[0]
    script = tmp_path / "try_lambda.py"
    script.write_text(blocks[1])
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "Sending Hello from Lambda to user@example.com",
        "1 invocation(s)",
    ]


def test_a_job_raising_system_exit_stops_the_batch_without_raising_out() -> None:
    sqs = SQSEnv(MemorySession())
    seen: list[str] = []

    @sqs.queue("my-queue", "raw").raw_processor()
    def on_message(message: Message) -> None:
        seen.append(message.message_id)
        raise SystemExit(3)

    answer = handler(sqs, change_visibility=False)(copy.deepcopy(STANDARD_EVENT), None)
    assert seen == ["059f36b4-87a3-44ab-83d2-661975830a7d"]  # the second never ran
    assert answer == {
        "batchItemFailures": [
            {"itemIdentifier": "059f36b4-87a3-44ab-83d2-661975830a7d"},
            {"itemIdentifier": "2e1424d4-f796-459a-8184-9c92662be6da"},
        ]
    }


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"concurrency": 0}, "concurrency must be an int >= 1, got 0"),
        ({"time_margin": -1}, "time_margin must be >= 0 seconds, got -1"),
    ],
)
def test_bad_handler_options_are_refused_in_one_line(options: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        handler(SQSEnv(MemorySession()), **options)
    assert str(refused.value) == error


def test_on_fifo_nothing_after_a_bad_record_runs() -> None:
    sqs, seen = _raw_env("fifo.fifo")
    first = FIFO_EVENT["Records"][0]
    records = []
    for i in range(3):
        record = copy.deepcopy(first)
        record["messageId"] = f"id-{i}"
        records.append(record)
    records[1]["messageAttributes"] = {"bad": {"binaryValue": "%%%", "dataType": "Binary"}}
    answer = handler(sqs, change_visibility=False)({"Records": records}, None)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "id-1"}, {"itemIdentifier": "id-2"}]}
    assert [m.message_id for m in seen] == ["id-0"]
