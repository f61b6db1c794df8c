"""sqsw-lambda: run the jobs registered on an ``SQSEnv`` on AWS Lambda.

In the function's module::

    from myapp.jobs import sqs          # the SQSEnv with the registered processors
    import sqsw_lambda

    handler = sqsw_lambda.handler(sqs)  # Lambda's handler setting: module.handler

and an SQS event source mapping with ``ReportBatchItemFailures`` turned on.
"""

from __future__ import annotations

from sqsw_lambda.handler import DEFAULT_TIME_MARGIN, LambdaHandler, NotAnSQSEventError, handler
from sqsw_lambda.invocation import lambda_context
from sqsw_lambda.records import BadRecordError, QueueArn, message_from_record
from sqsw_lambda.testing import sqs_event, sqs_record

__all__ = [
    "DEFAULT_TIME_MARGIN",
    "BadRecordError",
    "LambdaHandler",
    "NotAnSQSEventError",
    "QueueArn",
    "handler",
    "lambda_context",
    "message_from_record",
    "sqs_event",
    "sqs_record",
]
