"""sqsw-memory: a faithful in-memory Amazon SQS.

``MemorySession()`` stands in for a ``boto3.Session``: its ``client("sqs")``
has boto3's method names, arguments, response shapes and exception classes,
and behaves like SQS (visibility timeouts, delays, long polling, redrive,
FIFO ordering and deduplication, batch errors, message move tasks).
"""

from sqsw_memory.client import MemorySQSClient
from sqsw_memory.session import MemorySession

__all__ = ["MemorySQSClient", "MemorySession"]
