"""Backends for the behaviour tests: every test taking ``sqs`` runs on each.

``memory`` is the in-memory session, ``localstack`` a real SQS-compatible
server (started by ``scripts/test.sh`` or on demand), and ``aws`` real AWS,
only when ``SQSW_TEST_AWS=1`` and credentials are configured. Select with
``pytest -k memory`` / ``-k localstack`` / ``-k aws``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sqsw_core import AWSSession, SQSEnv
from tests.localstack_server import REGION, SKIP_REASON, localstack_endpoint

BACKENDS = ["memory", "localstack"] + (["aws"] if os.environ.get("SQSW_TEST_AWS") == "1" else [])

_localstack_session: AWSSession | None = None


def make_session(backend: str) -> Any:
    """A fresh session object for ``backend`` (skips when it is not available)."""
    global _localstack_session
    if backend == "memory":
        from sqsw_memory import MemorySession

        return MemorySession()
    if backend == "localstack":
        endpoint = localstack_endpoint()
        if endpoint is None:
            pytest.skip(SKIP_REASON)
        if _localstack_session is None or _localstack_session.endpoint_url != endpoint:
            _localstack_session = AWSSession(
                endpoint_url=endpoint,
                region_name=REGION,
                aws_access_key_id="test",
                aws_secret_access_key="test",
            )
        return _localstack_session
    if backend == "aws":
        return AWSSession()
    raise ValueError(backend)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def session(backend: str) -> Any:
    return make_session(backend)


@pytest.fixture
def queue_prefix() -> str:
    """A prefix unique to the test, so tests never see each other's queues."""
    return f"t{uuid.uuid4().hex[:10]}_"


@pytest.fixture
def make_env(session: Any, queue_prefix: str) -> Iterator[Callable[..., SQSEnv]]:
    """Build ``SQSEnv``s on the test's backend and prefix; their queues are deleted after."""
    envs: list[SQSEnv] = []

    def factory(**kwargs: Any) -> SQSEnv:
        kwargs.setdefault("queue_prefix", queue_prefix)
        env = SQSEnv(session, **kwargs)
        envs.append(env)
        return env

    yield factory
    if envs:
        env = envs[0]
        client = env.sqs_client
        for name in env.get_all_known_queues():
            try:
                client.delete_queue(QueueUrl=env.get_queue_url(name))
            except Exception:  # already deleted by the test
                pass


@pytest.fixture
def sqs(make_env: Callable[..., SQSEnv]) -> SQSEnv:
    """An ``SQSEnv`` with default options on the test's backend."""
    return make_env()


@pytest.fixture
def endpoint() -> str:
    """The LocalStack endpoint, for tests that need a server shared by processes."""
    found = localstack_endpoint()
    if found is None:
        pytest.skip(SKIP_REASON)
    return found


@pytest.fixture
def ls_env(endpoint: str) -> Iterator[SQSEnv]:
    """An ``SQSEnv`` on LocalStack with a prefix of its own; its queues are deleted after."""
    session = AWSSession(
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    env = SQSEnv(session, queue_prefix=f"l{uuid.uuid4().hex[:8]}_")
    yield env
    for name in env.get_all_known_queues():
        try:
            env.sqs_client.delete_queue(QueueUrl=env.get_queue_url(name))
        except Exception:  # already deleted by the test
            pass
