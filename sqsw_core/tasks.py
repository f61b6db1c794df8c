"""Job functions as producers see them: ``send_email.delay(...)``."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar

from typing_extensions import ParamSpec

if TYPE_CHECKING:
    from sqsw_core.async_sending import AsyncSendBatch
    from sqsw_core.queue import JobQueue
    from sqsw_core.sending import SendBatch

P = ParamSpec("P")
R = TypeVar("R")

#: Keyword arguments of ``delay()`` that are options of the send, not of the job.
SEND_OPTIONS = ("_content_type", "_delay_seconds", "_deduplication_id", "_group_id")


class AsyncTask(Generic[P, R]):
    """A registered job function: ``delay()`` enqueues it, ``run()`` calls it here."""

    def __init__(
        self,
        queue: JobQueue,
        job_name: str,
        fn: Callable[P, R],
        pass_context: bool = False,
        context_var: str = "context",
        *,
        takes_job_list: bool = False,
    ) -> None:
        self.queue = queue
        self.job_name = job_name
        #: The job function.
        self.fn = fn
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn
        signature: inspect.Signature | None = None
        if not takes_job_list:  # a bulk job's signature says nothing of one job
            try:
                signature = inspect.signature(fn)
            except (TypeError, ValueError):
                pass
        if signature is not None and pass_context:
            params = [p for name, p in signature.parameters.items() if name != context_var]
            signature = signature.replace(parameters=params)
        self._signature = signature

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> NoReturn:
        raise RuntimeError(
            f"Async task {self.queue.name}.{self.job_name} called synchronously "
            "(probably by mistake). Use .run(...) to run it here and now, or "
            ".delay(...) to add it to the queue."
        )

    @property
    def processor(self) -> Callable[P, R]:
        """The former name of :attr:`fn`, the job function."""
        return self.fn

    def __repr__(self) -> str:
        return f"<AsyncTask {self.queue.name}.{self.job_name}>"

    def job_kwargs(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Bind ``args``/``kwargs`` to the function's parameters, as keywords.

        Raises ``TypeError`` naming the job when they do not fit, so a wrong
        call fails at the producer instead of in a worker.
        """
        if self._signature is None:
            if args:
                raise TypeError(f"job {self.job_name!r} takes keyword arguments only")
            return dict(kwargs)
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(self._bind_error(exc, len(args), kwargs)) from None
        out: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            kind = self._signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                out.update(value)
            elif kind is inspect.Parameter.VAR_POSITIONAL:
                if value:
                    raise TypeError(
                        f"job {self.job_name!r}: *{name} cannot be sent in a message; "
                        "pass keyword arguments"
                    )
            else:
                out[name] = value
        return out

    def _bind_error(self, exc: TypeError, positional: int, kwargs: dict[str, Any]) -> str:
        """The text of a failed bind: unexpected keywords named, with what is missing."""
        signature = self._signature
        assert signature is not None
        problems = [str(exc)]
        unexpected, missing = _unfit_keywords(signature, positional, kwargs)
        if unexpected:
            named = []
            for key in unexpected:
                close = difflib.get_close_matches(key, signature.parameters, n=1)
                named.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
            problems = [f"unexpected keyword {_plural('argument', named)} {', '.join(named)}"]
            if missing:
                what = _plural("argument", missing)
                problems.append(f"missing required {what} {', '.join(map(repr, missing))}")
        return (
            f"job {self.job_name!r} on queue {self.queue.name!r}: {'; '.join(problems)} "
            f"(signature: {self.job_name}{signature})"
        )

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> str | None:
        """Add the job to its queue; returns the SQS message id (``None`` in a batch)."""
        options: dict[str, Any] = {key: kwargs.pop(key) for key in SEND_OPTIONS if key in kwargs}
        job_kwargs = self.job_kwargs(args, kwargs)
        return self.queue.add_job(self.job_name, **options, **job_kwargs)

    async def delay_async(self, *args: P.args, **kwargs: P.kwargs) -> str | None:
        """:meth:`delay` for asyncio code: the event loop never waits on SQS (see
        :meth:`~sqsw_core.queue.JobQueue.add_job_async`). Wrong arguments raise
        ``TypeError`` here, before anything is sent."""
        options: dict[str, Any] = {key: kwargs.pop(key) for key in SEND_OPTIONS if key in kwargs}
        job_kwargs = self.job_kwargs(args, kwargs)
        return await self.queue.add_job_async(self.job_name, **options, **job_kwargs)

    def run(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the job function in this process, synchronously."""
        return self.fn(*args, **kwargs)

    def bake(self, *args: P.args, **kwargs: P.kwargs) -> BakedAsyncTask:
        """Freeze arguments now, ``delay()`` later (a light Celery signature)."""
        plain = {key: value for key, value in kwargs.items() if key not in SEND_OPTIONS}
        self.job_kwargs(args, plain)  # fail now, not when delayed
        return BakedAsyncTask(self, args, dict(kwargs))

    @contextmanager
    def batch(self) -> Iterator[SendBatch]:
        """Send every ``delay()`` inside the block in as few requests as possible."""
        with self.queue.add_batch() as batch:
            yield batch

    @asynccontextmanager
    async def batch_async(self) -> AsyncIterator[AsyncSendBatch]:
        """:meth:`batch` for asyncio code: every ``delay_async()`` awaited inside the block
        (and in the tasks it starts) is sent in as few requests as possible."""
        async with self.queue.add_batch_async() as batch:
            yield batch


_NOT_KEYWORD = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.VAR_POSITIONAL)
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def _unfit_keywords(
    signature: inspect.Signature, positional: int, kwargs: dict[str, Any]
) -> tuple[list[str], list[str]]:
    """The keywords ``signature`` does not take, and its required parameters not given."""
    params = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return [], []
    unexpected = [key for key in kwargs if key not in params or params[key].kind in _NOT_KEYWORD]
    missing = [
        name
        for i, (name, p) in enumerate(params.items())
        if i >= positional
        and p.default is inspect.Parameter.empty
        and p.kind not in _VARIADIC
        and name not in kwargs
    ]
    return unexpected, missing


def _plural(word: str, items: list[str]) -> str:
    return word if len(items) == 1 else word + "s"


class BakedAsyncTask:
    """A task with its arguments: ``delay()`` enqueues, ``run()`` calls it here."""

    def __init__(
        self, async_task: AsyncTask[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ):
        self.async_task = async_task
        self.args = args
        self.kwargs = kwargs

    def __call__(self) -> NoReturn:
        self.async_task(*self.args, **self.kwargs)

    def delay(self) -> str | None:
        return self.async_task.delay(*self.args, **self.kwargs)

    async def delay_async(self) -> str | None:
        return await self.async_task.delay_async(*self.args, **self.kwargs)

    def run(self) -> Any:
        plain = {k: v for k, v in self.kwargs.items() if k not in SEND_OPTIONS}
        return self.async_task.run(*self.args, **plain)

    def __repr__(self) -> str:
        return f"BakedAsyncTask({self.async_task!r}, args={self.args!r}, kwargs={self.kwargs!r})"
