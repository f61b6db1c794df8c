"""Processor hooks: the ``sending`` and ``handling`` hooks of processor plugins, run in order.

An environment's processor classes (``SQSEnv(processor=["otel", "timing"])``)
each may override :meth:`Processor.sending` (around every send call) and
:meth:`Processor.handling` (around raw-queue handlers and bulk jobs).
:class:`ProcessorHooks` runs the overriding ones as an ordered list, as
dramatiq runs its middleware:

* before-parts in the order the classes were given, after-parts in reverse;
* each hook in its own ``try``: a hook that raises is logged with its
  plugin's name and skipped, and never fails the send or the job;
* the job's (or the send's) own exception passes through every hook that
  entered, and is raised as it was; a hook cannot swallow it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from sqsw_core.processors import Processor

if TYPE_CHECKING:
    from sqsw_core.processors import HandlerCall

logger = logging.getLogger("sqsw.hooks")

_BASE = {
    "sending": Processor.sending.__func__,  # type: ignore[attr-defined]
    "handling": Processor.handling.__func__,  # type: ignore[attr-defined]
}


def overrides(cls: type[Processor], hook: str) -> bool:
    """Whether ``cls`` has its own ``hook`` (``"sending"`` or ``"handling"``)."""
    return getattr(cls, hook).__func__ is not _BASE[hook]


def plugin_name(cls: type[Any]) -> str:
    """How a log line names a processor plugin: its class and module."""
    return f"{cls.__module__}.{cls.__qualname__}"


@contextmanager
def _run_hooks(
    hook: str, classes: Sequence[type[Processor]], make: Callable[[type[Processor]], Any]
) -> Iterator[None]:
    entered: list[tuple[type[Processor], AbstractContextManager[Any]]] = []
    for cls in classes:
        manager = make(cls)
        try:
            manager.__enter__()
        except Exception:
            logger.exception(
                "Processor hook %s.%s failed before the call; it is skipped",
                plugin_name(cls),
                hook,
            )
            continue
        entered.append((cls, manager))
    error: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        error = exc
    for cls, manager in reversed(entered):
        try:
            if error is None:
                manager.__exit__(None, None, None)
            else:
                manager.__exit__(type(error), error, error.__traceback__)
        except BaseException as raised:
            if raised is error:
                continue  # the hook saw the call's exception and let it go on
            if not isinstance(raised, Exception):
                raise
            logger.exception(
                "Processor hook %s.%s failed after the call; ignored", plugin_name(cls), hook
            )
    if error is not None:
        raise error


class ProcessorHooks:
    """The ``sending`` and ``handling`` hooks of an environment's processor classes."""

    __slots__ = ("classes", "handling_hooks", "sending_hooks")

    def __init__(self, classes: Sequence[type[Processor]]) -> None:
        self.classes = tuple(dict.fromkeys(classes))
        self.sending_hooks = tuple(c for c in self.classes if overrides(c, "sending"))
        self.handling_hooks = tuple(c for c in self.classes if overrides(c, "handling"))

    def sending(self, queue: Any, entries: list[dict[str, Any]]) -> AbstractContextManager[None]:
        """Around one send call of ``entries`` (mutable in place) to ``queue``."""
        return _run_hooks("sending", self.sending_hooks, lambda c: c.sending(queue, entries))

    def handling(self, call: HandlerCall) -> AbstractContextManager[None]:
        """Around a raw-queue handler or a bulk job's function."""
        return _run_hooks("handling", self.handling_hooks, lambda c: c.handling(call))

    def __repr__(self) -> str:
        names = ", ".join(c.__name__ for c in self.classes)
        return f"<ProcessorHooks [{names}]>"
