"""``OtelProcessor``: PRODUCER spans around sends, CONSUMER spans around jobs and batches."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from sqsw_core.exceptions import RetryJob
from sqsw_core.processors import HandlerCall, Processor, async_kind
from sqsw_otel.attributes import (
    BATCH_ENTRIES_REFUSED,
    BATCH_MESSAGE_COUNT,
    BULK_JOBS_FAILED,
    DESTINATION_NAME,
    ERROR_TYPE,
    FAILED_COUNT,
    JOB_NAME,
    MESSAGING_SYSTEM,
    OPERATION_NAME,
    OPERATION_TYPE,
    SYSTEM_AWS_SQS,
)
from sqsw_otel.propagation import inject
from sqsw_otel.spans import consuming, fail, retrying, set_queue_url
from sqsw_otel.telemetry import Telemetry, global_providers_off, telemetry_for

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider
    from opentelemetry.util.types import AttributeValue

    from sqsw_core.queue import GenericQueue

__all__ = ["OtelProcessor"]


class OtelProcessor(Processor):
    """Traces and measures sends and jobs with the OpenTelemetry API.

    Spans and metrics go to the global providers unless a subclass made by
    :meth:`using` names its own. Compose with other processors by listing
    them: ``SQSEnv(processor=["otel", MyProcessor])`` (first = outermost).
    """

    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None

    @classmethod
    def using(
        cls,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> type[OtelProcessor]:
        """A subclass reporting to these providers instead of the global ones."""
        return type(
            cls.__name__,
            (cls,),
            {
                "tracer_provider": tracer_provider,
                "meter_provider": meter_provider,
                "__module__": cls.__module__,
            },
        )

    @classmethod
    def telemetry(cls) -> Telemetry:
        """The tracer and instruments for this class's providers (made once)."""
        return telemetry_for(cls.tracer_provider, cls.meter_provider)

    @classmethod
    def telemetry_off(cls) -> bool:
        """True while no SDK is configured: the API's proxy providers, no explicit ones.

        Re-checked at most once a second (the API's lookups read the
        environment), so an SDK configured later is picked up within a second;
        until then jobs and sends skip span and metric bookkeeping entirely.
        """
        if cls.tracer_provider is not None or cls.meter_provider is not None:
            return False
        return global_providers_off()

    def _base_attributes(self) -> tuple[str, dict[str, AttributeValue], dict[str, AttributeValue]]:
        """Span name, span attributes and metric attributes shared by this processor's jobs."""
        cached: tuple[str, dict[str, AttributeValue], dict[str, AttributeValue]] | None
        cached = self.__dict__.get("_otel_base")
        if cached is None:
            destination = self.queue.get_sqs_queue_name()
            metric: dict[str, AttributeValue] = {
                MESSAGING_SYSTEM: SYSTEM_AWS_SQS,
                DESTINATION_NAME: destination,
                OPERATION_NAME: "process",
                JOB_NAME: self.job_name,
            }
            cached = (f"process {destination}", {**metric, OPERATION_TYPE: "process"}, metric)
            self.__dict__["_otel_base"] = cached
        return cached

    def process(self, job_kwargs: dict[str, Any], job_context: Any = None) -> Any:
        """Run the job inside a CONSUMER span continuing the producer's trace."""
        if self.telemetry_off():
            return super().process(job_kwargs, job_context)
        if async_kind(self.fn) is not None:
            # An async job: the span is opened in its own task, around the await, so
            # the job's spans (after any await) are its children.
            return self._process_async(job_kwargs, job_context)
        with self._consumer_span() as span:
            try:
                return super().process(job_kwargs, job_context)
            except RetryJob as retry:
                retrying(span, retry)
                raise

    async def _process_async(self, job_kwargs: dict[str, Any], job_context: Any) -> Any:
        with self._consumer_span() as span:
            try:
                return await super().process(job_kwargs, job_context)
            except RetryJob as retry:
                retrying(span, retry)
                raise

    def _consumer_span(self) -> AbstractContextManager[Any]:
        """The CONSUMER span of the current job, continuing its producer's trace."""
        name, base, metric_attributes = self._base_attributes()
        message = self.message
        return consuming(
            self.telemetry(),
            self.queue,
            name,
            base,
            metric_attributes,
            [message] if message is not None else [],
        )

    @classmethod
    @contextmanager
    def handling(cls, call: HandlerCall) -> Iterator[HandlerCall]:
        """A CONSUMER span around a raw queue's handler or a bulk job.

        One message: the span continues the producer's trace, as for jobs. A
        batch: one span linked to each message's producer context, with
        ``messaging.batch.message_count``; jobs the handler reported failed
        make its status ERROR (``error.type`` ``BulkJobsFailed``).
        """
        if cls.telemetry_off():
            with super().handling(call):
                yield call
            return
        queue = call.queue
        destination = queue.get_sqs_queue_name()
        metric_attributes: dict[str, AttributeValue] = {
            MESSAGING_SYSTEM: SYSTEM_AWS_SQS,
            DESTINATION_NAME: destination,
            OPERATION_NAME: "process",
        }
        if call.job_name is not None:
            metric_attributes[JOB_NAME] = call.job_name
        base = {**metric_attributes, OPERATION_TYPE: "process"}
        with consuming(
            cls.telemetry(),
            queue,
            f"process {destination}",
            base,
            metric_attributes,
            call.messages,
        ) as span:
            try:
                with super().handling(call):
                    yield call
            except RetryJob as retry:
                retrying(span, retry)
                raise
            if call.failed:
                span.set_attribute(ERROR_TYPE, BULK_JOBS_FAILED)
                span.set_attribute(FAILED_COUNT, len(call.failed))
                span.set_status(
                    Status(
                        StatusCode.ERROR,
                        f"{len(call.failed)} of {len(call.messages)} jobs of the batch failed",
                    )
                )

    @classmethod
    @contextmanager
    def sending(
        cls, queue: GenericQueue, entries: list[dict[str, Any]]
    ) -> Iterator[list[dict[str, Any]]]:
        """Wrap one send call in a PRODUCER span whose context goes into every entry."""
        if cls.telemetry_off():
            with super().sending(queue, entries) as sent:
                yield sent
            return
        telemetry = cls.telemetry()
        destination = queue.get_sqs_queue_name()
        metric_attributes: dict[str, AttributeValue] = {
            MESSAGING_SYSTEM: SYSTEM_AWS_SQS,
            DESTINATION_NAME: destination,
            OPERATION_NAME: "send",
        }
        attributes: dict[str, AttributeValue] = {**metric_attributes, OPERATION_TYPE: "send"}
        if entries and "Id" in entries[0]:  # SendMessageBatch entries carry an Id
            attributes[BATCH_MESSAGE_COUNT] = len(entries)
        span = telemetry.tracer.start_span(
            f"send {destination}", kind=SpanKind.PRODUCER, attributes=attributes
        )
        count = len(entries)
        with trace.use_span(
            span, end_on_exit=True, record_exception=False, set_status_on_exception=False
        ):
            inject(entries, queue, destination)
            try:
                with super().sending(queue, entries) as sent:
                    yield sent
            except Exception as exc:
                set_queue_url(span, queue)
                error_type = fail(span, exc)
                telemetry.sent.add(count, {**metric_attributes, ERROR_TYPE: error_type})
                raise
            set_queue_url(span, queue)
            # Entries SQS refused one by one inside a batch call that succeeded.
            refused: list[dict[str, Any]] = getattr(entries, "failed", None) or []
            if refused:
                codes = sorted({str(f.get("Code")) for f in refused})
                span.set_attribute(ERROR_TYPE, BATCH_ENTRIES_REFUSED)
                span.set_attribute(FAILED_COUNT, len(refused))
                span.set_status(
                    Status(
                        StatusCode.ERROR,
                        f"SQS refused {len(refused)} of {count} messages: {', '.join(codes)}",
                    )
                )
                telemetry.sent.add(
                    len(refused), {**metric_attributes, ERROR_TYPE: BATCH_ENTRIES_REFUSED}
                )
                count -= len(refused)
        telemetry.sent.add(count, metric_attributes)
