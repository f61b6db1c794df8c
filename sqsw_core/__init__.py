"""sqsw: a plugin-based runtime for Amazon SQS job workers."""

from sqsw_core.async_sending import AsyncSender
from sqsw_core.backoff_policies import (
    DEFAULT_BACKOFF,
    IMMEDIATE_RETURN,
    BackoffPolicy,
    ConstantBackoff,
    ExponentialBackoff,
)
from sqsw_core.bulk_jobs import BatchingConfiguration, BatchMessages, BulkJobsFailed, NoBatching
from sqsw_core.codecs import Codec
from sqsw_core.context import JobContext, SQSContext
from sqsw_core.env import SQSEnv
from sqsw_core.exceptions import (
    AsyncJobError,
    BadMessageError,
    BulkReportError,
    ConfigurationError,
    ContentTypeRefusedError,
    DecodeError,
    JobArgumentsError,
    JobError,
    MessageTooLargeError,
    PluginError,
    QueueNotFoundError,
    RetryJob,
    SQSBatchError,
    SQSCallError,
    SQSError,
    UnknownJobError,
)
from sqsw_core.messages import Message
from sqsw_core.processors import Processor
from sqsw_core.queue import GenericQueue, JobQueue
from sqsw_core.queue_management import (
    RedrivePolicy,
    create_fifo_queue,
    create_standard_queue,
    delete_queue,
    get_queue_attributes,
    oldest_message_age,
)
from sqsw_core.results import BatchProcessingResult, EngineStats
from sqsw_core.sessions import AWSSession
from sqsw_core.shutdown_policies import (
    AndShutdown,
    IdleShutdown,
    MaxTasksShutdown,
    NeverShutdown,
    OrShutdown,
)
from sqsw_core.tasks import AsyncTask, BakedAsyncTask

__version__ = "0.1.0"

#: Former names, kept for code written against them (see the README's rename table).
BatchJobsFailed = BulkJobsFailed
BatchReportError = BulkReportError

__all__ = [
    "DEFAULT_BACKOFF",
    "IMMEDIATE_RETURN",
    "AWSSession",
    "AndShutdown",
    "AsyncJobError",
    "AsyncSender",
    "AsyncTask",
    "BackoffPolicy",
    "BadMessageError",
    "BakedAsyncTask",
    "BatchJobsFailed",
    "BatchMessages",
    "BatchProcessingResult",
    "BatchReportError",
    "BatchingConfiguration",
    "BulkJobsFailed",
    "BulkReportError",
    "Codec",
    "ConfigurationError",
    "ConstantBackoff",
    "ContentTypeRefusedError",
    "DecodeError",
    "EngineStats",
    "ExponentialBackoff",
    "GenericQueue",
    "IdleShutdown",
    "JobArgumentsError",
    "JobContext",
    "JobError",
    "JobQueue",
    "MaxTasksShutdown",
    "Message",
    "MessageTooLargeError",
    "NeverShutdown",
    "NoBatching",
    "OrShutdown",
    "PluginError",
    "Processor",
    "QueueNotFoundError",
    "RedrivePolicy",
    "RetryJob",
    "SQSBatchError",
    "SQSCallError",
    "SQSContext",
    "SQSEnv",
    "SQSError",
    "UnknownJobError",
    "create_fifo_queue",
    "create_standard_queue",
    "delete_queue",
    "get_queue_attributes",
    "oldest_message_age",
]
