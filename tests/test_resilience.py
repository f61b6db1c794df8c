"""Transient SQS failures are retried (and logged); permanent ones raise at once.

Failures are injected into the real client: a botocore ``before-call`` event
hook on LocalStack, a wrapping client on the memory backend.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from sqsw_core import (
    AWSSession,
    QueueNotFoundError,
    SQSCallError,
    SQSEnv,
    create_standard_queue,
    poller,
)
from sqsw_core.exceptions import ConfigurationError
from sqsw_core.poller import MISSING_QUEUE_ATTEMPTS
from sqsw_core.retries import RetryPolicy, is_transient
from sqsw_core.shutdown_policies import IdleShutdown
from tests.helpers import InterceptedClient, expect_counts, operation_name

FAST = RetryPolicy(max_attempts=5, initial=0.01, max_wait=0.05)


@dataclass
class Fault:
    """An injected failure: an SQS error response (``code``) or a botocore exception."""

    code: str | None = None
    status: int = 400
    exception: Callable[[], Exception] | None = None

    def parsed(self) -> dict[str, Any]:
        return {
            "Error": {"Code": self.code, "Message": f"injected {self.code}"},
            "ResponseMetadata": {"HTTPStatusCode": self.status},
        }

    def raise_for(self, operation: str) -> None:
        if self.exception is not None:
            raise self.exception()
        raise ClientError(self.parsed(), operation)  # type: ignore[arg-type]


def throttled() -> Fault:
    return Fault("ThrottlingException", 400)


def unavailable() -> Fault:
    return Fault("ServiceUnavailable", 503)


def dropped(cls: type[Exception]) -> Fault:
    return Fault(exception=lambda: cls(endpoint_url="http://127.0.0.1:1"))


class Injector:
    """Fails the first ``count`` calls of chosen operations; counts every call."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.faults: dict[str, list[Fault]] = {}

    def fail(self, method: str, count: int, fault: Fault) -> None:
        self.faults[operation_name(method)] = [fault] * count

    def fail_in_turn(self, method: str, *faults: Fault) -> None:
        """Fail the first calls of ``method`` with ``faults``, one each, in order."""
        self.faults[operation_name(method)] = list(faults)

    def on_call(self, operation: str) -> Fault | None:
        """Count a call of ``operation``; the fault it must fail with, if any."""
        self.calls[operation] += 1
        faults = self.faults.get(operation, [])
        number = self.calls[operation]
        return faults[number - 1] if number <= len(faults) else None

    def count(self, method: str) -> int:
        return self.calls[operation_name(method)]


class FlakyClient(InterceptedClient):
    """Test-only wrapper of a memory SQS client that fails calls as told."""

    def __init__(self, client: Any, injector: Injector) -> None:
        super().__init__(client)
        self._injector = injector

    def intercept(self, operation: str, target: Callable[..., Any], params: dict[str, Any]) -> Any:
        fault = self._injector.on_call(operation)
        if fault is not None:
            fault.raise_for(operation)
        return target(**params)


def _hook_client(client: Any, injector: Injector) -> None:
    """Inject into a botocore client: ``before-call`` answers (or raises) in SQS's place."""

    def before_call(model: Any, **_: Any) -> Any:
        fault = injector.on_call(model.name)
        if fault is None:
            return None
        if fault.exception is not None:
            raise fault.exception()
        http = AWSResponse(client.meta.endpoint_url, fault.status, {}, None)
        return http, fault.parsed()

    client.meta.events.register("before-call.sqs", before_call)


@pytest.fixture
def flaky_env(
    backend: str, session: Any, make_env: Callable[..., SQSEnv]
) -> Callable[..., tuple[SQSEnv, Injector]]:
    """``flaky_env(**SQSEnv options)``: an env whose client fails as its injector says."""

    def factory(**kwargs: Any) -> tuple[SQSEnv, Injector]:
        injector = Injector()
        kwargs.setdefault("retry", FAST)
        if backend == "memory":
            env = make_env(sqs_client=FlakyClient(session.client("sqs"), injector), **kwargs)
        else:
            env = make_env(**kwargs)
            _hook_client(env.sqs_client, injector)
        return env, injector

    return factory


def _retry_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "sqsw.retries"]


def test_throttled_receives_are_retried_without_losing_jobs(
    flaky_env: Callable[..., tuple[SQSEnv, Injector]], caplog: pytest.LogCaptureFixture
) -> None:
    env, injector = flaky_env()
    create_standard_queue(env, "jobs")
    queue = env.queue("jobs")
    seen: list[int] = []

    @queue.processor("job")
    def job(n: int) -> None:
        seen.append(n)

    for n in range(5):
        job.delay(n=n)
    injector.fail("receive_message", 2, throttled())
    with caplog.at_level(logging.WARNING, logger="sqsw.retries"):
        for _ in range(10):
            queue.process_batch(wait_seconds=1)
            if len(seen) == 5:
                break
    assert sorted(seen) == list(range(5))
    logs = _retry_logs(caplog)
    assert len(logs) == 2
    assert "receive_message" in logs[0]
    assert "'jobs'" in logs[0]
    assert "attempt 1 of 5" in logs[0]
    assert "attempt 2 of 5" in logs[1]
    assert "ThrottlingException" in logs[0]
    assert all(r.levelno == logging.WARNING for r in caplog.records if r.name == "sqsw.retries")


@pytest.mark.parametrize(
    "error", [EndpointConnectionError, ConnectionClosedError, ReadTimeoutError, ConnectTimeoutError]
)
def test_dropped_connections_are_retried(
    flaky_env: Callable[..., tuple[SQSEnv, Injector]],
    caplog: pytest.LogCaptureFixture,
    error: type[Exception],
) -> None:
    env, injector = flaky_env()
    create_standard_queue(env, "jobs")
    queue = env.queue("jobs")
    seen: list[int] = []

    @queue.processor("job")
    def job(n: int) -> None:
        seen.append(n)

    injector.fail("send_message", 1, dropped(error))
    injector.fail("delete_message_batch", 1, unavailable())
    with caplog.at_level(logging.WARNING, logger="sqsw.retries"):
        assert job.delay(n=1)
        result = queue.process_batch(wait_seconds=2)
    assert result.succeeded_count() == 1
    assert seen == [1]
    assert injector.count("send_message") == 2
    assert injector.count("delete_message_batch") == 2  # the ack was retried, not lost
    assert queue.runner.acker.failed_acks == 0
    logs = _retry_logs(caplog)
    assert any("send_message" in m and error.__name__ in m for m in logs)
    assert any("delete_message_batch" in m and "ServiceUnavailable" in m for m in logs)


def test_a_queue_missing_after_an_outage_is_not_given_up_at_once(
    flaky_env: Callable[..., tuple[SQSEnv, Injector]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Receives that could not reach SQS say nothing about the queue: a server back from a
    restart without the queue for a moment (not re-created yet) does not stop the worker,
    which gives up only after MISSING_QUEUE_ATTEMPTS answers in a row found it gone."""
    monkeypatch.setattr(poller, "RECEIVE_RETRY_DELAYS", (0.05,) * 5)
    env, injector = flaky_env(retry=RetryPolicy(max_attempts=1))
    create_standard_queue(env, "outage")
    queue = env.queue("outage")
    ran: list[int] = []
    queue.connect_processor("job", lambda n: ran.append(n))
    queue.add_job("job", n=1)
    outage = [dropped(EndpointConnectionError)] * (MISSING_QUEUE_ATTEMPTS - 1)
    gone = Fault("AWS.SimpleQueueService.NonExistentQueue", 400)
    injector.fail_in_turn("receive_message", *outage, gone)
    with caplog.at_level(logging.WARNING, logger="sqsw"):
        queue.process_queue(IdleShutdown(1), wait_seconds=1, concurrency=1, pollers=1)
    assert ran == [1]
    assert injector.count("receive_message") > MISSING_QUEUE_ATTEMPTS
    assert not any("no longer exists" in r.getMessage() for r in caplog.records)
    assert any(f"receive 1 of {MISSING_QUEUE_ATTEMPTS}" in r.getMessage() for r in caplog.records)
    expect_counts(queue, (0, 0, 0), "after the run")


def test_missing_queue_is_not_retried(flaky_env: Callable[..., tuple[SQSEnv, Injector]]) -> None:
    env, injector = flaky_env()
    with pytest.raises(QueueNotFoundError, match=r"'nowhere'.*get_queue_url"):
        env.queue("nowhere").add_job("job", n=1)
    assert injector.count("get_queue_url") == 1


def test_invalid_parameter_is_not_retried(
    flaky_env: Callable[..., tuple[SQSEnv, Injector]],
) -> None:
    env, injector = flaky_env()
    create_standard_queue(env, "jobs")
    injector.fail("send_message", 1, Fault("InvalidParameterValue", 400))
    with pytest.raises(SQSCallError, match=r"send_message on queue 'jobs'.*InvalidParameterValue"):
        env.queue("jobs").add_job("job", n=1)
    assert injector.count("send_message") == 1


def test_permanent_error_after_a_transient_one_raises_at_once(
    flaky_env: Callable[..., tuple[SQSEnv, Injector]],
) -> None:
    env, injector = flaky_env()
    create_standard_queue(env, "jobs")
    queue = env.queue("jobs")
    queue.url  # noqa: B018 - looked up before the faults
    env.sqs_client.delete_queue(QueueUrl=queue.url)
    injector.fail("send_message", 1, throttled())
    with pytest.raises(QueueNotFoundError, match="'jobs'"):
        queue.add_job("job", n=1)
    assert injector.count("send_message") == 2


@pytest.mark.parametrize("fault", [unavailable(), dropped(EndpointConnectionError)])
def test_exhausted_retries_raise_sqs_call_error(
    flaky_env: Callable[..., tuple[SQSEnv, Injector]],
    caplog: pytest.LogCaptureFixture,
    fault: Fault,
) -> None:
    env, injector = flaky_env(retry=RetryPolicy(max_attempts=3, initial=0.01, max_wait=0.02))
    create_standard_queue(env, "jobs")
    injector.fail("receive_message", 100, fault)
    with (
        caplog.at_level(logging.WARNING, logger="sqsw.retries"),
        pytest.raises(SQSCallError) as info,
    ):
        env.queue("jobs").process_batch()
    message = str(info.value)
    assert "receive_message on queue 'jobs'" in message
    assert "after 3 attempts" in message
    assert (fault.code or "EndpointConnectionError") in message
    assert info.value.operation == "receive_message"
    assert info.value.queue_name == "jobs"
    assert injector.count("receive_message") == 3
    assert len(_retry_logs(caplog)) == 2


def test_max_attempts_one_turns_retries_off(
    flaky_env: Callable[..., tuple[SQSEnv, Injector]],
) -> None:
    env, injector = flaky_env(retry=RetryPolicy(max_attempts=1))
    create_standard_queue(env, "jobs")
    injector.fail("receive_message", 1, throttled())
    with pytest.raises(SQSCallError, match="ThrottlingException"):
        env.queue("jobs").process_batch()
    assert injector.count("receive_message") == 1


def test_retry_policy_is_validated() -> None:
    with pytest.raises(ConfigurationError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ConfigurationError, match="max_wait"):
        RetryPolicy(initial=3, max_wait=1)


def test_waits_grow_exponentially_with_jitter_up_to_max_wait() -> None:
    policy = RetryPolicy(initial=0.1, max_wait=0.5)

    def wait(attempt: int) -> float:
        return policy.wait(SimpleNamespace(attempt_number=attempt))  # type: ignore[arg-type]

    for _ in range(20):
        assert 0.1 <= wait(1) <= 0.2
        assert 0.2 <= wait(2) <= 0.3
        assert 0.4 <= wait(3) <= 0.5
        assert wait(6) == 0.5


def test_transient_classification() -> None:
    def client_error(code: str, status: int) -> ClientError:
        return ClientError(
            {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}},  # type: ignore[typeddict-item]
            "SendMessage",
        )

    assert is_transient(client_error("AWS.SimpleQueueService.RequestThrottled", 403))
    assert is_transient(client_error("SlowDown", 503))
    assert is_transient(client_error("Whatever", 502))
    assert is_transient(client_error("", 429))
    assert not is_transient(client_error("AccessDenied", 403))
    assert not is_transient(client_error("AWS.SimpleQueueService.NonExistentQueue", 400))
    assert is_transient(ReadTimeoutError(endpoint_url="http://x"))
    assert not is_transient(ValueError("x"))


def test_botocore_does_not_retry_under_sqsw() -> None:
    """One retry layer: the boto3 clients of AWSSession make a single attempt."""
    client = AWSSession(
        endpoint_url="http://127.0.0.1:1",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    ).client("sqs")
    assert client.meta.config.retries["total_max_attempts"] == 1
