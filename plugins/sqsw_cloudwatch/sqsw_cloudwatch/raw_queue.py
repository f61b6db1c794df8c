"""``RawQueue``: a queue whose messages are not sqsw jobs, handled by one function.

Use it for messages other producers write: CloudWatch/EventBridge rules, SNS
subscriptions, S3 notifications, another language's services::

    cron = sqs.queue("cron", RawQueue)      # or sqs.queue("cron", "raw")

    @cron.raw_processor()
    def processor(message):
        print(message.body)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sqsw_cloudwatch.exceptions import NoRawProcessorError
from sqsw_cloudwatch.handlers import RawHandler
from sqsw_core.messages import Message
from sqsw_core.processors import HandlerCall
from sqsw_core.queue import GenericQueue

if TYPE_CHECKING:
    from sqsw_core.backoff_policies import BackoffPolicy
    from sqsw_core.env import SQSEnv

__all__ = ["RawQueue"]

logger = logging.getLogger("sqsw.raw_queue")

F = TypeVar("F", bound=Callable[..., Any])

#: ``add_raw_job(message_attributes=...)`` values: a string, a number, bytes, or
#: the SQS form ``{"DataType": ..., "StringValue"/"BinaryValue": ...}``.
AttributeValue = str | int | float | bytes | dict[str, Any]


def _one_of(prefixed: Any, plain: Any, name: str) -> Any:
    if prefixed is not None and plain is not None:
        raise TypeError(f"add_raw_job() got both _{name} and {name}; give one")
    return prefixed if prefixed is not None else plain


def message_attribute(name: str, value: AttributeValue) -> dict[str, Any]:
    """One SQS ``MessageAttributes`` value from a plain Python value."""
    if isinstance(value, dict):
        if "DataType" not in value:
            raise ValueError(f"message attribute {name!r}: {value!r} has no 'DataType'")
        return value
    if isinstance(value, bool):
        raise TypeError(f"message attribute {name!r}: SQS has no boolean type; use a str")
    if isinstance(value, str):
        return {"DataType": "String", "StringValue": value}
    if isinstance(value, int | float):
        return {"DataType": "Number", "StringValue": str(value)}
    if isinstance(value, bytes):
        return {"DataType": "Binary", "BinaryValue": value}
    raise TypeError(
        f"message attribute {name!r}: expected str, int, float, bytes or an SQS attribute "
        f"dict, got {type(value).__name__}"
    )


class RawQueue(GenericQueue):
    """A queue of raw messages with one processor, which gets each :class:`Message`.

    The processor's return acks the message; an exception fails it (it is
    retried after the queue's backoff), and ``RetryJob`` retries it without
    an error log, as in job queues.
    """

    def __init__(
        self,
        env: SQSEnv,
        name: str,
        backoff_policy: BackoffPolicy | None = None,
        *,
        queue_url: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(env, name, backoff_policy, queue_url=queue_url, **options)
        #: The registered function, as given (``None`` until one is registered).
        self.fn: Callable[..., Any] | None = None
        self.handler: RawHandler | None = None

    @property
    def processor(self) -> Callable[..., Any] | None:
        """The former name of :attr:`fn`, the registered function."""
        return self.fn

    # -- registering the processor --------------------------------------------

    def raw_processor(self) -> Callable[[F], F]:
        """Decorator registering the function as this queue's processor.

        The function is returned unchanged. Its parameters decide what it
        receives (see :mod:`sqsw_cloudwatch.handlers`): the :class:`Message`,
        a :class:`~sqsw_cloudwatch.CloudWatchEvent`, or both.
        """

        def register(fn: F) -> F:
            return self.connect_raw_processor(fn)

        return register

    def connect_raw_processor(self, processor: F) -> F:
        """Register ``processor``, replacing (with a warning) any earlier one."""
        handler = RawHandler(processor, self.name)
        previous = self.fn
        if previous is not None and previous is not processor:
            logger.warning(
                "Raw queue %s: processor %s replaces %s (a raw queue has one processor)",
                self.name,
                getattr(processor, "__qualname__", processor),
                getattr(previous, "__qualname__", previous),
            )
        self.handler = handler
        self.fn = processor
        logger.debug("Registered raw processor %r", handler)
        return processor

    # -- sending ----------------------------------------------------------------

    def add_raw_job(
        self,
        message_body: str,
        _delay_seconds: float | None = None,
        _deduplication_id: Any = None,
        _group_id: Any = None,
        *,
        delay_seconds: float | None = None,
        deduplication_id: Any = None,
        group_id: Any = None,
        message_attributes: dict[str, AttributeValue] | None = None,
    ) -> str | None:
        """Send ``message_body`` as is; returns the message id (``None`` in ``add_batch()``).

        On FIFO queues the group defaults to ``"default"`` and a deduplication
        id is needed unless the queue has content-based deduplication. The
        un-prefixed ``delay_seconds=`` etc. of sqs-workers are accepted too.
        """
        if isinstance(message_body, bytes | bytearray):
            raise TypeError(
                f"add_raw_job() on queue {self.name!r}: the body must be str, got "
                f"{type(message_body).__name__}. SQS message bodies are text: decode it "
                "(body.decode('utf-8')) or base64-encode binary data."
            )
        if not isinstance(message_body, str):
            raise TypeError(
                f"add_raw_job() on queue {self.name!r}: the body must be str, got "
                f"{type(message_body).__name__} (serialize it first, e.g. json.dumps(body))"
            )
        if not message_body:
            raise ValueError(f"add_raw_job() on queue {self.name!r}: SQS refuses an empty body")
        attributes = {
            name: message_attribute(name, value)
            for name, value in (message_attributes or {}).items()
        }
        entry = self.build_entry(
            message_body,
            attributes,
            _one_of(_delay_seconds, delay_seconds, "delay_seconds"),
            _one_of(_deduplication_id, deduplication_id, "deduplication_id"),
            _one_of(_group_id, group_id, "group_id"),
        )
        return self.send_entry(entry)

    # -- processing ---------------------------------------------------------------

    def handle_message(self, message: Message) -> None:
        handler = self.handler
        if handler is None:
            raise NoRawProcessorError(
                f"raw queue {self.name!r} has no processor, so message {message.message_id} "
                "cannot run; it is retried after the queue's backoff, not deleted. Register "
                f"one with @queue.raw_processor() (queue = sqs.queue({self.name!r}, 'raw')) "
                "in the worker's code before processing the queue."
            )
        hooks = self.env.processor_hooks
        if hooks.handling_hooks:
            with hooks.handling(HandlerCall(self, [message])):
                handler(message)
        else:
            handler(message)
