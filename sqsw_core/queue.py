"""Queues: ``GenericQueue`` (sending, receiving, processing) and ``JobQueue``.

Queue classes are plugins (group ``sqsw.queue_types``): ``job`` is the core's
:class:`JobQueue`; raw and dead-letter queues come from their own packages.
"""

from __future__ import annotations

import logging
import math
import numbers
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from typing_extensions import ParamSpec

from sqsw_core.async_sending import ASYNC_BATCHES as _ASYNC_BATCHES
from sqsw_core.async_sending import AsyncSendBatch
from sqsw_core.bulk_jobs import BatchingConfiguration, BulkJobsFailed, BulkProcessor
from sqsw_core.engine import QueueEngine
from sqsw_core.engine_options import check_option, check_options
from sqsw_core.exceptions import ConfigurationError, UnknownJobError, quote
from sqsw_core.job_runner import JobRunner
from sqsw_core.long_delays import MAX_LONG_DELAY_SECONDS, defer
from sqsw_core.messages import CONTENT_TYPE_ATTR, JOB_CONTEXT_ATTR, JOB_NAME_ATTR, Message
from sqsw_core.processors import (
    DEFAULT_CONTEXT_VAR,
    HandlerCall,
    Processor,
    async_kind,
    refuse_async,
)
from sqsw_core.results import BatchProcessingResult, EngineStats
from sqsw_core.sending import (
    MAX_DELAY_SECONDS,
    SendBatch,
    SendEntries,
    check_size,
    message_size,
)
from sqsw_core.sessions import is_process_local
from sqsw_core.shutdown_policies import NEVER_SHUTDOWN, ShutdownPolicy
from sqsw_core.sqs_calls import receive_messages
from sqsw_core.tasks import AsyncTask

if TYPE_CHECKING:
    from sqsw_core.backoff_policies import BackoffPolicy
    from sqsw_core.context import JobContext
    from sqsw_core.env import SQSEnv

logger = logging.getLogger("sqsw.queue")

P = ParamSpec("P")
R = TypeVar("R")

#: FIFO messages sent without ``_group_id`` share this group (sqs-workers' choice).
DEFAULT_MESSAGE_GROUP_ID = "default"


def check_delay(queue_name: str, delay_seconds: Any) -> float:
    """``delay_seconds`` if it is a delay sqsw can send; else one error naming what is allowed."""
    if type(delay_seconds) is int or type(delay_seconds) is float:
        number: float = delay_seconds
    elif isinstance(delay_seconds, numbers.Real) and not isinstance(delay_seconds, bool):
        number = float(delay_seconds)
    else:
        raise TypeError(
            f"_delay_seconds={delay_seconds!r} for queue {queue_name!r} is a "
            f"{type(delay_seconds).__name__}: give a number of seconds (int or float) from "
            f"0 to {MAX_LONG_DELAY_SECONDS} (14 days)"
        )
    if not 0 <= number <= MAX_LONG_DELAY_SECONDS:
        why = "is not a number" if math.isnan(number) else "is out of range"
        raise ValueError(
            f"_delay_seconds={delay_seconds!r} for queue {queue_name!r} {why}: give a number "
            f"of seconds from 0 to {MAX_LONG_DELAY_SECONDS} (14 days; delays over "
            f"{MAX_DELAY_SECONDS} s are sent in hops)"
        )
    return number


class GenericQueue:
    """A named SQS queue of an environment: sending, receiving and processing.

    Subclasses define :meth:`handle_message`, which runs one received message
    and raises to fail it.
    """

    def __init__(
        self,
        env: SQSEnv,
        name: str,
        backoff_policy: BackoffPolicy | None = None,
        *,
        queue_url: str | None = None,
        batching_policy: BatchingConfiguration | None = None,
        **options: Any,
    ) -> None:
        if options:
            raise ConfigurationError(
                f"{type(self).__name__} for queue {name!r} got unknown options {sorted(options)}"
            )
        self.batching_policy = self._check_batching(name, batching_policy)
        self.env = env
        self.name = name
        self.backoff_policy: BackoffPolicy = backoff_policy or env.backoff_policy
        self.queue_url = queue_url
        self._batches = threading.local()
        self._runner: JobRunner | None = None
        #: Job name -> the processor running many jobs of that name in one call.
        self.bulk_processors: dict[str, BulkProcessor] = {}
        self._attributes: dict[str, str] | None = None
        #: The engine processing this queue in this process, while one runs:
        #: processors and plugins read its counters as ``queue.engine.stats``.
        self.engine: QueueEngine | None = None
        #: The counters of the last engine that processed this queue in this process.
        self.last_engine_stats: EngineStats | None = None

    #: Whether ``batching_policy=BatchMessages(...)`` applies to this queue type.
    supports_batching = False

    @classmethod
    def _check_batching(
        cls, name: str, policy: BatchingConfiguration | None
    ) -> BatchingConfiguration | None:
        if policy is None:
            return None
        if not isinstance(policy, BatchingConfiguration):
            raise ConfigurationError(
                f"queue {name!r}: batching_policy must be BatchMessages(batch_size=N) or "
                f"NoBatching() (from sqsw_core), got {policy!r}"
            )
        if policy.batching_enabled and not cls.supports_batching:
            raise ConfigurationError(
                f"queue {name!r}: {cls.__name__} does not run batches ({policy!r}); "
                "batching_policy applies to job queues"
            )
        if policy.batching_enabled and name.endswith(".fifo"):
            raise ConfigurationError(
                f"queue {name!r} is FIFO: batching_policy={policy!r} would break the order "
                "within message groups; leave it out"
            )
        return policy

    @property
    def batch_size(self) -> int | None:
        """Jobs per call of this queue's processors (``batching_policy``), or ``None``."""
        policy = self.batching_policy
        return policy.batch_size if policy is not None and policy.batching_enabled else None

    @classmethod
    def maker(cls, **kwargs: Any) -> Callable[..., GenericQueue]:
        """A queue factory with some options fixed, for ``sqs.queue(name, maker)``."""
        return partial(cls, **kwargs)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    # -- addressing ----------------------------------------------------------

    def get_sqs_queue_name(self) -> str:
        """The SQS name: the environment's ``queue_prefix`` plus this queue's name."""
        return self.env.get_sqs_queue_name(self.name)

    @property
    def url(self) -> str:
        """The SQS queue URL (looked up once, then cached)."""
        if self.queue_url is None:
            self.queue_url = self.env.get_queue_url(self.name)
        return self.queue_url

    @property
    def is_fifo(self) -> bool:
        """FIFO queues' SQS names end in ``.fifo``; a queue given by URL is judged by it."""
        if self.queue_url is not None:
            return self.queue_url.endswith(".fifo")
        return self.name.endswith(".fifo")

    @property
    def has_async_jobs(self) -> bool:
        """Whether some of the queue's jobs are ``async def`` functions (none here)."""
        return False

    @property
    def process_local(self) -> bool:
        """Whether the queue lives in this process (the in-memory SQS)."""
        return is_process_local(self.env.session)

    @property
    def attributes(self) -> dict[str, str]:
        """The queue's SQS attributes, fetched once per process (and queue object)."""
        if self._attributes is None:
            response = self.call("get_queue_attributes", AttributeNames=["All"])
            self._attributes = dict(response.get("Attributes", {}))
        return self._attributes

    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """Call an SQS operation on this queue (``QueueUrl`` is filled in)."""
        return self.env.api.call(operation, self.name, QueueUrl=self.url, **params)

    # -- what the runtime needs (sqsw_core.queue_handle.QueueHandle) -----------

    @property
    def max_delay_hop(self) -> int:
        """The longest delay of one hop of a long-delayed job: the environment's."""
        return self.env.max_delay_hop

    def run_bulk_job(
        self, processor: BulkProcessor, messages: list[Message], jobs: list[Any]
    ) -> set[int]:
        """Call a bulk job's function inside the processors' ``handling`` hooks; the
        indices of the jobs it reported failed (see :class:`BulkProcessor`)."""
        hooks = self.env.processor_hooks
        if not hooks.handling_hooks:
            return processor.run(jobs)
        call = HandlerCall(self, messages, processor.job_name)
        with hooks.handling(call):
            call.failed = processor.run(jobs)
        return call.failed

    def decode_job(self, message: Message) -> tuple[dict[str, Any], JobContext]:
        """A job message's keyword arguments and context, by the environment's codecs."""
        return self.env.decode_job(message)

    def interrupt_receives(self) -> None:
        """End this queue's receives in progress now, where the session can.

        A session whose client has ``interrupt_receives(QueueUrl=...)`` (the
        in-memory SQS) makes them return at once; on SQS itself they end
        within their wait time.
        """
        interrupt = getattr(self.env.sqs_client, "interrupt_receives", None)
        if interrupt is not None:
            interrupt(QueueUrl=self.url)

    # -- sending -------------------------------------------------------------

    def build_entry(
        self,
        body: str,
        attributes: dict[str, dict[str, Any]],
        delay_seconds: float | None,
        deduplication_id: Any,
        group_id: Any,
    ) -> dict[str, Any]:
        """The ``SendMessage`` parameters for one message."""
        if delay_seconds is not None:
            delay_seconds = check_delay(self.name, delay_seconds)
            hop = self.env.max_delay_hop
            if delay_seconds > hop:
                attributes, delay_seconds = defer(
                    self.name, self.is_fifo, attributes, delay_seconds, hop
                )
        entry: dict[str, Any] = {"MessageBody": body, "MessageAttributes": attributes}
        if delay_seconds is not None:
            delay = int(delay_seconds)
            if not 0 <= delay <= MAX_DELAY_SECONDS:
                raise ValueError(
                    f"_delay_seconds={delay_seconds!r} for queue {self.name!r}: SQS accepts "
                    f"0 to {MAX_DELAY_SECONDS} seconds"
                )
            if delay and self.is_fifo:
                raise ValueError(
                    f"queue {self.name!r} is FIFO: SQS does not allow per-message delays on "
                    "FIFO queues (set the queue's DelaySeconds instead)"
                )
            if not self.is_fifo:
                entry["DelaySeconds"] = delay
        if self.is_fifo:
            entry["MessageGroupId"] = str(
                group_id if group_id is not None else DEFAULT_MESSAGE_GROUP_ID
            )
            if deduplication_id is not None:
                entry["MessageDeduplicationId"] = str(deduplication_id)
            elif self.attributes.get("ContentBasedDeduplication") != "true":
                raise ValueError(
                    f"queue {self.name!r} is FIFO without content-based deduplication: pass "
                    "_deduplication_id=... with every message, or create the queue with "
                    "content_based_deduplication=True"
                )
        elif group_id is not None:
            # Standard queues accept a group id for fair queues.
            entry["MessageGroupId"] = str(group_id)
        return entry

    def send_entry(self, entry: dict[str, Any], job_name: str | None = None) -> str | None:
        """Send one message now, or buffer it when inside ``add_batch()``.

        Returns the SQS message id, or ``None`` when buffered.
        """
        size = message_size(entry)
        check_size(self.name, job_name, size, self.env.max_message_size)
        batch: SendBatch | None = getattr(self._batches, "current", None)
        if batch is not None:
            batch.add(entry, job_name, size)
            return None
        hooks = self.env.processor_hooks
        if hooks.sending_hooks:
            with hooks.sending(self, [entry]):
                response = self.call("send_message", **entry)
        else:
            response = self.call("send_message", **entry)
        message_id: str = response["MessageId"]
        return message_id

    def send_entries(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """One ``SendMessageBatch`` call (entries carry their ``Id``)."""
        hooks = self.env.processor_hooks
        if not hooks.sending_hooks:
            return self.call("send_message_batch", Entries=entries)
        batch = SendEntries(entries)
        with hooks.sending(self, batch):
            response = self.call("send_message_batch", Entries=list(batch))
            batch.failed = response.get("Failed", [])
            return response

    @contextmanager
    def add_batch(self) -> Iterator[SendBatch]:
        """Buffer sends in the block and send them 10 per request.

        Batches are per thread; nested blocks join the outer one. Entries SQS
        refuses raise :class:`~sqsw_core.exceptions.SQSBatchError` at the end.
        """
        batch: SendBatch | None = getattr(self._batches, "current", None)
        if batch is not None:
            batch.level += 1
            try:
                yield batch
            finally:
                batch.level -= 1
            return
        batch = SendBatch(self, self.env.max_message_size)
        self._batches.current = batch
        try:
            yield batch
        finally:
            self._batches.current = None
        batch.close()

    # -- receiving and processing ---------------------------------------------

    @property
    def runner(self) -> JobRunner:
        """The job runner of ``process_batch`` and ``get_raw_messages`` in this process."""
        if self._runner is None:
            self._runner = JobRunner(self)
        return self._runner

    def handle_message(self, message: Message) -> None:
        """Run one received message; raise to fail it (it is then retried)."""
        raise NotImplementedError

    def get_raw_messages(self, wait_seconds: float = 0, max_messages: int = 10) -> list[Message]:
        """Receive messages without processing them (they stay in flight)."""
        messages: list[Message] = []
        while len(messages) < max_messages:
            wanted = min(10, max_messages - len(messages))
            got = self.runner.receive(wait_seconds, wanted)
            messages.extend(got)
            if len(got) < wanted:
                break
        return messages

    def process_batch(self, wait_seconds: float = 0) -> BatchProcessingResult:
        """Receive up to 10 messages, run them, ack the successes, retry the failures.

        With ``batching_policy=BatchMessages(batch_size=N)``: up to ``N`` messages
        (receiving more than once when ``N`` is over 10), as sqs-workers does.
        """
        batch_size = self.batch_size
        if batch_size is None:
            return self.runner.process_batch(wait_seconds)
        result = self.runner.process_messages(self.get_raw_messages(wait_seconds, batch_size))
        self.runner.settler.flush()
        return result

    def process_queue(
        self,
        shutdown_policy: ShutdownPolicy = NEVER_SHUTDOWN,
        wait_seconds: float = 10,
        *,
        workers: int = 1,
        **engine_options: Any,
    ) -> EngineStats:
        """Process this queue until ``shutdown_policy`` or a signal stops it.

        Runs :class:`~sqsw_core.engine.QueueEngine`: ``concurrency`` job
        threads (16 by default), prefetch, batched acks, visibility heartbeat
        and graceful shutdown on SIGTERM/SIGINT; ``engine_options`` are its
        keyword arguments. Returns the run's counters. ``workers=N`` runs N
        such processes under a supervisor that forwards signals, releases what
        a process that died held and restarts it; the counters returned are
        then those of all of them (an error is logged for each crash).
        """
        # Refused here, once, before any worker process starts.
        check_options({"workers": workers, "wait_seconds": wait_seconds, **engine_options})

        # Worker processes stop together (unless the caller, a supervisor itself, says so).
        options = {"shared_stop": workers > 1, **engine_options}

        def run() -> EngineStats:
            engine = QueueEngine(
                self, shutdown_policy=shutdown_policy, wait_seconds=wait_seconds, **options
            )
            return self.run_engine(engine)

        if workers == 1:
            return run()
        if is_process_local(self.env.session):
            raise ConfigurationError(
                f"workers={workers}: the session {self.env.session!r} keeps its queues in this "
                "process, so other processes cannot share them; use concurrency= (threads) "
                "instead, or a session on a real SQS endpoint"
            )
        from sqsw_core.supervisor import for_queues

        supervisor = for_queues(
            self.env,
            [self],
            run,
            workers,
            name=self.name,
            stats=self.engine_stats,
            wait_seconds=wait_seconds,
        )
        supervisor.run()  # crashes: logged, and in supervisor.crashed
        return supervisor.totals()

    def run_engine(self, engine: QueueEngine) -> EngineStats:
        """Run ``engine`` (an engine of this queue) in this thread until it stops;
        ``queue.engine`` is that engine meanwhile. Returns its counters."""
        self.engine = engine
        try:
            return engine.run()
        finally:
            self.engine = None
            self.last_engine_stats = engine.stats

    def engine_stats(self) -> list[EngineStats]:
        """The counters of the engine running this queue in this process, else of the
        last one that ran (none yet: empty)."""
        engine = self.engine
        if engine is not None:
            return [engine.stats]
        return [self.last_engine_stats] if self.last_engine_stats is not None else []

    def drain_queue(self, wait_seconds: float = 0) -> int:
        """Delete every message without running it; returns how many were deleted.

        Messages SQS refuses to delete are logged and not counted; they are
        delivered again after their visibility timeout.
        """
        deleted = 0
        while True:
            messages = receive_messages(self, wait_seconds)
            if not messages:
                return deleted
            deleted += len(messages) - self.runner.settler.discard(messages, "it was not drained")


class JobQueue(GenericQueue):
    """A queue of named jobs: ``@queue.processor(name)`` registers, ``delay()`` sends."""

    supports_batching = True

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(*args, **options)
        #: Job name -> the processor that runs it.
        self.processors: dict[str, Processor] = {}

    def processor(
        self,
        job_name: str,
        *args: Any,
        pass_context: bool = False,
        context_var: str = DEFAULT_CONTEXT_VAR,
        time_limit: float | None = None,
    ) -> Callable[[Callable[P, R]], AsyncTask[P, R]]:
        """Decorator registering a function as the processor of ``job_name``.

        ``time_limit``: seconds an ``async def`` job may run before it is cancelled
        and retried (a sync job past it is logged); default: the env's
        ``job_time_limit``.

        ``queue.processor(queue_name, job_name, ...)``, the env-level spelling
        some sqs-workers examples use on a queue, is accepted too.
        """
        if args and isinstance(args[0], str):
            queue_name, job_name, args = job_name, args[0], args[1:]
            if queue_name != self.name:
                raise ConfigurationError(
                    f"queue {self.name!r} cannot register job {job_name!r} for queue "
                    f"{queue_name!r}; use sqs.processor({queue_name!r}, {job_name!r})"
                )
        if args:
            pass_context = bool(args[0])
            if len(args) > 1:
                context_var = args[1]
        if self.batch_size is not None:  # sqs-workers' batch reads: fn takes a list of jobs
            return self._batch_reads(job_name, pass_context, context_var)  # type: ignore[return-value]

        def register(fn: Callable[P, R]) -> AsyncTask[P, R]:
            return self.connect_processor(job_name, fn, pass_context, context_var, time_limit)

        return register

    def connect_processor(
        self,
        job_name: str,
        fn: Callable[P, R],
        pass_context: bool = False,
        context_var: str = DEFAULT_CONTEXT_VAR,
        time_limit: float | None = None,
    ) -> AsyncTask[P, R]:
        """Register ``fn`` as the processor of ``job_name``; returns its task."""
        refuse_async(fn, f"job {job_name!r} on queue {self.name!r}")
        if time_limit is not None:
            check_option("job_time_limit", time_limit, f"time_limit of job {job_name!r}")
        self.bulk_processors.pop(job_name, None)
        processor = self.env.processor_maker(
            queue=self,
            fn=fn,
            job_name=job_name,
            pass_context=pass_context,
            context_var=context_var,
        )
        processor.time_limit = float(time_limit) if time_limit is not None else None
        self.processors[job_name] = processor
        logger.debug("Registered %s.%s -> %s", self.name, job_name, getattr(fn, "__qualname__", fn))
        return AsyncTask(self, job_name, fn, pass_context, context_var)

    @property
    def has_async_jobs(self) -> bool:
        """Whether some of the queue's job functions are ``async def``."""
        return any(async_kind(p.fn) is not None for p in self.processors.values())

    def rebuild_processors(self) -> None:
        """Re-create every registered processor with the environment's ``processor_maker``."""
        for job_name, old in list(self.processors.items()):
            processor = self.env.processor_maker(
                queue=self,
                fn=old.fn,
                job_name=job_name,
                pass_context=old.pass_context,
                context_var=old.context_var,
            )
            processor.time_limit = old.time_limit
            self.processors[job_name] = processor

    def bulk_processor(
        self,
        job_name: str,
        max_jobs: int = 10,
        max_wait: float = 1.0,
        *,
        pass_context: bool = False,
        context_var: str = DEFAULT_CONTEXT_VAR,
    ) -> Callable[[Callable[[list[dict[str, Any]]], Any]], AsyncTask[..., Any]]:
        """Decorator registering a function that runs many jobs of ``job_name`` at once.

        The function takes a list of jobs (dicts of keyword arguments, with the
        context under ``context_var`` when ``pass_context``); the engine gathers
        up to ``max_jobs`` messages, waiting at most ``max_wait`` seconds after
        the first. It returns ``None`` when every job succeeded, or the indices
        of the jobs that failed (or raises ``BulkJobsFailed``): only those are
        retried. ``delay(**kwargs)`` sends one job, as for any processor.
        """
        if self.is_fifo:
            raise ConfigurationError(
                f"queue {self.name!r} is FIFO: bulk processors would break the order "
                "within message groups; register a @queue.processor instead"
            )

        def register(fn: Callable[[list[dict[str, Any]]], Any]) -> AsyncTask[..., Any]:
            self.bulk_processors[job_name] = BulkProcessor(
                self, fn, job_name, max_jobs, max_wait, pass_context, context_var
            )
            self.processors.pop(job_name, None)
            return AsyncTask(self, job_name, fn, takes_job_list=True)

        return register

    def _batch_reads(
        self, job_name: str, pass_context: bool, context_var: str
    ) -> Callable[[Callable[[list[dict[str, Any]]], Any]], AsyncTask[..., Any]]:
        """``@queue.processor`` on a queue with ``batching_policy=BatchMessages(N)``: a bulk
        processor of up to ``N`` jobs whose return value is ignored (sqs-workers' rule)."""
        policy = self.batching_policy
        assert policy is not None

        def register(fn: Callable[[list[dict[str, Any]]], Any]) -> AsyncTask[..., Any]:
            self.bulk_processors[job_name] = BulkProcessor(
                self,
                fn,
                job_name,
                policy.batch_size,
                policy.max_wait,
                pass_context,
                context_var,
                ignore_result=True,
            )
            self.processors.pop(job_name, None)
            return AsyncTask(self, job_name, fn, takes_job_list=True)

        return register

    def batch_processor(
        self, job_name: str, max_batch: int = 10, max_wait: float = 1.0, **options: Any
    ) -> Callable[[Callable[[list[dict[str, Any]]], Any]], AsyncTask[..., Any]]:
        """The former name of :meth:`bulk_processor` (``max_batch`` is its ``max_jobs``)."""
        return self.bulk_processor(job_name, max_batch, max_wait, **options)

    def get_processor(self, job_name: str) -> Processor | None:
        return self.processors.get(job_name)

    def copy_processors(self, dst_queue: JobQueue) -> None:
        """Give ``dst_queue`` this queue's processors (to run its dead letters, say)."""
        for job_name, processor in self.processors.items():
            dst_queue.processors[job_name] = processor.copy(queue=dst_queue)

    def add_job(
        self,
        job_name: str,
        _content_type: str | None = None,
        _delay_seconds: float | None = None,
        _deduplication_id: Any = None,
        _group_id: Any = None,
        **job_kwargs: Any,
    ) -> str | None:
        """Send job ``job_name`` with keyword arguments ``job_kwargs``.

        ``_delay_seconds`` hides it for up to 15 minutes; on FIFO queues
        ``_deduplication_id`` and ``_group_id`` (default ``"default"``) apply.
        Returns the message id, or ``None`` inside ``add_batch()``.
        """
        body, context, content_type = self.encode_job(job_name, job_kwargs, _content_type)
        return self.add_raw_job(
            job_name, body, context, content_type, _delay_seconds, _deduplication_id, _group_id
        )

    async def add_job_async(
        self,
        job_name: str,
        _content_type: str | None = None,
        _delay_seconds: float | None = None,
        _deduplication_id: Any = None,
        _group_id: Any = None,
        **job_kwargs: Any,
    ) -> str | None:
        """:meth:`add_job` for asyncio code: the event loop never waits on SQS.

        The job is encoded here (with this task's context); the SQS call runs on
        a sending thread of the environment. Inside ``add_batch_async()`` the job
        is buffered (``None`` is returned) and sent 10 per call.
        """
        body, context, content_type = self.encode_job(job_name, job_kwargs, _content_type)
        encoded = (job_name, body, context, content_type)
        options = (_delay_seconds, _deduplication_id, _group_id)
        batch = _ASYNC_BATCHES.get().get(self)
        if batch is None:
            return await self.env.async_sender.run(self.add_raw_job, *encoded, *options)
        await batch.add(self.job_entry(*encoded, *options), job_name)
        return None

    @asynccontextmanager
    async def add_batch_async(self) -> AsyncIterator[AsyncSendBatch]:
        """:meth:`add_batch` for asyncio code: ``add_job_async`` calls (and ``delay_async``)
        in the block, and in the tasks it starts, are sent 10 per request.

        Await every send of the block before it ends; entries SQS refuses raise
        :class:`~sqsw_core.exceptions.SQSBatchError` at its end. Nested blocks join
        the outer one.
        """
        batches = _ASYNC_BATCHES.get()
        outer = batches.get(self)
        if outer is not None:
            yield outer
            return
        sender = self.env.async_sender
        # The URL (and a FIFO queue's attributes) once, on a thread: building an
        # entry in the loop then never calls SQS.
        await sender.run(self._resolve_for_sending)
        batch = AsyncSendBatch(self, sender, self.env.max_message_size)
        token = _ASYNC_BATCHES.set({**batches, self: batch})
        try:
            yield batch
        finally:
            _ASYNC_BATCHES.reset(token)
        await batch.close()

    def _resolve_for_sending(self) -> None:
        """Look up what building an entry needs from SQS (the URL, a FIFO queue's attributes)."""
        _ = self.url
        if self.is_fifo:
            _ = self.attributes

    def encode_job(
        self, job_name: str, job_kwargs: dict[str, Any], content_type: str | None = None
    ) -> tuple[str, str, str]:
        """A job's body, context (this thread's or task's ``sqs.context``) and content type."""
        env = self.env
        if content_type is None:
            codec, encode_job = env.codec, env.job_encoder
        else:
            codec = env.get_codec(content_type)
            encode_job = getattr(codec, "encode_job", None)
        if encode_job is not None:  # a JobCodec: body and context made together
            body, context = encode_job(job_name, job_kwargs, env.context.to_dict())
        else:
            body = codec.serialize(job_kwargs)
            context = codec.serialize(env.context.to_dict())
        return body, context, codec.content_type

    def add_raw_job(
        self,
        job_name: str,
        message_body: str,
        job_context: str,
        content_type: str,
        delay_seconds: float | None = None,
        deduplication_id: Any = None,
        group_id: Any = None,
    ) -> str | None:
        """Send an already encoded job (the sqs-workers low-level API)."""
        entry = self.job_entry(
            job_name,
            message_body,
            job_context,
            content_type,
            delay_seconds,
            deduplication_id,
            group_id,
        )
        return self.send_entry(entry, job_name)

    def job_entry(
        self,
        job_name: str,
        message_body: str,
        job_context: str,
        content_type: str,
        delay_seconds: float | None = None,
        deduplication_id: Any = None,
        group_id: Any = None,
    ) -> dict[str, Any]:
        """The ``SendMessage`` parameters of an encoded job (the sqs-workers attributes)."""
        attributes = {
            CONTENT_TYPE_ATTR: {"StringValue": content_type, "DataType": "String"},
            JOB_CONTEXT_ATTR: {"StringValue": job_context, "DataType": "String"},
            JOB_NAME_ATTR: {"StringValue": job_name, "DataType": "String"},
        }
        return self.build_entry(message_body, attributes, delay_seconds, deduplication_id, group_id)

    def handle_message(self, message: Message) -> Any:
        attribute = message.message_attributes.get(JOB_NAME_ATTR)
        job_name = attribute.get("StringValue") if attribute is not None else None
        if job_name is None:
            raise UnknownJobError(
                f"message has no {JOB_NAME_ATTR} attribute, so it was not sent as a job by "
                f"sqsw or sqs-workers; to consume messages from other producers, use a raw "
                f"queue: sqs.queue({self.name!r}, 'raw')"
            )
        processor = self.processors.get(job_name)
        if processor is None:
            batch = self.bulk_processors.get(job_name)
            if batch is not None:  # one message of a bulk job, on its own
                # An unclear report raises BulkReportError: the job fails, never acked.
                if batch.run([self.decode_job(message)]):
                    raise BulkJobsFailed([0])
                return
            known = ", ".join(sorted([*self.processors, *self.bulk_processors])) or "none"
            raise UnknownJobError(
                f"no processor for job {quote(job_name)!r} on queue {self.name!r} "
                f"(registered: {quote(known)}); register it with @queue.processor(...) in "
                "the worker's code, or check that producer and worker use the same queue"
            )
        job_kwargs, job_context = self.env.decoding.decode_job(message)
        return processor.run(message, job_kwargs, job_context)  # an async job: its coroutine
