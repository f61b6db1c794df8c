"""Helpers shared by the behaviour tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqsw_core import SQSEnv
from sqsw_core.shutdown_policies import IdleShutdown


def on_memory(env: SQSEnv) -> bool:
    return type(env.session).__name__ == "MemorySession"


def poll(env: SQSEnv) -> int:
    """Long-poll seconds for "is anything left?": LocalStack's timers tick once a second."""
    return 0 if on_memory(env) else 1


def process_until_idle(queue: Any, idle: float | None = None) -> None:
    """Run the worker until the queue stays empty for ``idle`` seconds (default: short)."""
    memory = on_memory(queue.env)
    if idle is None:
        # On FIFO queues the messages after a failed one come back 1 s after it.
        idle = 1.5 if queue.is_fifo else 0.3 if memory else 1.0
    wait = 0 if memory and idle < 1 else 1
    queue.process_queue(shutdown_policy=IdleShutdown(idle), wait_seconds=wait)


REPO = Path(__file__).resolve().parent.parent


def start_worker_process(
    env: SQSEnv, endpoint: str, log: Path, *, capture_output: bool = False, **settings: Any
) -> subprocess.Popen[str]:
    """Start ``tests/apps/worker_app.py`` on queue ``work`` of ``env`` (see its docstring).

    ``settings`` become its ``APP_*`` variables (``sleep=0.02`` -> ``APP_SLEEP``).
    """
    variables = {
        **os.environ,
        "SQSW_TEST_ENDPOINT": endpoint,
        "APP_PREFIX": env.queue_prefix,
        "APP_QUEUE": "work",
        "APP_LOG": str(log),
    }
    variables.update({f"APP_{key.upper()}": str(value) for key, value in settings.items()})
    output = subprocess.PIPE if capture_output else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "tests.apps.worker_app"],
        cwd=REPO,
        env=variables,
        stdout=output,
        stderr=subprocess.STDOUT if capture_output else subprocess.DEVNULL,
        text=True,
    )


def runs_in(log: Path) -> Counter[int]:
    """How many times each job number ran, from a worker app's log."""
    if not log.exists():
        return Counter()
    return Counter(int(line.split()[0]) for line in log.read_text().splitlines() if line)


def operation_name(method: str) -> str:
    """The SQS operation of a boto3 method: ``delete_message_batch`` -> ``DeleteMessageBatch``."""
    return "".join(word.capitalize() for word in method.split("_"))


class InterceptedClient:
    """Test-only wrapper of an SQS client: every API call goes through :meth:`intercept`."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._client, name)
        if name.startswith("_") or not callable(target) or name in ("get_paginator", "meta"):
            return target
        operation = operation_name(name)

        def call(**params: Any) -> Any:
            return self.intercept(operation, target, params)

        return call

    def intercept(self, operation: str, target: Callable[..., Any], params: dict[str, Any]) -> Any:
        """Make the call ``target(**params)`` of ``operation`` (subclasses inject faults)."""
        return target(**params)
