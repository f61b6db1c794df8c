"""The allowed values of the engine's options, checked where they come in.

One table of ranges serves every way an option reaches a worker: keyword
arguments of ``process_queue()`` / ``process_queues()`` / ``QueueEngine``,
``sqsw.toml`` / ``[tool.sqsw]`` keys, ``SQSW_*`` variables and ``sqsw run``
flags. A value out of range raises :class:`OptionError` (a
:class:`~sqsw_core.exceptions.ConfigurationError`) naming the option, the
value, the allowed range and, when known, where the value came from
(``option --concurrency``, ``environment variable SQSW_POLLERS``, ``sqsw.toml
key 'max_job_duration'``). Nothing is clamped or rounded silently.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from sqsw_core.exceptions import ConfigurationError
from sqsw_core.limits import MAX_DELAY_SECONDS, MAX_WAIT_SECONDS

__all__ = [
    "PRIORITIES",
    "RANGES",
    "OptionError",
    "OptionRange",
    "check_engine_options",
    "check_option",
    "check_options",
    "check_queues_options",
    "check_shutdown_argument",
    "describe",
    "describe_range",
    "in_range",
    "parse_weights",
]

#: How ``process_queues`` shares its job threads between queues.
PRIORITIES: Final = ("strict", "weighted")


@dataclass(frozen=True)
class OptionRange:
    """What values an option takes: whole numbers or any finite number, and bounds."""

    integer: bool
    minimum: float
    #: ``True``: the minimum itself is not allowed (``> 0`` rather than ``>= 0``).
    exclusive: bool = False
    maximum: float | None = None
    #: Why the maximum is what it is, shown in the error.
    maximum_reason: str = ""
    #: ``None`` is allowed and means "chosen automatically".
    automatic: bool = False


#: Every numeric option of the engine, of ``sqsw run`` and of ``SQSEnv`` that
#: the configuration sets, with its range.
RANGES: Final[dict[str, OptionRange]] = {
    "concurrency": OptionRange(integer=True, minimum=1),
    "async_concurrency": OptionRange(integer=True, minimum=1, automatic=True),
    "pollers": OptionRange(integer=True, minimum=1, automatic=True),
    "prefetch": OptionRange(integer=True, minimum=0, automatic=True),
    "wait_seconds": OptionRange(
        integer=False,
        minimum=0,
        maximum=MAX_WAIT_SECONDS,
        maximum_reason="the longest long poll SQS allows",
    ),
    "grace_period": OptionRange(integer=False, minimum=0),
    "max_job_duration": OptionRange(integer=False, minimum=0, exclusive=True),
    "job_time_limit": OptionRange(integer=False, minimum=0, exclusive=True, automatic=True),
    "stats_interval": OptionRange(integer=False, minimum=0, exclusive=True),
    "workers": OptionRange(integer=True, minimum=1),
    "max_message_size": OptionRange(integer=True, minimum=1),
    "health_port": OptionRange(integer=True, minimum=1, maximum=65535),
    "metrics_port": OptionRange(integer=True, minimum=1, maximum=65535),
    "max_delay_hop": OptionRange(
        integer=True,
        minimum=1,
        maximum=MAX_DELAY_SECONDS,
        maximum_reason="the longest DelaySeconds SQS allows",
    ),
}


class OptionError(ConfigurationError):
    """An option's value is outside its range; the message names option, value and range.

    ``option`` is the option's name, ``value`` what was given, ``expected``
    the allowed values in words and ``source`` where the value came from
    (``None`` for a keyword argument).
    """

    def __init__(self, option: str, value: object, expected: str, source: str | None) -> None:
        where = f"{source}: " if source else ""
        # 2.0 for an integer option is shown as given, not as 2.
        shown = repr(value) if isinstance(value, float) and "integer" in expected else show(value)
        super().__init__(f"{where}{option} must be {expected}, got {shown}")
        self.option = option
        self.value = value
        self.expected = expected
        self.source = source


def check_weight(name: str, weight: object, where: str) -> float:
    """A queue's weight as a float; refused unless a finite number > 0 (``where``: the
    source, for the error)."""
    if (
        isinstance(weight, bool)
        or not isinstance(weight, numbers.Real)
        or not math.isfinite(float(weight))
        or weight <= 0
    ):
        raise ConfigurationError(
            f"{where}weight of queue {name!r} must be a number > 0, got {show(weight)}"
        )
    return float(weight)


def show(value: object) -> str:
    """A value as a user typed it: ``25``, ``-1``, ``nan``, ``0.5``, ``'many'``, ``True``."""
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, bool | int):
        return str(value)
    return repr(value)


def _number(n: float) -> str:
    """``25``, ``-1``, ``0.5``, ``1209600``, ``nan``, ``inf``: as a user would write it."""
    if math.isfinite(n) and float(n).is_integer() and abs(n) < 1e16:
        return str(int(n))
    return repr(float(n))


def describe(option: str) -> str:
    """The allowed values of ``option`` in words: ``an integer >= 1``,
    ``a number from 0 to 20 (the longest long poll SQS allows)``."""
    return describe_range(RANGES[option])


def describe_range(rule: OptionRange) -> str:
    """The values ``rule`` allows, in words."""
    kind = "an integer" if rule.integer else "a number"
    if rule.maximum is not None:
        text = f"{kind} from {_number(rule.minimum)} to {_number(rule.maximum)}"
        if rule.maximum_reason:
            text += f" ({rule.maximum_reason})"
    else:
        text = f"{kind} {'>' if rule.exclusive else '>='} {_number(rule.minimum)}"
    if rule.automatic:
        text += " (None or unset: automatic)"
    return text


def in_range(rule: OptionRange, value: object) -> bool:
    """Whether ``value`` is allowed by ``rule`` (``bool`` is not a number; floats are
    finite; an integer rule takes no fractions, not even ``2.0``)."""
    if value is None:
        return rule.automatic
    if isinstance(value, bool):
        return False
    if rule.integer:
        if not isinstance(value, numbers.Integral):
            return False
    elif not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        return False
    number = float(value)
    too_low = number <= rule.minimum if rule.exclusive else number < rule.minimum
    too_high = rule.maximum is not None and number > rule.maximum
    return not (too_low or too_high)


def check_option(option: str, value: object, source: str | None = None) -> None:
    """Raise :class:`OptionError` unless ``value`` is in ``option``'s range (see
    :func:`in_range`); ``source`` says where the value came from."""
    if not in_range(RANGES[option], value):
        raise OptionError(option, value, describe(option), source)


class _Unset:
    def __repr__(self) -> str:
        return "<not given>"


_UNSET: Final = _Unset()


def check_engine_options(
    *,
    concurrency: object = _UNSET,
    async_concurrency: object = _UNSET,
    pollers: object = _UNSET,
    prefetch: object = _UNSET,
    wait_seconds: object = _UNSET,
    grace_period: object = _UNSET,
    max_job_duration: object = _UNSET,
    stats_interval: object = _UNSET,
    workers: object = _UNSET,
    source: Callable[[str], str] | None = None,
) -> None:
    """Check the engine's options that are given; raise :class:`OptionError` for the first
    one out of range. ``source(option)`` says where a value came from, for the message.

    ``pollers=None`` and ``prefetch=None`` mean automatic; ``None`` for any
    other option is an error (it has no automatic value).
    """
    given = {
        "concurrency": concurrency,
        "async_concurrency": async_concurrency,
        "pollers": pollers,
        "prefetch": prefetch,
        "wait_seconds": wait_seconds,
        "grace_period": grace_period,
        "max_job_duration": max_job_duration,
        "stats_interval": stats_interval,
        "workers": workers,
    }
    for option, value in given.items():
        if value is not _UNSET:
            check_option(option, value, source(option) if source else None)


def check_options(
    options: Mapping[str, object], source: Callable[[str], str] | None = None
) -> None:
    """Check every option of ``options`` that has a range (the others are left to the
    function they are for), e.g. ``process_queue``'s keyword arguments before it starts
    worker processes, so a bad value fails once in the caller, not in every child."""
    for option, value in options.items():
        if option in RANGES:
            check_option(option, value, source(option) if source else None)


def check_queues_options(
    queue_names: Iterable[str],
    *,
    concurrency: object,
    priority: object,
    weights: object,
    source: Callable[[str], str] | None = None,
) -> None:
    """Check ``process_queues``' sharing options: ``concurrency`` (integer >= 1),
    ``priority`` (``strict`` or ``weighted``) and ``weights`` (``None``, or a
    finite number > 0 for each of some of ``queue_names``)."""

    def where(option: str) -> str:
        return f"{source(option)}: " if source else ""

    names = list(queue_names)
    check_option("concurrency", concurrency, source("concurrency") if source else None)
    if priority not in PRIORITIES:
        raise ConfigurationError(
            f"{where('priority')}priority must be 'strict' or 'weighted', got {show(priority)}"
        )
    if weights is None:
        return
    if not isinstance(weights, Mapping):
        raise ConfigurationError(
            f"{where('weights')}weights must map queue names to numbers > 0, got {show(weights)}"
        )
    for name, weight in weights.items():
        if name not in names:
            close = difflib.get_close_matches(str(name), names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigurationError(
                f"{where('weights')}weights name queue {name!r}, which is not one of the queues "
                f"processed ({', '.join(map(repr, names)) or 'none'}){hint}"
            )
        check_weight(name, weight, where("weights"))


def parse_weights(value: object, source: str | None = None) -> dict[str, float]:
    """Queue weights for ``priority="weighted"`` as ``{queue: weight}``.

    Takes ``emails=3,payments=1`` (a flag or variable), a list of ``NAME=W``
    (repeated flags) or a mapping (a config table); each weight must be a finite
    number > 0 and each queue named once. Which queues may be named is checked
    when they are known (:func:`check_queues_options`).
    """
    where = f"{source}: " if source else ""
    form = "NAME=WEIGHT pairs separated by commas, like emails=3,payments=1"
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    pairs: list[tuple[str, object]] = []
    if isinstance(value, Mapping):
        pairs = [(str(name), weight) for name, weight in value.items()]
    elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        for part in value:
            name, sep, text = str(part).partition("=")
            if not sep or not name.strip() or not text.strip():
                raise ConfigurationError(f"{where}weights must be {form}, got {show(part)}")
            number: object = text.strip()
            try:
                number = float(text)
            except ValueError:
                pass
            pairs.append((name.strip(), number))
    else:
        raise ConfigurationError(f"{where}weights must be {form}, got {show(value)}")
    weights: dict[str, float] = {}
    for name, weight in pairs:
        checked = check_weight(name, weight, where)
        if name in weights:
            raise ConfigurationError(f"{where}weights name queue {name!r} twice")
        weights[name] = checked
    return weights


def check_shutdown_argument(spec: str, value: object, source: str) -> None:
    """The number after ``=`` in a shutdown policy spec (``idle=SECONDS``,
    ``max-tasks=N``) must be a finite number >= 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(float(value))
        or value < 0
    ):
        raise ConfigurationError(
            f"{source}: {spec!r} needs a number >= 0 after '=' (like idle=300 or "
            f"max-tasks=1000), got {show(value)}"
        )
