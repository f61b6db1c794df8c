"""When a worker stops: policies consulted after every batch of messages.

Policies are plugins (group ``sqsw.shutdown``): ``never`` (the default),
``idle`` and ``max_tasks``; ``OrShutdown``/``AndShutdown`` combine them.

A policy may also define ``receive_wait_limit() -> float | None``: the
longest a receive should wait for messages before the policy could say stop
(``None``: no limit). The engine never starts a long poll longer than that,
so ``IdleShutdown(n)`` stops within about a second of ``n`` idle seconds
instead of waiting out a 20-second poll.

A policy that needs only how many jobs ended, not their messages, may define
``jobs_ended(succeeded: int, failed: int)``, doing what ``update_state`` does
with a result of that many succeeded and failed jobs. The engine tells a
policy about every job as it ends; with ``jobs_ended`` it does so without
building a result per job. The policies here all define it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from sqsw_core.results import BatchProcessingResult


def receive_wait_limit(policy: object) -> float | None:
    """``policy.receive_wait_limit()`` where the policy defines it, else ``None``."""
    limit = getattr(policy, "receive_wait_limit", None)
    if limit is None:
        return None
    value = limit()
    return None if value is None else max(0.0, float(value))


def jobs_ended_hook(policy: object) -> Callable[[int, int], None] | None:
    """``policy.jobs_ended`` where the policy defines it (an ``OrShutdown`` or
    ``AndShutdown`` does when each of its policies does), else ``None``: the policy
    is told with ``update_state``."""
    hook: Callable[[int, int], None] | None = getattr(policy, "jobs_ended", None)
    if hook is not None or not isinstance(policy, OrShutdown):
        return hook
    hooks = [jobs_ended_hook(part) for part in policy.policies]
    parts = [part for part in hooks if part is not None]
    if len(parts) < len(hooks):
        return None

    def jobs_ended(succeeded: int, failed: int) -> None:
        for part in parts:
            part(succeeded, failed)

    return jobs_ended


@runtime_checkable
class ShutdownPolicy(Protocol):
    """Told about every processed batch; says when the worker should stop."""

    def update_state(self, batch_processing_result: BatchProcessingResult) -> None: ...

    def need_shutdown(self) -> bool: ...


class NeverShutdown:
    """Run until stopped by a signal."""

    def update_state(self, batch_processing_result: BatchProcessingResult) -> None:
        pass

    def need_shutdown(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NeverShutdown()"


class IdleShutdown:
    """Stop once no message arrived for ``idle_seconds``."""

    def __init__(self, idle_seconds: float) -> None:
        if idle_seconds < 0:
            raise ValueError(f"idle_seconds must be >= 0, got {idle_seconds!r}")
        self.idle_seconds = idle_seconds
        self._is_idle = False
        self._last_seen = time.monotonic()

    def update_state(self, batch_processing_result: BatchProcessingResult) -> None:
        if batch_processing_result.total_count() == 0:
            self._is_idle = True
        else:
            self._is_idle = False
            self._last_seen = time.monotonic()

    def jobs_ended(self, succeeded: int, failed: int) -> None:
        if succeeded or failed:
            self._is_idle = False
            self._last_seen = time.monotonic()

    def need_shutdown(self) -> bool:
        return self._is_idle and time.monotonic() - self._last_seen >= self.idle_seconds

    def receive_wait_limit(self) -> float:
        """Seconds of idleness left before this policy says stop (all of them while busy)."""
        if not self._is_idle:
            return self.idle_seconds
        return self.idle_seconds - (time.monotonic() - self._last_seen)

    def __repr__(self) -> str:
        return f"IdleShutdown({self.idle_seconds!r})"


class MaxTasksShutdown:
    """Stop after at least ``max_tasks`` jobs ran (succeeded or failed)."""

    def __init__(self, max_tasks: int) -> None:
        if max_tasks < 1:
            raise ValueError(f"max_tasks must be >= 1, got {max_tasks!r}")
        self.max_tasks = max_tasks
        self._tasks = 0

    def update_state(self, batch_processing_result: BatchProcessingResult) -> None:
        self._tasks += batch_processing_result.total_count()

    def jobs_ended(self, succeeded: int, failed: int) -> None:
        self._tasks += succeeded + failed

    def need_shutdown(self) -> bool:
        return self._tasks >= self.max_tasks

    def __repr__(self) -> str:
        return f"MaxTasksShutdown({self.max_tasks!r})"


class OrShutdown:
    """Stop when any of the policies says so."""

    def __init__(self, *policies: ShutdownPolicy) -> None:
        self.policies = policies

    def update_state(self, batch_processing_result: BatchProcessingResult) -> None:
        for policy in self.policies:
            policy.update_state(batch_processing_result)

    def need_shutdown(self) -> bool:
        return any(policy.need_shutdown() for policy in self.policies)

    def receive_wait_limit(self) -> float | None:
        """The soonest any of the policies could say stop."""
        limits = [x for x in map(receive_wait_limit, self.policies) if x is not None]
        return min(limits, default=None)

    def __repr__(self) -> str:
        return f"OrShutdown({', '.join(map(repr, self.policies))})"


class AndShutdown(OrShutdown):
    """Stop when all of the policies say so."""

    def need_shutdown(self) -> bool:
        return all(policy.need_shutdown() for policy in self.policies)

    def receive_wait_limit(self) -> float | None:
        """When all of the policies could say stop (no limit if one has none)."""
        limits = [receive_wait_limit(policy) for policy in self.policies]
        if not limits or any(x is None for x in limits):
            return None
        return max(x for x in limits if x is not None)

    def __repr__(self) -> str:
        return f"AndShutdown({', '.join(map(repr, self.policies))})"


NEVER_SHUTDOWN = NeverShutdown()
