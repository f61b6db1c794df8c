"""Every error sqsw raises on purpose, in one place.

All of them derive from :class:`SQSError` (the name sqs-workers users already
catch), so ``except SQSError`` catches anything the product raises itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqsw_core.log_text import shorten

if TYPE_CHECKING:
    from sqsw_core.backoff_policies import BackoffPolicy


class SQSError(Exception):
    """Base class of every error raised by sqsw."""


class ConfigurationError(SQSError, ValueError):
    """An option given to sqsw is not valid; the message says which and why."""


class PluginError(SQSError, LookupError):
    """A plugin that was asked for by name is not installed or fails to load.

    Attributes name the entry-point ``group``, the requested ``name``, the
    ``installed`` names of that group, a close ``suggestion`` (or ``None``) and
    the ``package`` that provides the plugin, when it is one sqsw knows.
    """

    def __init__(
        self,
        message: str,
        *,
        group: str,
        name: str,
        installed: list[str],
        suggestion: str | None = None,
        package: str | None = None,
    ) -> None:
        super().__init__(message)
        self.group = group
        self.name = name
        self.installed = installed
        self.suggestion = suggestion
        self.package = package


class QueueNotFoundError(SQSError, LookupError):
    """The named queue does not exist on the SQS endpoint in use."""

    def __init__(self, queue_name: str, message: str) -> None:
        super().__init__(message)
        self.queue_name = queue_name


class SQSCallError(SQSError):
    """An SQS API call failed; the message names the operation and the queue."""

    def __init__(
        self, message: str, *, operation: str, queue_name: str | None, code: str | None
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.queue_name = queue_name
        self.code = code


class MessageTooLargeError(SQSError, ValueError):
    """A message is larger than the queue accepts; raised before any network call."""


class SQSBatchError(SQSError):
    """Some entries of a batched send were refused by SQS.

    ``errors`` holds one dict per refused entry with the SQS ``Id``, ``Code``,
    ``Message`` and ``SenderFault`` plus ``_message`` (the entry that was sent)
    and ``job_name``. Entries not listed were accepted.
    """

    def __init__(self, queue_name: str, errors: list[dict[str, Any]]) -> None:
        self.queue_name = queue_name
        self.errors = errors
        details = "; ".join(
            f"{e.get('job_name') or '?'}: {e.get('Code')} ({e.get('Message')})" for e in errors
        )
        super().__init__(
            f"SQS refused {len(errors)} message(s) sent to queue {queue_name!r}: {details}"
        )


class RetryJob(Exception):
    """Raise from a job to ask for a retry without logging an error.

    The message is returned to the queue after the delay given by
    ``backoff_policy`` (the queue's policy when ``None``); it is never acked.
    """

    def __init__(self, backoff_policy: BackoffPolicy | None = None) -> None:
        super().__init__()
        self.backoff_policy = backoff_policy


class JobError(SQSError):
    """A received message cannot be run as a job: the job fails and is retried.

    Subclasses say why. The worker logs these without a traceback because the
    cause is in the message or the deployment, not in sqsw or the job's code.
    """


class JobTimeLimitExceeded(JobError, TimeoutError):
    """An ``async def`` job ran past its time limit and was cancelled; it is retried per
    the backoff policy like any failure."""


class UnknownJobError(JobError, LookupError):
    """No processor is registered for the message's job name on this queue."""


class DecodeError(JobError, ValueError):
    """The message body or context cannot be decoded by its codec."""


class ContentTypeRefusedError(JobError):
    """The message's content type is not one this worker accepts."""


class JobArgumentsError(JobError, TypeError):
    """The message's arguments do not match the job function's signature."""


class BadMessageError(JobError, ValueError):
    """Something sqsw reads from the message itself is wrong (e.g. its ``SqswDueAt``
    due time): the job fails and is retried per the backoff policy, then dead-lettered."""


class AsyncJobError(JobError, TypeError):
    """A job function returned a coroutine or other awaitable instead of running.

    sqsw runs sync functions only; the awaitable is closed unrun and the job is
    retried per the backoff policy instead of counting as succeeded.
    """


class BulkReportError(SQSError, TypeError):
    """A bulk processor's failure report cannot be read as "these jobs failed".

    Every job of the call fails and is retried: sqsw never acks a job it cannot tell
    succeeded. The message names the queue, the job, what was returned and
    what is accepted.
    """


#: How many characters of a value from a message (job name, attribute, error
#: text) an error message quotes: a log line carrying it stays readable.
QUOTED_CHARS = 100


def quote(value: object) -> str:
    """``value`` as an error message quotes it: cut to :data:`QUOTED_CHARS`."""
    return shorten(value, QUOTED_CHARS)
