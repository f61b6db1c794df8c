"""Span and metric attribute names: the OpenTelemetry semantic conventions, and sqsw's own.

The conventions' messaging and AWS SQS attributes; ``messaging.sqsw.*`` are
sqsw's (the conventions define no SQS receive count nor job name).
"""

from __future__ import annotations

__all__ = [
    "BATCH_ENTRIES_REFUSED",
    "BATCH_JOBS_FAILED",
    "BATCH_MESSAGE_COUNT",
    "BULK_JOBS_FAILED",
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
    "SYSTEM_AWS_SQS",
]

# Attribute names of the OpenTelemetry semantic conventions (messaging, AWS SQS).
MESSAGING_SYSTEM = "messaging.system"
DESTINATION_NAME = "messaging.destination.name"
OPERATION_NAME = "messaging.operation.name"
OPERATION_TYPE = "messaging.operation.type"
MESSAGE_ID = "messaging.message.id"
BATCH_MESSAGE_COUNT = "messaging.batch.message_count"
QUEUE_URL = "aws.sqs.queue.url"
ERROR_TYPE = "error.type"
#: ``messaging.system`` value for SQS in the semantic conventions.
SYSTEM_AWS_SQS = "aws_sqs"
# sqsw's own attributes: the conventions define no SQS receive count nor job name.
JOB_NAME = "messaging.sqsw.job_name"
RECEIVE_COUNT = "messaging.sqsw.receive_count"
#: How many jobs of a bulk job's call failed (without the handler raising), or
#: how many messages of a batch send SQS refused.
FAILED_COUNT = "messaging.sqsw.failed_count"
#: ``error.type`` of a bulk job's span when some of its jobs failed.
BULK_JOBS_FAILED = "sqsw_core.bulk_jobs.BulkJobsFailed"
#: The former name of ``BULK_JOBS_FAILED``.
BATCH_JOBS_FAILED = BULK_JOBS_FAILED
#: ``error.type`` of a batch send span when SQS refused some of its entries
#: (what ``add_batch()`` then raises).
BATCH_ENTRIES_REFUSED = "sqsw_core.exceptions.SQSBatchError"
