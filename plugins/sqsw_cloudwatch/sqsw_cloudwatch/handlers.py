"""How a raw processor is called: its arguments, worked out once at registration.

A raw processor receives what its parameters ask for, by annotation:

* ``message: Message`` (or the first parameter, unannotated): the received
  :class:`sqsw_core.Message` (``body``, ``attributes``, ``message_attributes``,
  ``message_id``, ``receive_count``). ``def processor(message)`` is the seed form.
* ``event: CloudWatchEvent``: the body parsed as a CloudWatch/EventBridge event.
  A body that is not one fails the message with ``NotAnEventError``.
* ``event: CloudWatchEvent | None`` (or ``Optional[CloudWatchEvent]``): the
  event, or ``None`` when the body is not an event (nothing fails).

Parameters with defaults and ``**kwargs`` are left alone; ``*args`` gets the
message when nothing else did. Any other required parameter is a
:class:`~sqsw_core.exceptions.ConfigurationError` when the processor is
registered, not when the first message arrives; so is an ``async def``
processor (sqsw runs sync functions only for now).
"""

from __future__ import annotations

import enum
import inspect
import re
import types
import typing
from collections.abc import Callable
from typing import Any

from sqsw_cloudwatch.events import CloudWatchEvent
from sqsw_cloudwatch.exceptions import NotAnEventError
from sqsw_core.exceptions import ConfigurationError
from sqsw_core.job_loop import JOB_LOOP
from sqsw_core.messages import Message
from sqsw_core.processors import refuse_async, refuse_awaitable

__all__ = ["RawHandler"]


class Source(enum.Enum):
    """What a raw processor's parameter receives."""

    MESSAGE = "message"
    EVENT = "event"
    OPTIONAL_EVENT = "event or None"


_EVENT_NAME = r"(?:[\w.]+\.)?CloudWatchEvent"
_MESSAGE_NAME = r"(?:[\w.]+\.)?Message"
_OPTIONAL_EVENT_PATTERNS = (
    re.compile(rf"(?:typing\.)?Optional\[\s*{_EVENT_NAME}\s*\]"),
    re.compile(rf"{_EVENT_NAME}\s*\|\s*None"),
    re.compile(rf"None\s*\|\s*{_EVENT_NAME}"),
)


def _source_of_string(annotation: str) -> Source | None:
    """Annotations that could not be resolved (a local import, say) are matched by name."""
    text = annotation.strip().strip("'\"")
    if re.fullmatch(_EVENT_NAME, text):
        return Source.EVENT
    if any(p.fullmatch(text) for p in _OPTIONAL_EVENT_PATTERNS):
        return Source.OPTIONAL_EVENT
    if re.fullmatch(_MESSAGE_NAME, text):
        return Source.MESSAGE
    return None


def _source_of(annotation: Any) -> Source | None:
    if annotation is inspect.Parameter.empty:
        return None
    if isinstance(annotation, str):
        return _source_of_string(annotation)
    if isinstance(annotation, type):
        if issubclass(annotation, CloudWatchEvent):
            return Source.EVENT
        if issubclass(annotation, Message):
            return Source.MESSAGE
        return None
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = set(typing.get_args(annotation))
        if args == {CloudWatchEvent, type(None)}:
            return Source.OPTIONAL_EVENT
    return None


def _resolved_annotations(fn: Callable[..., Any]) -> dict[str, Any]:
    target = fn
    if not inspect.isfunction(target) and not inspect.ismethod(target):
        target = getattr(target, "__call__", target)  # noqa: B004 - callable objects
    try:
        return typing.get_type_hints(target)
    except Exception:  # unresolvable forward references: fall back to the strings
        return {}


def _describe(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "__qualname__", None) or repr(fn)
    try:
        return f"{name}{inspect.signature(fn)}"
    except (TypeError, ValueError):
        return str(name)


class RawHandler:
    """A raw processor function and the plan to call it with a message."""

    def __init__(self, fn: Callable[..., Any], queue_name: str) -> None:
        if not callable(fn):
            raise ConfigurationError(
                f"the raw processor of queue {queue_name!r} must be callable, got {fn!r}"
            )
        refuse_async(fn, f"the raw processor of queue {queue_name!r}")
        self.fn = fn
        self.queue_name = queue_name
        self.positional: list[Source] = []
        self.keywords: dict[str, Source] = {}
        self._plan()
        sources = [*self.positional, *self.keywords.values()]
        self.wants_event = Source.EVENT in sources
        self.wants_optional_event = Source.OPTIONAL_EVENT in sources

    def _plan(self) -> None:
        try:
            signature = inspect.signature(self.fn)
        except (TypeError, ValueError):  # a builtin without a signature: seed form
            self.positional.append(Source.MESSAGE)
            return
        hints = _resolved_annotations(self.fn)
        first = True
        message_given = False
        for param in signature.parameters.values():
            kind = param.kind
            if kind is param.VAR_KEYWORD:
                continue
            if kind is param.VAR_POSITIONAL:
                if not message_given and not self.positional and not self.keywords:
                    self.positional.append(Source.MESSAGE)
                break
            source = _source_of(hints.get(param.name, param.annotation))
            if source is None and first and kind is not param.KEYWORD_ONLY:
                source = Source.MESSAGE
            first = False
            if source is None:
                if param.default is not param.empty:
                    continue
                raise ConfigurationError(
                    f"raw processor {_describe(self.fn)} of queue {self.queue_name!r}: "
                    f"sqsw cannot fill parameter {param.name!r}. A raw processor takes the "
                    "message as its first parameter (or any parameter annotated Message) "
                    "and the parsed event as a parameter annotated CloudWatchEvent (or "
                    "'CloudWatchEvent | None'); give other parameters a default."
                )
            message_given = message_given or source is Source.MESSAGE
            if kind is param.POSITIONAL_ONLY:
                self.positional.append(source)
            else:
                self.keywords[param.name] = source

    def __call__(self, message: Message) -> Any:
        event: CloudWatchEvent | None = None
        if self.wants_event:
            event = CloudWatchEvent.from_message(message)
        elif self.wants_optional_event:
            try:
                event = CloudWatchEvent.from_message(message)
            except NotAnEventError:
                event = None
        values = {Source.MESSAGE: message, Source.EVENT: event, Source.OPTIONAL_EVENT: event}
        args = [values[source] for source in self.positional]
        kwargs = {name: values[source] for name, source in self.keywords.items()}
        result = self.fn(*args, **kwargs)
        if result is not None:
            if inspect.isawaitable(result):  # an async def handler: run it to its end
                return JOB_LOOP.run(result)
            refuse_awaitable(result, self.queue_name, None)  # an async generator: fail it
        return result

    def __repr__(self) -> str:
        return f"<RawHandler {self.queue_name} {_describe(self.fn)}>"
