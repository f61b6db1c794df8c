"""Retry delay policies: how long a failed message stays hidden before a retry.

Policies are plugins (group ``sqsw.backoff``): ``exponential`` (the default),
``constant`` and ``immediate``.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from sqsw_core.limits import MAX_VISIBILITY_TIMEOUT as MAX_VISIBILITY_TIMEOUT

if TYPE_CHECKING:
    from sqsw_core.messages import Message


@runtime_checkable
class BackoffPolicy(Protocol):
    """Decides the visibility timeout given to a message whose job failed."""

    def get_visibility_timeout(self, message: Message) -> float:
        """Seconds until the failed ``message`` is delivered again."""
        ...


def is_backoff_policy(obj: Any) -> bool:
    """Whether ``obj`` can serve as a backoff policy (has ``get_visibility_timeout``)."""
    return callable(getattr(obj, "get_visibility_timeout", None))


def clamp_visibility(seconds: float) -> int:
    """Round to whole seconds within what SQS accepts (0 to 12 hours)."""
    return max(0, min(MAX_VISIBILITY_TIMEOUT, round(seconds)))


class ConstantBackoff:
    """Retry after the same delay every time (0: immediately)."""

    def __init__(self, backoff_value: float = 0) -> None:
        if backoff_value < 0:
            raise ValueError(f"backoff_value must be >= 0, got {backoff_value!r}")
        self.backoff_value = backoff_value

    def get_visibility_timeout(self, message: Message) -> float:
        return self.backoff_value

    def __repr__(self) -> str:
        return f"ConstantBackoff({self.backoff_value!r})"


class ImmediateReturn(ConstantBackoff):
    """Return a failed message to the queue at once (the ``immediate`` plugin)."""

    def __init__(self) -> None:
        super().__init__(0)

    def __repr__(self) -> str:
        return "ImmediateReturn()"


class ExponentialBackoff:
    """Delay ``min + multiplier * base ** (receive_count - 1)`` seconds, jittered.

    The delay is drawn from a normal distribution around that value (10 %
    spread) so failing jobs do not retry in lock-step, then bounded by
    ``min_visibility_timeout`` and ``max_visibility_timeout``.
    """

    def __init__(
        self,
        base: float = 2,
        min_visibility_timeout: float = 0,
        max_visibility_timeout: float = 30 * 60,
        multiplier: float = 1,
        jitter: float = 0.1,
        *,
        max_visbility_timeout: float | None = None,
    ) -> None:
        if max_visbility_timeout is not None:  # the sqs-workers spelling
            max_visibility_timeout = max_visbility_timeout
        if base < 1 or multiplier < 0 or min_visibility_timeout < 0:
            raise ValueError("ExponentialBackoff needs base >= 1, multiplier >= 0, min >= 0")
        if max_visibility_timeout < min_visibility_timeout:
            raise ValueError("max_visibility_timeout must be >= min_visibility_timeout")
        self.base = base
        self.min_visibility_timeout = min_visibility_timeout
        self.max_visibility_timeout = max_visibility_timeout
        self.multiplier = multiplier
        self.jitter = jitter

    def get_visibility_timeout(self, message: Message) -> float:
        previous_receives = max(0, message.receive_count - 1)
        # Cap the exponent: beyond it the max bound applies anyway.
        mu = self.min_visibility_timeout + self.multiplier * self.base ** min(previous_receives, 64)
        if self.jitter:
            mu = random.normalvariate(mu, mu * self.jitter)
        return max(self.min_visibility_timeout, min(self.max_visibility_timeout, mu))

    def __repr__(self) -> str:
        return (
            f"ExponentialBackoff(base={self.base!r}, "
            f"min_visibility_timeout={self.min_visibility_timeout!r}, "
            f"max_visibility_timeout={self.max_visibility_timeout!r}, "
            f"multiplier={self.multiplier!r})"
        )


DEFAULT_BACKOFF = ExponentialBackoff()
IMMEDIATE_RETURN = ImmediateReturn()
