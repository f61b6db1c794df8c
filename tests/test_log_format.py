"""``sqsw run --log-format json``: every line on stderr is one JSON object, and job records
carry sqs-workers' ``extra`` fields (``queue_name``, ``job_name``, ``message_id``,
``backoff_policy``).

A worker runs as a subprocess, as in production, on the in-memory SQS and on
LocalStack, with a job that succeeds, one that fails and one that asks to be
retried; it stops once the queue is idle.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from sqsw_core.cli.common import EXIT_OK
from sqsw_core.cli.log_format import JsonFormatter
from tests.localstack_server import REGION, localstack_endpoint

REPO = Path(__file__).resolve().parent.parent

#: Jobs on ``emails``, enqueued when the app is imported: ``ok`` succeeds, ``fail``
#: raises, ``again`` raises RetryJob. APP_ENDPOINT set: LocalStack, with APP_PREFIX.
APP = textwrap.dedent(
    """
    import os

    from sqsw_core import AWSSession, RetryJob, SQSEnv, create_standard_queue

    if os.environ.get("APP_ENDPOINT"):
        session = AWSSession(
            endpoint_url=os.environ["APP_ENDPOINT"],
            region_name=os.environ["APP_REGION"],
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        sqs = SQSEnv(session, queue_prefix=os.environ["APP_PREFIX"])
    else:
        sqs = SQSEnv(session="memory")
    create_standard_queue(sqs, "emails")


    @sqs.processor("emails", "ok")
    def ok(n):
        return n


    @sqs.processor("emails", "fail")
    def fail(n):
        raise ValueError(f"boom {n}")


    @sqs.processor("emails", "again")
    def again():
        raise RetryJob()


    queue = sqs.queue("emails")
    queue.add_job("ok", n=1)
    queue.add_job("fail", n=2)
    queue.add_job("again")
    """
)


def run_worker(tmp_path: Path, variables: dict[str, str], *options: str) -> list[dict[str, Any]]:
    """Run the app's worker until idle; every stderr line parsed as JSON (asserted)."""
    (tmp_path / "log_app.py").write_text(APP)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SQSW_")}
    environ.update(PYTHONPATH=str(REPO), **variables)
    args = ["run", "--app", "log_app:sqs", "--wait-seconds", "1", "--shutdown", "idle=2"]
    result = subprocess.run(
        [sys.executable, "-m", "sqsw_core.cli", *args, *options, "emails"],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == EXIT_OK, result.stderr
    lines = result.stderr.splitlines()
    assert lines, "no log lines"
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}\n{result.stderr}")
        assert isinstance(record, dict), line
        records.append(record)
    return records


def check_records(records: list[dict[str, Any]]) -> None:
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys(), record
        assert record["time"].endswith("Z")
    failure = [r for r in records if r["level"] == "ERROR" and r["logger"] == "sqsw.jobs"]
    assert failure, records  # once, or again after the backoff
    for record in failure:
        assert record["queue_name"] == "emails"
        assert record["job_name"] == "fail"
        assert isinstance(record["message_id"], str) and record["message_id"]
        assert "Backoff" in record["backoff_policy"]
        assert "ValueError: boom 2" in record["exception"]
        assert "Traceback" in record["exception"]
    retried = [r for r in records if r["message"].startswith("Retrying emails.again")]
    assert retried, records
    for record in retried:
        assert record["job_name"] == "again"
        assert record["message_id"] and "Backoff" in record["backoff_policy"]
    # No job record for the job that succeeded: extra fields cost nothing on success.
    assert not [r for r in records if r.get("job_name") == "ok"]


def test_json_logs_on_memory(tmp_path: Path) -> None:
    check_records(run_worker(tmp_path, {}, "--log-format", "json"))


def test_json_logs_on_localstack_from_the_variable(tmp_path: Path) -> None:
    endpoint = localstack_endpoint()
    if endpoint is None:
        pytest.skip("LocalStack is not available")
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    variables = {
        "APP_ENDPOINT": endpoint,
        "APP_REGION": REGION,
        "APP_PREFIX": prefix,
        "SQSW_LOG_FORMAT": "json",
    }
    try:
        records = run_worker(tmp_path, variables)
    finally:
        import boto3

        client = boto3.client(
            "sqs",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        for url in client.list_queues(QueueNamePrefix=prefix).get("QueueUrls", []):
            client.delete_queue(QueueUrl=url)
    check_records(records)


def test_the_formatter_keeps_extra_fields_and_writes_what_json_cannot_hold() -> None:
    record = logging.LogRecord("sqsw.jobs", logging.WARNING, __file__, 1, "x=%s", (1,), None)
    record.queue_name = "emails"
    record.payload = object()
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "x=1"
    assert entry["level"] == "WARNING"
    assert entry["queue_name"] == "emails"
    assert entry["payload"].startswith("<object object")
    assert "exception" not in entry
