"""Retry delay policies: how long a failed message stays hidden before a retry.

Policies are plugins (group ``sqsw.backoff``): ``exponential`` (the default),
``constant`` and ``immediate``.
"""

from __future__ import annotations

import math
import random
import warnings
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
    ``min_visibility_timeout`` and ``max_visibility_timeout`` (the max wins
    when they cross, as in sqs-workers). Every number sqs-workers accepts is
    accepted; values that make no sense (a base below 1, a negative
    multiplier or bound, max below min) give a ``UserWarning`` once.
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
        values = {
            "base": base,
            "min_visibility_timeout": min_visibility_timeout,
            "max_visibility_timeout": max_visibility_timeout,
            "multiplier": multiplier,
            "jitter": jitter,
        }
        for name, value in values.items():
            _check_number(name, value)
        _warn_odd_values(values)
        self.base = base
        self.min_visibility_timeout = min_visibility_timeout
        self.max_visibility_timeout = max_visibility_timeout
        self.multiplier = multiplier
        self.jitter = jitter

    def get_visibility_timeout(self, message: Message) -> float:
        previous_receives = max(0, message.receive_count - 1)
        # Cap the exponent: beyond it the max bound applies anyway.
        try:
            growth = self.base ** min(previous_receives, 64)
        except OverflowError:
            return self.max_visibility_timeout
        mu = self.min_visibility_timeout + self.multiplier * growth
        if self.jitter and math.isfinite(mu):
            mu = random.normalvariate(mu, abs(mu * self.jitter))
        return min(self.max_visibility_timeout, max(self.min_visibility_timeout, mu))

    def __repr__(self) -> str:
        return (
            f"ExponentialBackoff(base={self.base!r}, "
            f"min_visibility_timeout={self.min_visibility_timeout!r}, "
            f"max_visibility_timeout={self.max_visibility_timeout!r}, "
            f"multiplier={self.multiplier!r})"
        )


def _check_number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"ExponentialBackoff({name}={value!r}): expected a number of "
            f"{'seconds' if 'timeout' in name else 'times'}, got {type(value).__name__}"
        )
    if math.isnan(value):
        raise ValueError(f"ExponentialBackoff({name}=nan): expected a number")


#: The odd-value warnings already given in this process (each is given once).
_warned: set[str] = set()


def _warn_odd_values(values: dict[str, float]) -> None:
    """Warn, once per distinct message, about values accepted but unlikely meant."""
    base, multiplier = values["base"], values["multiplier"]
    low, high = values["min_visibility_timeout"], values["max_visibility_timeout"]
    odd: list[str] = []
    if base < 1:
        odd.append(f"base={base!r} is below 1: the delay shrinks (or alternates) with retries")
    if multiplier < 0:
        odd.append(f"multiplier={multiplier!r} is negative: every delay is the minimum")
    if low < 0:
        odd.append(f"min_visibility_timeout={low!r} is negative: SQS's minimum, 0, applies")
    if high < low:
        odd.append(
            f"max_visibility_timeout={high!r} is below min_visibility_timeout={low!r}: "
            "every delay is the maximum"
        )
    if values["jitter"] < 0:
        odd.append(f"jitter={values['jitter']!r} is negative: its size is used")
    for text in odd:
        if text not in _warned:
            _warned.add(text)
            warnings.warn(f"ExponentialBackoff: {text}", UserWarning, stacklevel=3)


DEFAULT_BACKOFF = ExponentialBackoff()
IMMEDIATE_RETURN = ImmediateReturn()
