"""``SQSEnv``: an application's SQS configuration, its queues and its plugins."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, overload

from sqsw_core import plugins
from sqsw_core.backoff_policies import DEFAULT_BACKOFF, BackoffPolicy
from sqsw_core.codecs import ALWAYS_ACCEPTED, DEFAULT_CODEC, Codec, get_codec
from sqsw_core.context import JobContext, SQSContext, is_flat_dict
from sqsw_core.engine_options import check_queues_options
from sqsw_core.exceptions import (
    ConfigurationError,
    ContentTypeRefusedError,
    DecodeError,
    PluginError,
    quote,
)
from sqsw_core.long_delays import MAX_HOP_SECONDS, check_hop
from sqsw_core.messages import CONTENT_TYPE_ATTR, JOB_CONTEXT_ATTR, Message
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
    from sqsw_core.engine import EngineStats

logger = logging.getLogger("sqsw.env")

Q = TypeVar("Q", bound=GenericQueue)
QueueMaker = Callable[..., GenericQueue]
_EMPTY: dict[str, Any] = {}


def _is_backoff(obj: Any) -> bool:
    return callable(getattr(obj, "get_visibility_timeout", None))


def _is_processor_class(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, Processor)


def _processor_class_of(maker: Any) -> type[Processor]:
    """The class behind a processor maker (a class or ``Processor.maker(...)``)."""
    target = getattr(maker, "func", maker)
    return target if _is_processor_class(target) else Processor


def _processor_maker(
    processor: str | type[Processor] | list[str | type[Processor]] | None,
    processor_maker: Callable[..., Processor] | None,
) -> Callable[..., Processor]:
    """The processor factory for ``processor=`` (names or classes) or ``processor_maker=``."""
    if processor is not None and processor_maker is not None:
        raise ConfigurationError("give either processor= or processor_maker=, not both")
    if processor_maker is not None:
        return processor_maker
    specs = processor if isinstance(processor, list) else [processor or "default"]
    classes = [
        plugins.resolve(
            plugins.PROCESSORS,
            spec,
            _is_processor_class,
            instantiate=False,
            what="a Processor subclass",
        )
        for spec in specs
    ]
    return compose_processors(classes)


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
        processor: str | type[Processor] | list[str | type[Processor]] | None = None,
        backoff_policy: str | BackoffPolicy = DEFAULT_BACKOFF,
        *,
        processor_maker: Callable[..., Processor] | None = None,
        accept: Iterable[str] = (),
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        context_maker: Callable[[], SQSContext] = SQSContext,
        sqs_client: Any = None,
        retry: RetryPolicy | None = None,
        max_delay_hop: int = MAX_HOP_SECONDS,
    ) -> None:
        self.session = (
            plugins.resolve(plugins.SESSIONS, session, is_session)
            if isinstance(session, str)
            else session
        )
        if not is_session(self.session):
            raise ConfigurationError(
                f"session {session!r} has no client() method: pass a session plugin name "
                f"(installed: {', '.join(plugins.installed_names(plugins.SESSIONS))}), a "
                "boto3.Session or a MemorySession"
            )
        self.queue_prefix = queue_prefix
        self.codec: Codec = get_codec(codec)
        self.backoff_policy: BackoffPolicy = plugins.resolve(
            plugins.BACKOFF, backoff_policy, _is_backoff, what="a backoff policy"
        )
        self.processor_maker = _processor_maker(processor, processor_maker)
        self.processor_class: type[Processor] = _processor_class_of(self.processor_maker)
        self._accept = frozenset(accept)
        self._set_codec(self.codec)
        self._contexts: dict[tuple[str, str], dict[str, Any]] = {}
        if max_message_size < 1:
            raise ConfigurationError(f"max_message_size must be positive, got {max_message_size}")
        self.max_message_size = max_message_size
        self.context = context_maker()
        self.queues: dict[str, GenericQueue] = {}
        self._queue_urls: dict[str, str] = {}
        # Reentrant: a queue class may look up other queues while it is built.
        self._lock = threading.RLock()
        self._client = sqs_client
        self._client_pid = os.getpid() if sqs_client is not None else None
        self._api: SQSApi | None = None
        self.retry = retry or RetryPolicy()
        self.max_delay_hop = check_hop(max_delay_hop)

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
        processor: str | type[Processor] | list[str | type[Processor]] | None = None,
        processor_maker: Callable[..., Processor] | None = None,
        backoff_policy: str | BackoffPolicy | None = None,
        accept: Iterable[str] | None = None,
        max_message_size: int | None = None,
        max_delay_hop: int | None = None,
    ) -> SQSEnv:
        """Change this environment's plugins in place (``None`` keeps a setting); returns it.

        For tools that load an application and then apply configuration
        (``sqsw run --processor otel``). Queue objects and tasks stay valid: a
        new processor re-creates every registered processor from its function,
        a new session or prefix drops cached clients and URLs, and queues that
        used the environment's backoff policy get the new one.
        """
        if session is not None:
            new_session = (
                plugins.resolve(plugins.SESSIONS, session, is_session)
                if isinstance(session, str)
                else session
            )
            if not is_session(new_session):
                raise ConfigurationError(f"session {session!r} has no client() method")
        if backoff_policy is not None:
            new_policy = plugins.resolve(
                plugins.BACKOFF, backoff_policy, _is_backoff, what="a backoff policy"
            )
        new_codec = get_codec(codec) if codec is not None else None
        new_maker = (
            _processor_maker(processor, processor_maker)
            if processor is not None or processor_maker is not None
            else None
        )
        if max_message_size is not None and max_message_size < 1:
            raise ConfigurationError(f"max_message_size must be positive, got {max_message_size}")
        with self._lock:
            if session is not None or queue_prefix is not None:
                if session is not None:
                    self.session = new_session
                if queue_prefix is not None:
                    self.queue_prefix = queue_prefix
                self._client = None
                self._client_pid = None
                self._api = None
                self._queue_urls = {}
                for queue in self.queues.values():
                    queue.queue_url = None
                    queue._attributes = None
            if backoff_policy is not None:
                old_policy, self.backoff_policy = self.backoff_policy, new_policy
                for queue in self.queues.values():
                    if queue.backoff_policy is old_policy:
                        queue.backoff_policy = new_policy
            if accept is not None:
                self._accept = frozenset(accept)
            if new_codec is not None or accept is not None:
                self._set_codec(new_codec or self.codec)
            if max_message_size is not None:
                self.max_message_size = max_message_size
            if max_delay_hop is not None:
                self.max_delay_hop = check_hop(max_delay_hop)
            if new_maker is not None:
                self.processor_maker = new_maker
                self.processor_class = _processor_class_of(new_maker)
                for queue in self.queues.values():
                    if isinstance(queue, JobQueue):
                        queue.rebuild_processors()
        return self

    def _set_codec(self, codec: Codec) -> None:
        self.codec = codec
        # pickle and other codecs that can run code are decoded only when chosen;
        # an exclusive codec (message signing) also turns off the always-accepted
        # JSON, so only its own content type and explicit accept= entries run.
        always = frozenset() if getattr(codec, "exclusive", False) else ALWAYS_ACCEPTED
        self.accepted_content_types = frozenset({*always, self.codec.content_type, *self._accept})
        self._decoders: dict[str, Codec] = {self.codec.content_type: self.codec}
        #: Content types whose codec decodes whole jobs (``JobCodec.decode_job``).
        self._job_decoders: dict[str, Callable[..., tuple[Any, Any]]] = {}
        self._note_job_codec(codec)
        #: ``encode_job`` of the environment's codec, if it has one.
        self.job_encoder: Callable[..., tuple[str, str]] | None = getattr(codec, "encode_job", None)

    def _note_job_codec(self, codec: Codec) -> None:
        decode_job = getattr(codec, "decode_job", None)
        if decode_job is not None:
            self._job_decoders[codec.content_type] = decode_job

    # -- SQS access ----------------------------------------------------------

    @property
    def sqs_client(self) -> Any:
        """The SQS client; a new one in a forked child (connections aren't shared)."""
        pid = os.getpid()
        if self._client is None or self._client_pid != pid:
            with self._lock:
                if self._client is None or self._client_pid != pid:
                    self._client = self.session.client("sqs")
                    self._client_pid = pid
                    self._api = None
                    self._queue_urls = {}
        return self._client

    @property
    def api(self) -> SQSApi:
        """The SQS client wrapped with sqsw's error handling."""
        client = self.sqs_client
        api = self._api
        if api is None or api.client is not client:
            api = self._api = SQSApi(client, retry=self.retry)
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

    # -- codecs --------------------------------------------------------------

    def get_codec(self, spec: str | Codec) -> Codec:
        """A codec by name (content type) or object."""
        if isinstance(spec, str) and spec in self._decoders:
            return self._decoders[spec]
        return get_codec(spec)

    def decoder(self, content_type: str, message: Message) -> Codec:
        """The codec for a received message, if this worker accepts its content type."""
        codec = self._decoders.get(content_type)
        if codec is not None:
            return codec
        if content_type not in self.accepted_content_types:
            advice = ""
            if len(content_type) <= 40:  # advice that quotes a long name is no advice
                advice = (
                    f" Enable it with SQSEnv(codec={content_type!r}) or "
                    f"SQSEnv(accept=[{content_type!r}]) only if you trust every producer of "
                    "this queue."
                )
            raise ContentTypeRefusedError(
                f"message {message.message_id} on queue {message.queue_name!r} (job "
                f"{quote(message.job_name)!r}) has content type {quote(content_type)!r}, which "
                f"this worker does not accept (accepted: "
                f"{', '.join(sorted(self.accepted_content_types))}).{advice}"
            )
        try:
            codec = get_codec(content_type)
        except PluginError as exc:
            raise DecodeError(
                f"cannot decode message {message.message_id}: {quote(str(exc))}"
            ) from None
        self._decoders[content_type] = codec
        self._note_job_codec(codec)
        return codec

    #: Cached in place of a nested context: decode it afresh for every job.
    _DECODE_AGAIN: ClassVar[dict[str, Any]] = {}

    def decode_job(self, message: Message) -> tuple[dict[str, Any], JobContext]:
        """Decode a job message into its keyword arguments and context.

        Each call returns a context of its own: a job that changes its context
        (nested values included) changes nothing another job sees.
        """
        attributes = message.message_attributes
        content_type = (attributes.get(CONTENT_TYPE_ATTR) or _EMPTY).get("StringValue")
        if content_type is None:
            content_type = self.codec.content_type
        codec = self._decoders.get(content_type) or self.decoder(content_type, message)
        context_text = (attributes.get(JOB_CONTEXT_ATTR) or _EMPTY).get("StringValue")
        job_decoder = self._job_decoders.get(content_type) if self._job_decoders else None
        context: Any
        if job_decoder is not None:  # a JobCodec: body and context checked together
            try:
                job_kwargs, context = job_decoder(message.job_name, message.body, context_text)
            except Exception as exc:
                raise self._decode_error(message, content_type, exc) from exc
            if context is None:
                context = {}
        else:
            try:
                job_kwargs = codec.deserialize(message.body)
            except Exception as exc:
                raise self._decode_error(message, content_type, exc) from exc
            if not context_text:
                context = {}
            else:
                # Producers send the same few contexts over and over: decode each
                # once. Only flat ones are kept: the copy each job gets below is
                # then all its own; a nested context is decoded afresh every time.
                key = (content_type, context_text)
                cached = self._contexts.get(key)
                if cached is not None and cached is not self._DECODE_AGAIN:
                    context = cached
                else:
                    try:
                        context = codec.deserialize(context_text)
                    except Exception as exc:
                        raise DecodeError(
                            f"bad {JOB_CONTEXT_ATTR} attribute of message {message.message_id} "
                            f"on queue {message.queue_name!r} (job {quote(message.job_name)!r}"
                            f"): cannot decode it as {quote(content_type)!r}: "
                            f"{type(exc).__name__}: {quote(str(exc))}"
                        ) from exc
                    if cached is None and len(context_text) <= 1024:
                        if len(self._contexts) >= 512:
                            self._contexts.clear()
                        flat = is_flat_dict(context)
                        self._contexts[key] = context if flat else self._DECODE_AGAIN
        if type(job_kwargs) is not dict:
            raise DecodeError(
                f"the arguments of message {message.message_id} on queue "
                f"{message.queue_name!r} (job {quote(message.job_name)!r}) decoded to "
                f"{type(job_kwargs).__name__}, not a dict of keyword arguments"
            )
        if not isinstance(context, dict):
            raise DecodeError(
                f"bad {JOB_CONTEXT_ATTR} attribute of message {message.message_id} on queue "
                f"{message.queue_name!r} (job {quote(message.job_name)!r}): it decoded to "
                f"{type(context).__name__}, not a dict"
            )
        return job_kwargs, JobContext(context)

    @staticmethod
    def _decode_error(message: Message, content_type: str, exc: Exception) -> DecodeError:
        return DecodeError(
            f"cannot decode message {message.message_id} on queue {message.queue_name!r} "
            f"(job {quote(message.job_name)!r}) as {quote(content_type)!r}: "
            f"{type(exc).__name__}: {quote(str(exc))}"
        )

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
        queue_maker: str | QueueMaker = ...,
        backoff_policy: str | BackoffPolicy | None = None,
        *,
        queue_url: str | None = None,
        **options: Any,
    ) -> Any: ...

    def queue(
        self,
        queue_name: str,
        queue_maker: str | QueueMaker = "job",
        backoff_policy: str | BackoffPolicy | None = None,
        *,
        queue_url: str | None = None,
        **options: Any,
    ) -> Any:
        """The queue object for ``queue_name``, created on first use.

        ``queue_maker`` is a queue type name (``"job"``, ``"raw"``,
        ``"deadletter"``), a queue class, or a factory such as
        ``DeadLetterQueue.maker(upstream)``.
        """
        with self._lock:
            queue = self.queues.get(queue_name)
            if queue is not None:
                return queue
            maker = plugins.resolve(
                plugins.QUEUE_TYPES, queue_maker, callable, instantiate=False, what="a queue class"
            )
            policy = (
                plugins.resolve(plugins.BACKOFF, backoff_policy, _is_backoff)
                if backoff_policy is not None
                else None
            )
            queue = maker(env=self, name=queue_name, backoff_policy=policy, **options)
            if queue_url is not None:
                queue.queue_url = queue_url
            self.queues[queue_name] = queue
            return queue

    def processor(
        self,
        queue_name: str,
        job_name: str,
        pass_context: bool = False,
        context_var: str = DEFAULT_CONTEXT_VAR,
    ) -> Callable[[Callable[..., Any]], AsyncTask[Any, Any]]:
        """Decorator: register a processor of ``job_name`` on job queue ``queue_name``."""
        queue = self.queue(queue_name)
        if not isinstance(queue, JobQueue):
            raise ConfigurationError(
                f"queue {queue_name!r} is a {type(queue).__name__}, not a job queue"
            )
        return queue.processor(job_name, pass_context=pass_context, context_var=context_var)

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
    ) -> EngineStats | None:
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
        stops when its own policy (``shutdown_policy_maker()``) says so; the
        first SIGTERM/SIGINT/SIGHUP stops them all warmly, a second one a
        second or more later (or SIGQUIT) cold.
        Returns each queue's counters.
        """
        from sqsw_core.engine import QueueEngine
        from sqsw_core.slots import SlotAllocator
        from sqsw_core.stop_signals import StopSignals

        names = list(queue_names) if queue_names is not None else self.get_all_known_queues()
        check_queues_options(names, concurrency=concurrency, priority=priority, weights=weights)
        slots = SlotAllocator(concurrency, names, priority, weights)
        engines = {
            name: QueueEngine(
                self.queue(name),
                concurrency=concurrency,
                shutdown_policy=shutdown_policy_maker(),
                wait_seconds=wait_seconds,
                handle_signals=False,
                slots=slots,
                **engine_options,
            )
            for name in names
        }
        errors: list[BaseException] = []

        def run(engine: QueueEngine) -> None:
            try:
                engine.run()
            except BaseException as exc:  # reported after every queue stopped
                logger.exception("Worker of queue %s stopped with an error", engine.queue.name)
                errors.append(exc)
                for other in engines.values():
                    other.request_stop()

        def on_stop(cold: bool) -> None:
            for engine in engines.values():
                engine.request_stop(cold=cold)

        threads = [
            threading.Thread(target=run, args=(engine,), name=f"sqsw-queue-{name}")
            for name, engine in engines.items()
        ]
        # One reader of stop signals for all the queues (installed from the main
        # thread only): the first is a warm stop of every queue, a later one cold.
        with StopSignals(on_stop, f"{len(engines)} queue(s)"):
            for thread in threads:
                thread.start()
            for thread in threads:
                while thread.is_alive():  # a timed join lets signal handlers run
                    thread.join(0.2)
        if errors:
            raise errors[0]
        return {name: engine.stats for name, engine in engines.items()}

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
