"""``SQSEnv``: an application's SQS configuration, its queues and its plugins."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, overload

from sqsw_core import plugins
from sqsw_core.async_sending import AsyncSender
from sqsw_core.backoff_policies import DEFAULT_BACKOFF, BackoffPolicy, is_backoff_policy
from sqsw_core.codecs import DEFAULT_CODEC, Codec, codec_or_missing, get_codec
from sqsw_core.context import JobContext, SQSContext
from sqsw_core.engine_options import check_option, check_queues_options
from sqsw_core.exceptions import ConfigurationError, PluginError
from sqsw_core.hooks import ProcessorHooks
from sqsw_core.job_decoding import JobDecoder
from sqsw_core.long_delays import MAX_HOP_SECONDS, check_hop
from sqsw_core.messages import Message
from sqsw_core.processors import DEFAULT_CONTEXT_VAR, Processor, compose_processors
from sqsw_core.queue import GenericQueue, JobQueue
from sqsw_core.queue_management import RedrivePolicy
from sqsw_core.retries import RetryPolicy
from sqsw_core.sending import DEFAULT_MAX_MESSAGE_SIZE
from sqsw_core.sessions import is_session
from sqsw_core.shutdown_policies import NeverShutdown, ShutdownPolicy
from sqsw_core.sqs_api import SQSApi
from sqsw_core.tasks import AsyncTask

if TYPE_CHECKING:
    from sqsw_core.results import EngineStats

logger = logging.getLogger("sqsw.env")

Q = TypeVar("Q", bound=GenericQueue)
QueueMaker = Callable[..., GenericQueue]


def _is_processor_class(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, Processor)


def _resolve_session(session: Any) -> Any:
    """A session from a plugin name or an object; refused if it has no ``client()``."""
    resolved = (
        plugins.resolve(plugins.SESSIONS, session, is_session)
        if isinstance(session, str)
        else session
    )
    if not is_session(resolved):
        raise ConfigurationError(
            f"session {session!r} has no client() method: pass a session plugin name "
            f"(installed: {', '.join(plugins.installed_names(plugins.SESSIONS))}), a "
            "boto3.Session or a MemorySession"
        )
    return resolved


def _check_message_size(size: int) -> int:
    if size < 1:
        raise ConfigurationError(f"max_message_size must be positive, got {size}")
    return size


ProcessorSpec = str | type[Processor] | list[str | type[Processor]] | None


def _processor_classes(processor: ProcessorSpec) -> list[type[Processor]]:
    """The processor classes for ``processor=``: plugin names or classes, in order."""
    specs = processor if isinstance(processor, list) else [processor or "default"]
    return [
        plugins.resolve(
            plugins.PROCESSORS,
            spec,
            _is_processor_class,
            instantiate=False,
            what="a Processor subclass",
        )
        for spec in specs
    ]


def _processor_class_of(maker: Any) -> type[Processor]:
    """The class behind a processor maker (a class or ``Processor.maker(...)``)."""
    target = getattr(maker, "func", maker)
    return target if _is_processor_class(target) else Processor


class _QueueSpec(NamedTuple):
    """The arguments a queue was created with (its ``queue()`` call)."""

    maker: Any
    queue_url: str | None
    options: dict[str, Any]


def _resolve_queue_maker(queue_maker: str | QueueMaker) -> Any:
    return plugins.resolve(
        plugins.QUEUE_TYPES, queue_maker, callable, instantiate=False, what="a queue class"
    )


def _resolve_queue_backoff(backoff_policy: str | BackoffPolicy | None) -> BackoffPolicy | None:
    if backoff_policy is None:
        return None
    policy: BackoffPolicy = plugins.resolve(plugins.BACKOFF, backoff_policy, is_backoff_policy)
    return policy


def _maker_text(maker: Any) -> str:
    """``JobQueue``, or ``DeadLetterQueue.maker(upstream_queue=...)`` for a factory."""
    if isinstance(maker, partial):
        args = [repr(arg) for arg in maker.args]
        args += [f"{key}={value!r}" for key, value in maker.keywords.items()]
        return f"{_maker_text(maker.func)}.maker({', '.join(args)})"
    return str(getattr(maker, "__name__", repr(maker)))


def _same_maker(created: Any, asked: Any) -> bool:
    """Whether ``asked`` names the queue type ``created``: a bare class matches its factories."""
    if isinstance(created, partial):
        if isinstance(asked, partial):
            return (
                _same_value(created.func, asked.func)
                and _same_value(created.args, asked.args)
                and created.keywords.keys() == asked.keywords.keys()
                and all(_same_value(v, asked.keywords[k]) for k, v in created.keywords.items())
            )
        return _same_value(created.func, asked)
    return _same_value(created, asked)


def _same_value(created: Any, asked: Any) -> bool:
    """Equal, or objects of one class with equal attributes (policies define no ``==``).

    A queue and its name are the same (``DeadLetterQueue.maker("foo")`` or ``(foo)``).
    """
    if created is asked or created == asked:
        return True
    if isinstance(created, GenericQueue) and isinstance(asked, str):
        return created.name == asked
    if isinstance(asked, GenericQueue) and isinstance(created, str):
        return asked.name == created
    attributes = getattr(created, "__dict__", None)
    return (
        type(created) is type(asked)
        and attributes is not None
        and attributes == getattr(asked, "__dict__", None)
    )


def _args_text(args: dict[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in args.items())


class _Process:
    """This process's id, kept up to date across forks (read on every SQS call: cheaper
    than asking the kernel each time)."""

    __slots__ = ("pid",)

    def __init__(self) -> None:
        self.pid = os.getpid()

    def forked(self) -> None:
        self.pid = os.getpid()


_process = _Process()
if hasattr(os, "register_at_fork"):  # POSIX: a forked child has a client of its own
    os.register_at_fork(after_in_child=_process.forked)


class SQSEnv:
    """Configuration shared by producers and workers of one application.

    Every plugin-backed option takes a plugin name or an object:
    ``SQSEnv(session="memory", codec="json", processor="otel")`` or
    ``SQSEnv(MemorySession(), codec=MyCodec(), processor=MyProcessor)``.
    """

    def __init__(
        self,
        session: Any = "aws",
        queue_prefix: str = "",
        codec: str | Codec = DEFAULT_CODEC,
        processor: ProcessorSpec = None,
        backoff_policy: str | BackoffPolicy = DEFAULT_BACKOFF,
        *,
        processor_maker: Callable[..., Processor] | None = None,
        accept: Iterable[str] = (),
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        context_maker: Callable[[], SQSContext] = SQSContext,
        sqs_client: Any = None,
        retry: RetryPolicy | None = None,
        max_delay_hop: int = MAX_HOP_SECONDS,
        job_time_limit: float | None = None,
    ) -> None:
        self.session = _resolve_session(session)
        self.queue_prefix = queue_prefix
        # The default codec, when sqsw-json is not installed, fails when a job
        # needs it (encoded or decoded), not here: the core alone manages queues.
        self.decoding = JobDecoder(codec_or_missing(codec), accept)
        self.backoff_policy: BackoffPolicy = plugins.resolve(
            plugins.BACKOFF, backoff_policy, is_backoff_policy, what="a backoff policy"
        )
        self._set_processors(processor, processor_maker)
        self.max_message_size = _check_message_size(max_message_size)
        self.context = context_maker()
        self.queues: dict[str, GenericQueue] = {}
        #: How each queue was made: later ``queue()`` calls must not ask otherwise.
        self._queue_specs: dict[str, _QueueSpec] = {}
        self._queue_urls: dict[str, str] = {}
        # Reentrant: a queue class may look up other queues while it is built.
        self._lock = threading.RLock()
        self._client = sqs_client
        self._client_pid = os.getpid() if sqs_client is not None else None
        #: The client was made here by the session (not given as ``sqs_client``).
        self._client_made = False
        self._api: SQSApi | None = None
        self.retry = retry or RetryPolicy()
        self.max_delay_hop = check_hop(max_delay_hop)
        #: Seconds an ``async def`` job may run before it is cancelled (and retried), for
        #: processors registered without a ``time_limit`` of their own; a sync job past
        #: it is logged. ``None``: no limit.
        self.job_time_limit = _check_time_limit(job_time_limit)
        #: The threads that make SQS calls for coroutines (``delay_async``...).
        self.async_sender = AsyncSender()

    def __repr__(self) -> str:
        return f"<SQSEnv session={self.session!r} prefix={self.queue_prefix!r}>"

    @classmethod
    def from_config(
        cls,
        config: str | os.PathLike[str] | None = None,
        *,
        cwd: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        **options: Any,
    ) -> SQSEnv:
        """An environment from ``[tool.sqsw]`` (or ``sqsw.toml``), then ``SQSW_*`` variables.

        The file is ``config``, else ``$SQSW_CONFIG``, else the nearest one from
        ``cwd`` upward; ``options`` (``SQSEnv`` keyword arguments) win over both.
        See :mod:`sqsw_core.config`.
        """
        from pathlib import Path

        from sqsw_core.config import load_settings

        settings = load_settings(
            config, cwd=Path(cwd) if cwd is not None else None, environ=environ
        )
        return cls(**{**settings.env_options(), **options})

    def reconfigure(
        self,
        *,
        session: Any = None,
        queue_prefix: str | None = None,
        codec: str | Codec | None = None,
        processor: ProcessorSpec = None,
        processor_maker: Callable[..., Processor] | None = None,
        backoff_policy: str | BackoffPolicy | None = None,
        accept: Iterable[str] | None = None,
        max_message_size: int | None = None,
        max_delay_hop: int | None = None,
        job_time_limit: float | None = None,
    ) -> SQSEnv:
        """Change this environment's plugins in place (``None`` keeps a setting); returns it.

        For tools that load an application and then apply configuration
        (``sqsw run --processor otel``). Queue objects and tasks stay valid: a
        new processor re-creates every registered processor from its function,
        a new session or prefix drops cached clients and URLs, and queues that
        used the environment's backoff policy get the new one. Every setting is
        checked before any is changed.
        """
        new_session = _resolve_session(session) if session is not None else None
        new_policy = (
            plugins.resolve(
                plugins.BACKOFF, backoff_policy, is_backoff_policy, what="a backoff policy"
            )
            if backoff_policy is not None
            else None
        )
        new_codec = get_codec(codec) if codec is not None else None
        if max_message_size is not None:
            _check_message_size(max_message_size)
        hop = check_hop(max_delay_hop) if max_delay_hop is not None else None
        limit = _check_time_limit(job_time_limit)
        with self._lock:
            if new_session is not None or queue_prefix is not None:
                self._reconnect(new_session, queue_prefix)
            if new_policy is not None:
                self._set_backoff_policy(new_policy)
            if new_codec is not None or accept is not None:
                self.decoding.set_codec(new_codec or self.codec, accept)
            if max_message_size is not None:
                self.max_message_size = max_message_size
            if hop is not None:
                self.max_delay_hop = hop
            if limit is not None:
                self.job_time_limit = limit
            if processor is not None or processor_maker is not None:
                self._set_processors(processor, processor_maker)
                for queue in self.queues.values():
                    if isinstance(queue, JobQueue):
                        queue.rebuild_processors()
        return self

    def _set_processors(
        self, processor: ProcessorSpec, processor_maker: Callable[..., Processor] | None
    ) -> None:
        """Set the processor factory (``processor=`` or ``processor_maker=``) and hooks."""
        if processor is not None and processor_maker is not None:
            raise ConfigurationError("give either processor= or processor_maker=, not both")
        if processor_maker is not None:
            classes = [_processor_class_of(processor_maker)]
            self.processor_maker = processor_maker
        else:
            classes = _processor_classes(processor)
            self.processor_maker = compose_processors(classes)
        #: The processor class jobs run with (the given classes composed, first = outermost).
        self.processor_class: type[Processor] = _processor_class_of(self.processor_maker)
        #: The ``sending`` and ``handling`` hooks of those classes, run in order.
        self.processor_hooks = ProcessorHooks(classes)

    def _reconnect(self, session: Any, queue_prefix: str | None) -> None:
        """A new session and/or prefix: drop the client, URLs and attributes (under the lock)."""
        if session is not None:
            self.session = session
        if queue_prefix is not None:
            self.queue_prefix = queue_prefix
        self._client = None
        self._client_pid = None
        self._api = None
        self._queue_urls = {}
        for queue in self.queues.values():
            queue.queue_url = None
            queue._attributes = None

    def _set_backoff_policy(self, policy: BackoffPolicy) -> None:
        """The new default policy, for queues that used the old one too (under the lock)."""
        old_policy, self.backoff_policy = self.backoff_policy, policy
        for queue in self.queues.values():
            if queue.backoff_policy is old_policy:
                queue.backoff_policy = policy

    # -- SQS access ----------------------------------------------------------

    @property
    def sqs_client(self) -> Any:
        """The SQS client; a new one in a forked child (connections aren't shared)."""
        pid = _process.pid
        if self._client is None or self._client_pid != pid:
            with self._lock:
                if self._client is None or self._client_pid != pid:
                    self._client = self.session.client("sqs")
                    self._client_pid = pid
                    self._client_made = True
                    self._api = None
                    self._queue_urls = {}
        return self._client

    @property
    def api(self) -> SQSApi:
        """The SQS client wrapped with sqsw's error handling."""
        client = self.sqs_client
        api = self._api
        if api is None or api.client is not client:
            # A session's clients that skip botocore's parameter check (AWSSession's
            # default): SQSApi checks every request sqsw builds from a user's input.
            made = self._client_made
            checks = made and not getattr(self.session, "parameter_validation", True)
            direct = made and getattr(self.session, "direct_requests", False)
            api = self._api = SQSApi(client, retry=self.retry, check_params=checks, direct=direct)
        return api

    def get_sqs_queue_name(self, queue_name: str) -> str:
        """The SQS name of a queue: ``queue_prefix`` + name."""
        return f"{self.queue_prefix}{queue_name}"

    def get_queue_url(self, queue_name: str) -> str:
        """The URL of a queue, looked up once per process."""
        url = self._queue_urls.get(queue_name)
        if url is None:
            sqs_name = self.get_sqs_queue_name(queue_name)
            response = self.api.call("get_queue_url", queue_name, QueueName=sqs_name)
            url = self._queue_urls[queue_name] = response["QueueUrl"]
        return url

    def forget_queue_url(self, queue_name: str) -> None:
        self._queue_urls.pop(queue_name, None)
        queue = self.queues.get(queue_name)
        if queue is not None:
            queue.queue_url = None

    # -- codecs ------------------------------------------------------------

    @property
    def codec(self) -> Codec:
        """The codec jobs are sent with; ``sqs.codec = "pickle"`` sets it (name or object)."""
        return self.decoding.codec

    @codec.setter
    def codec(self, spec: str | Codec) -> None:
        # sqs-workers' public field: resolved through the plugins as by
        # reconfigure(codec=...), and refused at once when it cannot be used.
        try:
            new_codec = get_codec(spec)
        except PluginError as exc:
            raise ConfigurationError(f"sqs.codec = {spec!r}: {exc}") from None
        with self._lock:
            self.decoding.set_codec(new_codec)

    @property
    def job_encoder(self) -> Callable[..., tuple[str, str]] | None:
        """``encode_job`` of the environment's codec, if it has one."""
        return self.decoding.job_encoder

    @property
    def accepted_content_types(self) -> frozenset[str]:
        """The content types this environment's workers decode."""
        return self.decoding.accepted_content_types

    def get_codec(self, spec: str | Codec) -> Codec:
        """A codec by name (content type) or object."""
        return self.decoding.get_codec(spec)

    def decode_job(self, message: Message) -> tuple[dict[str, Any], JobContext]:
        """Decode a job message into its keyword arguments and context (see
        :meth:`sqsw_core.job_decoding.JobDecoder.decode_job`)."""
        return self.decoding.decode_job(message)

    # -- queues --------------------------------------------------------------

    @overload
    def queue(self, queue_name: str) -> JobQueue: ...

    @overload
    def queue(
        self,
        queue_name: str,
        queue_maker: type[Q],
        backoff_policy: str | BackoffPolicy | None = None,
        *,
        queue_url: str | None = None,
        **options: Any,
    ) -> Q: ...

    @overload
    def queue(
        self,
        queue_name: str,
        queue_maker: str | QueueMaker | None = ...,
        backoff_policy: str | BackoffPolicy | None = None,
        *,
        queue_url: str | None = None,
        **options: Any,
    ) -> Any: ...

    def queue(
        self,
        queue_name: str,
        queue_maker: str | QueueMaker | None = None,
        backoff_policy: str | BackoffPolicy | None = None,
        *,
        queue_url: str | None = None,
        **options: Any,
    ) -> Any:
        """The queue object for ``queue_name``, created on first use.

        ``queue_maker`` is a queue type name (``"job"``, the default, ``"raw"``,
        ``"deadletter"``), a queue class, or a factory such as
        ``DeadLetterQueue.maker(upstream)``. A queue's type, backoff policy and
        options are those of its first call: a later call returns the same
        queue, and raises :class:`ConfigurationError` if an argument it gives
        differs from the first call's (arguments it leaves out are not compared).
        """
        with self._lock:
            queue = self.queues.get(queue_name)
            if queue is not None:
                if queue_maker is not None or backoff_policy is not None or queue_url or options:
                    self._check_same_queue(queue, queue_maker, backoff_policy, queue_url, options)
                return queue
            maker = _resolve_queue_maker(queue_maker or "job")
            policy = _resolve_queue_backoff(backoff_policy)
            queue = maker(env=self, name=queue_name, backoff_policy=policy, **options)
            if queue_url is not None:
                queue.queue_url = queue_url
            self.queues[queue_name] = queue
            self._queue_specs[queue_name] = _QueueSpec(maker, queue_url, dict(options))
            return queue

    def _check_same_queue(
        self,
        queue: GenericQueue,
        queue_maker: str | QueueMaker | None,
        backoff_policy: str | BackoffPolicy | None,
        queue_url: str | None,
        options: dict[str, Any],
    ) -> None:
        """Refuse a later ``queue()`` call whose arguments differ from the first one's."""
        spec = self._queue_specs[queue.name]
        created = {"type": _maker_text(spec.maker), "backoff_policy": repr(queue.backoff_policy)}
        if spec.queue_url is not None:
            created["queue_url"] = repr(spec.queue_url)
        created.update((key, repr(value)) for key, value in spec.options.items())
        asked: dict[str, str] = {}
        differs = False
        if queue_maker is not None:
            maker = _resolve_queue_maker(queue_maker)
            asked["type"] = _maker_text(maker)
            differs |= not _same_maker(spec.maker, maker)
        if backoff_policy is not None:
            policy = _resolve_queue_backoff(backoff_policy)
            asked["backoff_policy"] = repr(policy)
            differs |= not _same_value(queue.backoff_policy, policy)
        if queue_url is not None:
            asked["queue_url"] = repr(queue_url)
            differs |= queue_url != spec.queue_url
        for key, value in options.items():
            asked[key] = repr(value)
            differs |= key not in spec.options or not _same_value(spec.options[key], value)
        if differs:
            raise ConfigurationError(
                f"queue {queue.name!r} was created with {_args_text(created)}; this "
                f"sqs.queue({queue.name!r}, ...) call asks for {_args_text(asked)}. A queue's "
                "type, backoff policy and options are fixed by its first sqs.queue() call "
                f"(or sqs.processor/add_job): get it with sqs.queue({queue.name!r}), or "
                "give these arguments to the first call."
            )

    def processor(
        self,
        queue_name: str,
        job_name: str,
        pass_context: bool = False,
        context_var: str = DEFAULT_CONTEXT_VAR,
        time_limit: float | None = None,
    ) -> Callable[[Callable[..., Any]], AsyncTask[Any, Any]]:
        """Decorator: register a processor of ``job_name`` on job queue ``queue_name``."""
        queue = self.queue(queue_name)
        if not isinstance(queue, JobQueue):
            raise ConfigurationError(
                f"queue {queue_name!r} is a {type(queue).__name__}, not a job queue"
            )
        return queue.processor(
            job_name, pass_context=pass_context, context_var=context_var, time_limit=time_limit
        )

    def raw_processor(self, queue_name: str) -> Callable[[Callable[..., Any]], Any]:
        """Decorator: register the processor of raw queue ``queue_name``."""
        queue = self.queue(queue_name, "raw")
        return queue.raw_processor()  # type: ignore[no-any-return]

    def add_job(self, queue_name: str, job_name: str, **kwargs: Any) -> str | None:
        """Send a job to ``queue_name`` (prefer ``sqs.queue(name).add_job``)."""
        queue = self.queue(queue_name)
        if not isinstance(queue, JobQueue):
            raise ConfigurationError(f"queue {queue_name!r} is not a job queue")
        return queue.add_job(job_name, **kwargs)

    def process_batch(self, queue_name: str, wait_seconds: float = 0) -> Any:
        """Process one batch of ``queue_name`` (see ``GenericQueue.process_batch``)."""
        return self.queue(queue_name).process_batch(wait_seconds)

    def process_queue(
        self,
        queue_name: str,
        shutdown_policy: ShutdownPolicy | None = None,
        wait_seconds: float = 10,
        *,
        workers: int = 1,
        **engine_options: Any,
    ) -> EngineStats:
        """Process ``queue_name`` until stopped: ``sqs.queue(queue_name).process_queue``
        with the same options, returning the same counters."""
        return self.queue(queue_name).process_queue(
            shutdown_policy or NeverShutdown(), wait_seconds, workers=workers, **engine_options
        )

    def process_queues(
        self,
        queue_names: Iterable[str] | None = None,
        shutdown_policy_maker: Callable[[], ShutdownPolicy] = NeverShutdown,
        wait_seconds: float = 10,
        *,
        shutdown_policy: ShutdownPolicy | None = None,
        concurrency: int = 16,
        priority: str = "strict",
        weights: Mapping[str, float] | None = None,
        **engine_options: Any,
    ) -> dict[str, EngineStats]:
        """Process several queues in this process, sharing ``concurrency`` job threads.

        Without names, every queue of this environment's prefix is processed.
        ``priority="strict"``: a job of an earlier-named queue always runs
        before one of a later queue; ``"weighted"``: waiting queues share the
        job slots in proportion to ``weights`` (default 1 each). Each queue
        stops when its own policy says so: ``shutdown_policy_maker()``, or a
        copy of ``shutdown_policy`` for each queue (``IdleShutdown(5)``: each
        queue stops after 5 idle seconds of its own). The first
        SIGTERM/SIGINT/SIGHUP stops them all warmly, a second one a second or
        more later (or SIGQUIT) cold.
        Returns each queue's counters.
        """
        from sqsw_core.multi_queue import policy_maker, process_queues

        maker = policy_maker(shutdown_policy_maker, shutdown_policy)
        names = list(queue_names) if queue_names is not None else self.get_all_known_queues()
        check_queues_options(names, concurrency=concurrency, priority=priority, weights=weights)
        return process_queues(
            [self.queue(name) for name in names],
            maker,
            wait_seconds,
            concurrency=concurrency,
            priority=priority,
            weights=weights,
            **engine_options,
        )

    def get_all_known_queues(self) -> list[str]:
        """Names (without prefix) of the SQS queues that start with ``queue_prefix``."""
        names: list[str] = []
        params: dict[str, Any] = {"QueueNamePrefix": self.queue_prefix, "MaxResults": 1000}
        while True:
            response = self.api.call("list_queues", None, **params)
            for url in response.get("QueueUrls", []):
                names.append(url.rsplit("/", 1)[-1][len(self.queue_prefix) :])
            token = response.get("NextToken")
            if not token:
                return names
            params["NextToken"] = token

    def redrive_policy(self, dead_letter_queue_name: str, max_receive_count: int) -> RedrivePolicy:
        """Redrive to ``dead_letter_queue_name`` after ``max_receive_count`` deliveries."""
        return RedrivePolicy(self, dead_letter_queue_name, max_receive_count)


def _check_time_limit(limit: float | None) -> float | None:
    """A job time limit (seconds > 0, or ``None``), else ``ConfigurationError``."""
    if limit is not None:
        check_option("job_time_limit", limit, None)
        return float(limit)
    return None
