"""The job context: key/values a producer attaches to every job it sends.

The context lives in a :class:`contextvars.ContextVar`, so each thread (and
each asyncio task) has its own, as a web request handler expects.
"""

from __future__ import annotations

import contextvars
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_ids = itertools.count()


#: Values a shared context may hold: a shallow copy of it shares nothing mutable.
_IMMUTABLE = frozenset({str, int, float, bool, type(None), bytes})


def is_flat_dict(context: Any) -> bool:
    """Whether ``context`` is a dict whose values are all immutable scalars."""
    return type(context) is dict and all(type(v) in _IMMUTABLE for v in context.values())


class JobContext(dict[str, Any]):
    """The context a job was sent with, as the job function receives it."""

    def to_dict(self) -> dict[str, Any]:
        """A plain dict copy (the sqs-workers spelling)."""
        return dict(self)


class SQSContext:
    """Context attached to jobs sent from the current thread or task.

    ``with sqs.context(remote_addr="127.0.0.1"): ...`` extends it for a block;
    ``sqs.context["k"] = v`` sets a key until ``sqs.context.clear()``.
    """

    def __init__(self, **kwargs: Any) -> None:
        self._var: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
            f"sqsw_context_{next(_ids)}"
        )
        self._var.set(dict(kwargs))

    @classmethod
    def from_dict(cls, kwargs: dict[str, Any]) -> JobContext:
        """Wrap a decoded context (kept for sqs-workers compatibility)."""
        return JobContext(kwargs)

    def _get(self) -> dict[str, Any]:
        try:
            return self._var.get()
        except LookupError:
            return {}

    def set(self, **kwargs: Any) -> None:
        """Replace the whole context with ``kwargs``."""
        self._var.set(dict(kwargs))

    def update(self, **kwargs: Any) -> None:
        """Add or change keys."""
        self._var.set({**self._get(), **kwargs})

    def clear(self) -> None:
        """Remove every key (call it at the end of a web request)."""
        self._var.set({})

    def to_dict(self) -> dict[str, Any]:
        """A copy of the current context."""
        return dict(self._get())

    def get(self, key: str, default: Any = None) -> Any:
        return self._get().get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self._get()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.update(**{key: value})

    def __delitem__(self, key: str) -> None:
        data = dict(self._get())
        del data[key]
        self._var.set(data)

    def __contains__(self, key: object) -> bool:
        return key in self._get()

    def __len__(self) -> int:
        return len(self._get())

    def __bool__(self) -> bool:
        return bool(self._get())

    @contextmanager
    def __call__(self, **kwargs: Any) -> Iterator[SQSContext]:
        """Extend the context for a ``with`` block, then restore it."""
        token = self._var.set({**self._get(), **kwargs})
        try:
            yield self
        finally:
            self._var.reset(token)

    def __repr__(self) -> str:
        return f"SQSContext({self._get()!r})"
