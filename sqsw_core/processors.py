"""Processors: the objects that call a job function for each received job.

A processor plugin (group ``sqsw.processors``) is a :class:`Processor`
subclass. Subclasses override :meth:`Processor.process` and call ``super()``;
the one-argument form ``process(self, job_kwargs)`` of sqs-workers works too.
Several processor classes compose by inheritance for ``process``, first given
= outermost; their ``sending`` and ``handling`` hooks run as an ordered list,
each on its own (:mod:`sqsw_core.hooks`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from sqsw_core.context import JobContext
from sqsw_core.exceptions import (
    AsyncJobError,
    ConfigurationError,
    JobArgumentsError,
    JobTimeLimitExceeded,
    RetryJob,
    quote,
)

if TYPE_CHECKING:
    from sqsw_core.messages import Message
    from sqsw_core.queue import GenericQueue

__all__ = [
    "DEFAULT_CONTEXT_VAR",
    "HandlerCall",
    "Processor",
    "RetryJob",
    "compose_processors",
    "when_done",
]

DEFAULT_CONTEXT_VAR = "context"

logger = logging.getLogger("sqsw.jobs")

T = TypeVar("T")

#: The message and context of the job running in this thread or task.
_current_job: contextvars.ContextVar[tuple[Message, JobContext] | None] = contextvars.ContextVar(
    "sqsw_current_job", default=None
)


def async_kind(fn: Any) -> str | None:
    """What makes ``fn`` async (``"an async function"``...), or ``None`` for a sync callable.

    Sees through ``functools.partial`` and bound methods, and finds objects
    whose ``__call__`` is async. A sync function that wraps an async one (with
    ``asyncio.run``, say) is sync: ``__wrapped__`` is not followed.
    """
    target = fn
    while isinstance(target, partial):
        target = target.func
    if inspect.iscoroutinefunction(target):
        return "an async function"
    if inspect.isasyncgenfunction(target):
        return "an async generator function"
    if callable(target) and not (inspect.isroutine(target) or isinstance(target, type)):
        call = type(target).__call__
        if inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call):
            return "an object with an async __call__"
    return None


def refuse_async(fn: Any, what: str) -> None:
    """Raise ``ConfigurationError`` when ``fn`` is an async generator function: it
    yields values instead of doing one job. Called where functions are registered, so
    such a job fails when the worker's code loads, not by being acked unrun.
    (Coroutine functions are fine: they run on the job loop.)"""
    kind = async_kind(fn)
    if kind is None or "generator" not in kind:
        return
    name = quote(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or fn)
    raise ConfigurationError(
        f"{what}: {name} is {kind}, which yields values instead of doing one job; "
        "register an async def (or a def) that does the job and returns"
    )


def refuse_awaitable(result: Any, queue_name: str, job_name: str | None) -> None:
    """Raise :class:`AsyncJobError` when a handler returned an async generator (a job
    written with ``yield``): it did not run, so the job fails and is retried instead of
    counting as succeeded. (Awaitables are run on the job loop by the callers.)"""
    if not inspect.isasyncgen(result):
        return
    what = f"job {quote(job_name)!r}" if job_name is not None else "the processor"
    raise AsyncJobError(
        f"{what} on queue {queue_name!r} returned {quote(type(result).__name__)}, an "
        "async generator, which is not a job: it did not run. The message is retried "
        "per the backoff policy."
    )


def when_done(result: Any, done: Callable[[BaseException | None], None]) -> Any:
    """For a processor's :meth:`Processor.process` override: call ``done(error)`` when the
    job has really ended, and return what ``process`` should.

    ``result`` is what ``super().process(...)`` returned. For a sync job it is the
    job's result: ``done(None)`` is called now. For an async job it is the job's
    coroutine, not run yet: a coroutine is returned that awaits it, then calls
    ``done`` with the exception it raised (re-raised after) or ``None``.
    """
    if not inspect.isawaitable(result):
        done(None)
        return result
    return _awaited_then(result, done)


async def _awaited_then(job: Awaitable[T], done: Callable[[BaseException | None], None]) -> T:
    try:
        value = await job
    except BaseException as exc:
        done(exc)
        raise
    done(None)
    return value


async def _as_current_job(
    message: Message,
    job_context: JobContext,
    job: Awaitable[T],
    limit: float | None = None,
    processor: Processor | None = None,
) -> T:
    """Await an async job with its message and context current (in its own task),
    cancelled past ``limit`` seconds (``JobTimeLimitExceeded``)."""
    _current_job.set((message, job_context))
    if limit is None:
        return await job
    try:
        return await asyncio.wait_for(job, limit)
    except asyncio.TimeoutError:
        where = f"{processor.queue_name}.{processor.job_name}" if processor else "job"
        raise JobTimeLimitExceeded(
            f"job {where} (message {message.message_id}) ran past its time limit of "
            f"{limit:g} s and was cancelled; it is retried per the backoff policy"
        ) from None


def _takes_context_argument(method: Callable[..., Any]) -> bool:
    """True when ``process`` accepts ``(self, job_kwargs, job_context)``."""
    params = list(inspect.signature(method).parameters.values())
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 3


def describe_signature(fn: Callable[..., Any]) -> str:
    """``name(params)`` of a job function, for error messages."""
    name = getattr(fn, "__name__", None) or repr(fn)
    try:
        signature = inspect.signature(fn, eval_str=True)
    except Exception:  # unresolvable annotations: show them as written
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):
            return name
    return f"{name}{signature}"


def arguments_error(
    fn: Callable[..., Any], kwargs: dict[str, Any], queue_name: str, job_name: str
) -> JobArgumentsError | None:
    """After ``fn(**kwargs)`` raised ``TypeError``: the error to raise if the arguments
    do not match ``fn``'s signature, ``None`` if the ``TypeError`` came from inside.

    The signature is only inspected on this error path, so a matching call
    costs nothing extra.
    """
    try:
        inspect.signature(fn).bind(**kwargs)
    except TypeError as mismatch:
        return JobArgumentsError(
            f"job {quote(job_name)!r} on queue {queue_name!r} got arguments "
            f"{quote(sorted(kwargs))} that do not match {describe_signature(fn)}: "
            f"{quote(str(mismatch))}. "
            "Producer and worker may run different versions of the job; "
            "the message is retried per the backoff policy."
        )
    except ValueError:  # no signature to check against
        pass
    return None


class HandlerCall:
    """One call of a handler that takes messages directly, seen by :meth:`Processor.handling`.

    ``failed`` is filled in after the call: the indices (into ``messages``) of
    those the handler reported as failed without raising (bulk processors).
    """

    __slots__ = ("failed", "job_name", "messages", "queue")

    def __init__(
        self, queue: GenericQueue, messages: list[Message], job_name: str | None = None
    ) -> None:
        self.queue = queue
        self.messages = messages
        self.job_name = job_name
        self.failed: set[int] = set()


class Processor:
    """Calls ``fn`` for each job named ``job_name`` received on ``queue``.

    The hooks below are no-ops here; plugins override the ones they need.
    """

    #: Seconds an async job may run before it is cancelled (``None``: the env's
    #: ``job_time_limit``); set by ``@queue.processor(..., time_limit=...)``.
    time_limit: float | None = None

    def __init__(
        self,
        queue: GenericQueue,
        fn: Callable[..., Any] | None = None,
        job_name: str = "",
        pass_context: bool = False,
        context_var: str = DEFAULT_CONTEXT_VAR,
    ) -> None:
        self.queue = queue
        self.fn = fn
        self.job_name = job_name
        self.pass_context = pass_context
        self.context_var = context_var

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("process")
        if own is not None and not _takes_context_argument(own):
            # sqs-workers' one-argument form: accept the context and drop it;
            # the base class finds it again in the current job's state.
            def process(
                self: Processor, job_kwargs: dict[str, Any], job_context: Any = None
            ) -> Any:
                return own(self, job_kwargs)

            process.__doc__ = own.__doc__
            process.__wrapped__ = own  # type: ignore[attr-defined]
            cls.process = process  # type: ignore[method-assign]

    @classmethod
    def maker(cls, **kwargs: Any) -> Callable[..., Processor]:
        """A factory with some constructor arguments fixed (sqs-workers API)."""
        return partial(cls, **kwargs)

    @property
    def queue_name(self) -> str:
        return self.queue.name

    @property
    def message(self) -> Message | None:
        """The message being processed by the current thread (or async job), if any."""
        job = _current_job.get()
        return job[0] if job is not None else None

    @property
    def job_context(self) -> JobContext:
        """The context of the job being processed by the current thread (or async job)."""
        job = _current_job.get()
        return job[1] if job is not None else JobContext()

    def run(self, message: Message, job_kwargs: dict[str, Any], job_context: JobContext) -> Any:
        """Entry point used by the worker: run :meth:`process` for ``message``.

        For an async job (``process`` returned an awaitable) this returns a
        coroutine that awaits it with the job's message and context current:
        the worker runs it on its job loop (:mod:`sqsw_core.job_loop`).
        """
        limit = self.time_limit
        if limit is None:
            limit = self.queue.env.job_time_limit
            if limit is None:  # the usual case, kept short: this runs once per job
                token = _current_job.set((message, job_context))
                try:
                    result = self.process(job_kwargs, job_context)
                finally:
                    _current_job.reset(token)
                if result is not None:  # an async job, or an override's own call
                    if inspect.isawaitable(result):
                        return _as_current_job(message, job_context, result)
                    refuse_awaitable(result, self.queue.name, self.job_name)
                return result
        return self._run_limited(message, job_kwargs, job_context, limit)

    def _run_limited(
        self, message: Message, job_kwargs: dict[str, Any], job_context: JobContext, limit: float
    ) -> Any:
        """:meth:`run` with a time limit: an async job is cancelled past it, a sync one is
        logged."""
        started = time.monotonic()
        token = _current_job.set((message, job_context))
        try:
            result = self.process(job_kwargs, job_context)
        except BaseException:
            self._note_sync_overrun(message, limit, time.monotonic() - started)
            raise
        finally:
            _current_job.reset(token)
        if result is not None and inspect.isawaitable(result):
            return _as_current_job(message, job_context, result, limit, self)
        self._note_sync_overrun(message, limit, time.monotonic() - started)
        if result is not None:
            refuse_awaitable(result, self.queue.name, self.job_name)
        return result

    def _note_sync_overrun(self, message: Message, limit: float, took: float) -> None:
        """A sync job cannot be stopped from outside its thread: past its limit, it is
        logged (and the heartbeat keeps its message hidden, up to max_job_duration)."""
        if took > limit:
            logger.warning(
                "Job %s.%s (message %s) took %.1f s, past its time limit of %g s; sync jobs "
                "are not stopped (a thread cannot be interrupted safely): make it async to "
                "have it cancelled, or give its own calls timeouts",
                self.queue_name,
                self.job_name,
                message.message_id,
                took,
                limit,
            )

    def process(self, job_kwargs: dict[str, Any], job_context: Any = None) -> Any:
        """Call the job function. Override to act before or after it."""
        if self.fn is None:
            raise RuntimeError(f"processor for {self.queue_name}.{self.job_name} has no function")
        fn = self.fn
        if self.pass_context:
            context = job_context if job_context is not None else self.job_context
            job_kwargs = {**job_kwargs, self.context_var: context}
        try:
            result = fn(**job_kwargs)
        except TypeError as exc:
            error = arguments_error(fn, job_kwargs, self.queue_name, self.job_name)
            if error is None:
                raise
            raise error from exc
        return result  # an async job's coroutine: run() hands it to the job loop

    def copy(self, **changes: Any) -> Processor:
        """A new processor of the same class with some constructor arguments changed."""
        args: dict[str, Any] = {
            "queue": self.queue,
            "fn": self.fn,
            "job_name": self.job_name,
            "pass_context": self.pass_context,
            "context_var": self.context_var,
        }
        args.update(changes)
        return type(self)(**args)

    @classmethod
    @contextlib.contextmanager
    def sending(
        cls, queue: GenericQueue, entries: list[dict[str, Any]]
    ) -> Iterator[list[dict[str, Any]]]:
        """Producer hook around one send call of ``entries`` to ``queue``.

        Entries are the ``SendMessage(Batch)`` parameters, mutable in place
        (tracing plugins add message attributes here). Subclasses override
        and ``yield from super().sending(...)`` style nesting is done with
        ``with super().sending(queue, entries): yield entries``. For a batch
        call ``entries`` is a :class:`~sqsw_core.sending.SendEntries`: after
        the ``yield``, its ``failed`` lists the entries SQS refused.
        """
        yield entries

    @classmethod
    @contextlib.contextmanager
    def handling(cls, call: HandlerCall) -> Iterator[HandlerCall]:
        """Consumer hook around a handler that does not go through :meth:`process`.

        Raw queues call their handler with one message, bulk processors with
        the messages of one batch; the handler's exception passes through the
        hook, and ``call.failed`` holds the per-message failures it reported.
        Override like :meth:`sending`: ``with super().handling(call): yield call``.
        """
        yield call

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.queue_name}.{self.job_name}>"


def compose_processors(classes: list[type[Processor]]) -> type[Processor]:
    """One processor class that applies ``classes`` in order (first = outermost)."""
    if len(classes) == 1:
        return classes[0]
    unique = list(dict.fromkeys(classes))
    name = "+".join(cls.__name__ for cls in unique)
    return type(name, tuple(unique), {})
