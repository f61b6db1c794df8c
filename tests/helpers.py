"""Helpers shared by the behaviour tests."""

from __future__ import annotations

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
