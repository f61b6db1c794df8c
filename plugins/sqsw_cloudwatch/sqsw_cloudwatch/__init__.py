"""sqsw-cloudwatch: raw queues (queue type ``raw``) and typed CloudWatch/EventBridge events.

::

    from sqsw_core import SQSEnv
    from sqsw_cloudwatch import CloudWatchEvent, RawQueue

    sqs = SQSEnv()
    cron = sqs.queue("cron", RawQueue)          # or sqs.queue("cron", "raw")

    @cron.raw_processor()
    def tick(event: CloudWatchEvent) -> None:   # or def tick(message): ...
        print(event.detail_type, event.time)
"""

from sqsw_cloudwatch.events import CloudWatchEvent, json_body
from sqsw_cloudwatch.exceptions import NoRawProcessorError, NotAnEventError, NotJSONError
from sqsw_cloudwatch.handlers import RawHandler
from sqsw_cloudwatch.raw_queue import RawQueue

__version__ = "0.1.0"

__all__ = [
    "CloudWatchEvent",
    "NoRawProcessorError",
    "NotAnEventError",
    "NotJSONError",
    "RawHandler",
    "RawQueue",
    "json_body",
]
