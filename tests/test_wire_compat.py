"""Wire compatibility with the real sqs-workers 0.7.3 (PyPI), on LocalStack.

sqs-workers runs in its own venv (``benchmarks/_baseline.py``) as a
subprocess on the same queue: what one library sends, the other runs, for
every codec, with a context, and on a FIFO queue.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from benchmarks._baseline import baseline_python
from sqsw_core import AWSSession, SQSEnv, create_fifo_queue, create_standard_queue
from tests.localstack_server import REGION, SKIP_REASON, localstack_endpoint

CODECS = ["json", "pickle", "pickle_compat"]

#: Runs in the sqs-workers venv: ``send`` or ``process`` jobs, print JSON.
SQS_WORKERS_SCRIPT = r"""
import json, sys, time
import boto3
from sqs_workers import SQSEnv

endpoint, prefix, queue_name, codec, mode, payload = sys.argv[1:7]


class LocalStackSession:
    # sqs-workers calls session.client("sqs", config=...) and session.resource(...).
    def __init__(self):
        self._session = boto3.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
        )

    def client(self, name, **kwargs):
        return self._session.client(name, endpoint_url=endpoint, **kwargs)

    def resource(self, name, **kwargs):
        return self._session.resource(name, endpoint_url=endpoint, **kwargs)


env = SQSEnv(session=LocalStackSession(), queue_prefix=prefix, codec=codec)
queue = env.queue(queue_name)
if mode == "send":
    ids = []
    for job in json.loads(payload):
        env.context.set(**job["context"])
        ids.append(queue.add_job(job["job"], **job["kwargs"]))
        env.context.clear()
    print(json.dumps({"sent": ids}))
else:
    expected = int(payload)
    processed = []

    @queue.processor("plain")
    def plain(**kwargs):
        processed.append({"job": "plain", "kwargs": kwargs, "context": {}})

    @queue.processor("with_context", pass_context=True)
    def with_context(context, **kwargs):
        processed.append({"job": "with_context", "kwargs": kwargs, "context": context.to_dict()})

    deadline = time.time() + 20
    while len(processed) < expected and time.time() < deadline:
        queue.process_batch(wait_seconds=1)
    print(json.dumps({"processed": processed}))
"""


@pytest.fixture(scope="module")
def endpoint() -> str:
    url = localstack_endpoint()
    if url is None:
        pytest.skip(SKIP_REASON)
    return url


@pytest.fixture(scope="module")
def sqs_workers_python() -> Path:
    try:
        return baseline_python()
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot create the sqs-workers 0.7.3 venv (needs PyPI access): {exc}")


def _run_sqs_workers(
    python: Path, endpoint: str, env: SQSEnv, queue: str, codec: str, mode: str, payload: Any
) -> dict[str, Any]:
    out = subprocess.run(
        [
            str(python),
            "-c",
            SQS_WORKERS_SCRIPT,
            endpoint,
            env.queue_prefix,
            queue,
            codec,
            mode,
            json.dumps(payload),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _env(endpoint: str, codec: str) -> SQSEnv:
    session = AWSSession(
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    return SQSEnv(session, queue_prefix=f"w{uuid.uuid4().hex[:10]}_", codec=codec)


def _jobs(codec: str) -> list[dict[str, Any]]:
    return [
        {"job": "plain", "kwargs": {"n": 1, "text": f"héllo {codec}"}, "context": {}},
        {
            "job": "with_context",
            "kwargs": {"n": 2, "items": [1, {"a": None}]},
            "context": {"request_id": "r-42", "user": 7},
        },
    ]


def _process_with_sqsw(env: SQSEnv, queue_name: str, expected: int) -> list[dict[str, Any]]:
    queue = env.queue(queue_name)
    processed: list[dict[str, Any]] = []

    @queue.processor("plain")
    def plain(**kwargs: Any) -> None:
        processed.append({"job": "plain", "kwargs": kwargs, "context": {}})

    @queue.processor("with_context", pass_context=True)
    def with_context(context: Any, **kwargs: Any) -> None:
        processed.append({"job": "with_context", "kwargs": kwargs, "context": context.to_dict()})

    deadline = time.time() + 20
    while len(processed) < expected and time.time() < deadline:
        queue.process_batch(wait_seconds=1)
    return processed


def _cleanup(env: SQSEnv) -> None:
    for name in env.get_all_known_queues():
        env.sqs_client.delete_queue(QueueUrl=env.get_queue_url(name))


@pytest.mark.parametrize("codec", CODECS)
def test_localstack_sqs_workers_jobs_run_on_sqsw(
    endpoint: str, sqs_workers_python: Path, codec: str
) -> None:
    env = _env(endpoint, codec)
    try:
        create_standard_queue(env, "compat")
        jobs = _jobs(codec)
        sent = _run_sqs_workers(sqs_workers_python, endpoint, env, "compat", codec, "send", jobs)
        assert len(sent["sent"]) == len(jobs)
        processed = _process_with_sqsw(env, "compat", len(jobs))
        assert sorted(processed, key=lambda p: p["job"]) == jobs
    finally:
        _cleanup(env)


@pytest.mark.parametrize("codec", CODECS)
def test_localstack_sqsw_jobs_run_on_sqs_workers(
    endpoint: str, sqs_workers_python: Path, codec: str
) -> None:
    env = _env(endpoint, codec)
    try:
        create_standard_queue(env, "compat")
        queue = env.queue("compat")
        jobs = _jobs(codec)
        for job in jobs:
            with env.context(**job["context"]):
                queue.add_job(job["job"], **job["kwargs"])
        result = _run_sqs_workers(
            sqs_workers_python, endpoint, env, "compat", codec, "process", len(jobs)
        )
        assert sorted(result["processed"], key=lambda p: p["job"]) == jobs
    finally:
        _cleanup(env)


def test_localstack_fifo_both_ways_with_default_group(
    endpoint: str, sqs_workers_python: Path
) -> None:
    env = _env(endpoint, "json")
    try:
        create_fifo_queue(env, "compat.fifo", content_based_deduplication=True)
        queue = env.queue("compat.fifo")
        jobs = [{"job": "plain", "kwargs": {"n": n}, "context": {}} for n in range(4)]

        # sqs-workers -> sqsw: group "default", in order.
        _run_sqs_workers(sqs_workers_python, endpoint, env, "compat.fifo", "json", "send", jobs)
        peek = env.sqs_client.receive_message(
            QueueUrl=queue.url,
            AttributeNames=["MessageGroupId"],
            MaxNumberOfMessages=10,
            VisibilityTimeout=0,
            WaitTimeSeconds=2,
        )["Messages"]
        assert {m["Attributes"]["MessageGroupId"] for m in peek} == {"default"}
        assert _process_with_sqsw(env, "compat.fifo", len(jobs)) == jobs

        # sqsw -> sqs-workers: in order (new bodies: content-based dedup would drop repeats).
        jobs = [{"job": "plain", "kwargs": {"n": n}, "context": {}} for n in range(4, 8)]
        for job in jobs:
            queue.add_job(job["job"], **job["kwargs"])
        result = _run_sqs_workers(
            sqs_workers_python, endpoint, env, "compat.fifo", "json", "process", len(jobs)
        )
        assert result["processed"] == jobs
    finally:
        _cleanup(env)
