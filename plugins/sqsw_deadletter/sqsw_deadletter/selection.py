"""Which dead letters go back: ``RedriveFilter`` and what a dry run reports."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import NamedTuple, Union

from sqsw_core.messages import Message

__all__ = [
    "Predicate",
    "RedriveCandidate",
    "RedriveFilter",
    "Selector",
    "as_predicate",
    "message_age",
    "partition",
]

Predicate = Callable[[Message], bool]
#: What ``filter=`` accepts: a :class:`RedriveFilter`, any ``Message -> bool``, or ``None`` (all).
Selector = Union["RedriveFilter", Predicate, None]


def message_age(message: Message, now: float | None = None) -> float | None:
    """Seconds since the message was first sent (SQS keeps ``SentTimestamp`` on redrive)."""
    sent = message.sent_timestamp
    if sent is None:
        return None
    return (time.time() if now is None else now) - sent


def _seconds(value: float | timedelta | None, name: str) -> float | None:
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 0:
        raise ValueError(f"RedriveFilter {name} must be >= 0, got {value!r}")
    return seconds


@dataclass(frozen=True)
class RedriveFilter:
    """Select dead letters to push back; every condition given must hold.

    ``job_name``: one name or a collection of names (messages without a
    ``JobName`` attribute never match it). ``min_age``/``max_age``: seconds
    (or ``timedelta``) since the message was first sent to the upstream queue.
    ``min_receive_count``/``max_receive_count``: SQS's approximate receive
    count, which includes the deliveries on the upstream queue and this one.
    ``predicate``: any ``Message -> bool``.
    """

    job_name: str | Collection[str] | None = None
    min_age: float | timedelta | None = None
    max_age: float | timedelta | None = None
    min_receive_count: int | None = None
    max_receive_count: int | None = None
    predicate: Predicate | None = None

    def __post_init__(self) -> None:
        if isinstance(self.job_name, str):
            object.__setattr__(self, "job_name", frozenset({self.job_name}))
        elif self.job_name is not None:
            object.__setattr__(self, "job_name", frozenset(self.job_name))
        object.__setattr__(self, "min_age", _seconds(self.min_age, "min_age"))
        object.__setattr__(self, "max_age", _seconds(self.max_age, "max_age"))
        if self.predicate is not None and not callable(self.predicate):
            raise TypeError(f"RedriveFilter predicate must be callable, got {self.predicate!r}")

    def matches(self, message: Message, now: float | None = None) -> bool:
        """True when ``message`` should go back to the upstream queue."""
        if self.job_name is not None and message.job_name not in self.job_name:
            return False
        min_age, max_age = self.min_age, self.max_age  # seconds, after __post_init__
        if min_age is not None or max_age is not None:
            age = message_age(message, now)
            if age is None:
                return False
            if isinstance(min_age, float) and age < min_age:
                return False
            if isinstance(max_age, float) and age > max_age:
                return False
        count = message.receive_count
        if self.min_receive_count is not None and count < self.min_receive_count:
            return False
        if self.max_receive_count is not None and count > self.max_receive_count:
            return False
        return self.predicate is None or bool(self.predicate(message))

    def __call__(self, message: Message) -> bool:
        return self.matches(message)


def as_predicate(selector: Selector) -> Predicate | None:
    """The selection function for ``filter=`` (``None``: every message goes back)."""
    if selector is None or isinstance(selector, RedriveFilter):
        return selector
    if not callable(selector):
        raise TypeError(
            f"filter must be a RedriveFilter or a callable taking a Message, got {selector!r}"
        )
    return selector


class RedriveCandidate(NamedTuple):
    """A dead letter a dry run found would be pushed back."""

    message_id: str
    job_name: str | None
    #: Seconds since the message was first sent, or ``None`` if SQS did not say.
    age: float | None
    receive_count: int

    @classmethod
    def of(cls, message: Message, now: float | None = None) -> RedriveCandidate:
        return cls(
            message.message_id, message.job_name, message_age(message, now), message.receive_count
        )


def partition(
    messages: list[Message], select: Predicate | None, fifo: bool
) -> tuple[list[Message], list[Message], list[Message]]:
    """Split received messages into (selected, not selected, held back).

    On a FIFO queue, a message that is not selected holds back the later
    messages of its group (pushing them would reorder the group).
    """
    if select is None:
        return list(messages), [], []
    selected: list[Message] = []
    skipped: list[Message] = []
    held: list[Message] = []
    blocked: set[str | None] = set()
    for message in messages:
        group = message.group_id if fifo else None
        if fifo and group in blocked:
            held.append(message)
        elif select(message):
            selected.append(message)
        else:
            skipped.append(message)
            if fifo:
                blocked.add(group)
    return selected, skipped, held
