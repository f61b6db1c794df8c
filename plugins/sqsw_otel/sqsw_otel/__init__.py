"""OpenTelemetry tracing and metrics for sqsw, registered as processor ``otel``.

``SQSEnv(processor="otel")`` gives every send call a ``send {queue}`` PRODUCER
span whose context travels in the messages (W3C ``traceparent``/``tracestate``
String message attributes), and every job a ``process {queue}`` CONSUMER span
continuing that trace, plus the messaging metrics of the OpenTelemetry semantic
conventions. Only ``opentelemetry-api`` is used: without an SDK every call is
a no-op.

Modules: ``processor`` (:class:`OtelProcessor`), ``spans`` (failures, retries,
the CONSUMER span), ``propagation`` (trace context in message attributes),
``telemetry`` (tracer and instruments per provider pair), ``attributes``
(semantic-convention names).
"""

from __future__ import annotations

# ``X as X``: public before the split though not in ``__all__``, still exported from here.
from sqsw_otel.attributes import BATCH_ENTRIES_REFUSED as BATCH_ENTRIES_REFUSED
from sqsw_otel.attributes import BATCH_JOBS_FAILED as BATCH_JOBS_FAILED
from sqsw_otel.attributes import (
    BATCH_MESSAGE_COUNT,
    DESTINATION_NAME,
    ERROR_TYPE,
    FAILED_COUNT,
    JOB_NAME,
    MESSAGE_ID,
    MESSAGING_SYSTEM,
    OPERATION_NAME,
    OPERATION_TYPE,
    QUEUE_URL,
    RECEIVE_COUNT,
)
from sqsw_otel.attributes import BULK_JOBS_FAILED as BULK_JOBS_FAILED
from sqsw_otel.attributes import SYSTEM_AWS_SQS as SYSTEM_AWS_SQS
from sqsw_otel.processor import OtelProcessor
from sqsw_otel.propagation import AWS_TRACE_HEADER as AWS_TRACE_HEADER
from sqsw_otel.propagation import MESSAGE_ATTRIBUTE_SETTER as MESSAGE_ATTRIBUTE_SETTER
from sqsw_otel.propagation import MESSAGE_GETTER as MESSAGE_GETTER
from sqsw_otel.propagation import XRAY_HEADER as XRAY_HEADER
from sqsw_otel.propagation import MessageAttributeSetter, MessageGetter
from sqsw_otel.propagation import logger as logger
from sqsw_otel.telemetry import DURATION_BUCKETS as DURATION_BUCKETS
from sqsw_otel.telemetry import INSTRUMENTATION_NAME as INSTRUMENTATION_NAME
from sqsw_otel.telemetry import INSTRUMENTATION_VERSION

__all__ = [
    "BATCH_MESSAGE_COUNT",
    "DESTINATION_NAME",
    "ERROR_TYPE",
    "FAILED_COUNT",
    "JOB_NAME",
    "MESSAGE_ID",
    "MESSAGING_SYSTEM",
    "OPERATION_NAME",
    "OPERATION_TYPE",
    "QUEUE_URL",
    "RECEIVE_COUNT",
    "MessageAttributeSetter",
    "MessageGetter",
    "OtelProcessor",
]

__version__ = INSTRUMENTATION_VERSION
