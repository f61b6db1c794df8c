"""pytest fixtures for testing code that uses sqsw, on the in-memory SQS.

Installed with sqsw-memory (entry point ``pytest11``), so any project that
has it in its test dependencies gets:

``sqsw_env``
    A :class:`TestEnv` (an ``SQSEnv`` on a fresh ``MemorySession``) whose
    queues are created on first use. ``sqsw_env.run_until_idle("emails")``
    runs queued jobs until none is left; ``sqsw_env.enqueued("emails")`` lists
    what is queued without consuming it; ``sqsw_env.assert_enqueued(...)``.
``sqsw_enqueued``
    ``sqsw_enqueued("emails")``: the jobs queued on ``sqsw_env``, decoded.
``run_jobs``
    ``run_jobs("emails", ...)``: ``sqsw_env.run_until_idle`` as a function.

To test an application's own environment (created at import time), point it
at the test's memory session: ``sqsw_env.adopt(myapp.sqs)`` reconfigures it
for the test and restores it afterwards, and returns a ``TestEnv`` view of it.
Override the ``sqsw_env_options`` fixture to pass ``SQSEnv`` options.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from sqsw_core import SQSEnv
from sqsw_core.exceptions import QueueNotFoundError
from sqsw_core.messages import CONTENT_TYPE_ATTR, JOB_NAME_ATTR
from sqsw_core.queue_management import create_fifo_queue, create_standard_queue
from sqsw_core.results import BatchProcessingResult
from sqsw_memory.session import MemorySession

__all__ = ["AdoptedEnv", "EnqueuedJob", "TestEnv"]


@dataclass(frozen=True)
class EnqueuedJob:
    """A job waiting in a queue: its name and decoded keyword arguments."""

    job_name: str | None
    kwargs: dict[str, Any]
    message_id: str
    receive_count: int


class _Helpers:
    """Test helpers over ``self.target`` (an ``SQSEnv`` on a ``MemorySession``)."""

    @property
    def target(self) -> SQSEnv:
        raise NotImplementedError

    def run_until_idle(self, *queue_names: str, max_rounds: int = 10_000) -> BatchProcessingResult:
        """Run jobs of ``queue_names`` (default: every queue used) until none is visible.

        Jobs a job enqueues run too. A failed job is retried when its backoff
        lets it, until a round brings only jobs that already failed. Returns
        the combined result.
        """
        return run_until_idle(self.target, *queue_names, max_rounds=max_rounds)

    def enqueued(self, queue_name: str) -> list[EnqueuedJob]:
        """The jobs queued on ``queue_name`` now, oldest first, left in place."""
        return enqueued(self.target, queue_name)

    def assert_enqueued(self, queue_name: str, job_name: str, **kwargs: Any) -> EnqueuedJob:
        """Assert a job ``job_name`` with (at least) ``kwargs`` is queued; return it."""
        jobs = self.enqueued(queue_name)
        for job in jobs:
            if job.job_name == job_name and all(
                k in job.kwargs and job.kwargs[k] == v for k, v in kwargs.items()
            ):
                return job
        listed = "\n  ".join(f"{j.job_name}({j.kwargs})" for j in jobs) or "(empty)"
        raise AssertionError(
            f"no job {job_name!r} with {kwargs} in queue {queue_name!r}; queued:\n  {listed}"
        )


class AdoptedEnv(_Helpers):
    """The test helpers for an application's own ``SQSEnv`` (see ``TestEnv.adopt``)."""

    def __init__(self, env: SQSEnv) -> None:
        self.env = env

    @property
    def target(self) -> SQSEnv:
        return self.env


class TestEnv(_Helpers, SQSEnv):
    """An ``SQSEnv`` on a ``MemorySession`` with helpers for tests."""

    __test__ = False  # not a test class, whatever pytest thinks of its name

    def __init__(self, session: Any = None, **options: Any) -> None:
        super().__init__(session if session is not None else MemorySession(), **options)
        self._restore: list[Callable[[], None]] = []

    @property
    def target(self) -> SQSEnv:
        return self

    def queue(self, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        """The queue, created in the memory session on first use (FIFO: content dedup)."""
        ensure_queue(self, queue_name)
        return super().queue(queue_name, *args, **kwargs)

    def adopt(self, env: SQSEnv) -> AdoptedEnv:
        """Point ``env`` (an app's) at this memory session until the test ends.

        Its queues are created here; returns the test helpers for it.
        """
        old_session = env.session
        env.reconfigure(session=self.session)

        def restore() -> None:
            env.reconfigure(session=old_session)

        self._restore.append(restore)
        for name in env.queues:
            ensure_queue(env, name)
        return AdoptedEnv(env)

    def close(self) -> None:
        """Undo ``adopt``."""
        while self._restore:
            self._restore.pop()()


def _memory_queue(env: SQSEnv, queue_name: str) -> Any:
    session = env.session
    if not isinstance(session, MemorySession):
        raise TypeError(f"{env!r} is not on a MemorySession: use sqsw_env or sqsw_env.adopt()")
    return session.registry().by_queue_name(env.get_sqs_queue_name(queue_name))


def ensure_queue(env: SQSEnv, queue_name: str) -> None:
    """Create ``queue_name`` in the env's memory session unless it exists."""
    if not isinstance(env.session, MemorySession):
        return
    try:
        _memory_queue(env, queue_name)
    except Exception:
        if queue_name.endswith(".fifo"):
            create_fifo_queue(env, queue_name, content_based_deduplication=True)
        else:
            create_standard_queue(env, queue_name)


def enqueued(env: SQSEnv, queue_name: str) -> list[EnqueuedJob]:
    """The jobs waiting in ``queue_name`` (visible, delayed or in flight), decoded."""
    try:
        memory_queue = _memory_queue(env, queue_name)
    except TypeError:
        raise
    except Exception:  # the memory client's QueueDoesNotExist
        raise QueueNotFoundError(queue_name, f"queue {queue_name!r} does not exist") from None
    with memory_queue.lock:
        messages = sorted(memory_queue.messages.values(), key=lambda m: m.seq)
    jobs = []
    for m in messages:
        attributes = m.attributes or {}
        name = (attributes.get(JOB_NAME_ATTR) or {}).get("StringValue")
        content_type = (attributes.get(CONTENT_TYPE_ATTR) or {}).get("StringValue")
        codec = env.get_codec(content_type) if content_type else env.codec
        jobs.append(EnqueuedJob(name, codec.deserialize(m.body), m.message_id, m.receive_count))
    return jobs


def run_until_idle(
    env: SQSEnv, *queue_names: str, max_rounds: int = 10_000
) -> BatchProcessingResult:
    """Process batches of ``queue_names`` (default: all used) until nothing more runs.

    A job that failed is retried when its backoff lets it, but the run stops
    once a round brings only jobs that already failed in it (a job that always
    fails ends the run instead of looping); ``failed`` lists each failure.
    """
    total = BatchProcessingResult(",".join(queue_names))
    failed_ids: set[str] = set()
    for _ in range(max_rounds):
        names = list(queue_names) or list(env.queues)
        progress = False
        for name in names:
            result = env.queue(name).process_batch(wait_seconds=0)
            total.succeeded.extend(result.succeeded)
            total.failed.extend(result.failed)
            new_failures = {m.message_id for m in result.failed} - failed_ids
            failed_ids.update(new_failures)
            progress = progress or bool(result.succeeded or new_failures)
        if not progress:
            return total
    raise AssertionError(f"queues {queue_names} still busy after {max_rounds} rounds")


@pytest.fixture
def sqsw_env_options() -> dict[str, Any]:
    """``SQSEnv`` options of ``sqsw_env``; override this fixture to change them."""
    return {}


@pytest.fixture
def sqsw_env(sqsw_env_options: dict[str, Any]) -> Iterator[TestEnv]:
    """An ``SQSEnv`` on a fresh in-memory SQS, queues created on first use."""
    env = TestEnv(**sqsw_env_options)
    try:
        yield env
    finally:
        env.close()


@pytest.fixture
def sqsw_enqueued(sqsw_env: TestEnv) -> Callable[[str], list[EnqueuedJob]]:
    """``sqsw_enqueued("emails")``: the jobs queued on ``sqsw_env``, not consumed."""
    return sqsw_env.enqueued


@pytest.fixture
def run_jobs(sqsw_env: TestEnv) -> Callable[..., BatchProcessingResult]:
    """``run_jobs("emails", ...)``: run queued jobs of ``sqsw_env`` until the queues are idle."""
    return sqsw_env.run_until_idle
