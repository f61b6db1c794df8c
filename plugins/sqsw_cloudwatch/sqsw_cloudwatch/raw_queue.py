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
from sqsw_core.sending import AttributeValue as AttributeValue
from sqsw_core.sending import add_raw_job
from sqsw_core.sending import message_attribute as message_attribute

if TYPE_CHECKING:
    from sqsw_core.backoff_policies import BackoffPolicy
    from sqsw_core.env import SQSEnv

__all__ = ["RawQueue"]

logger = logging.getLogger("sqsw.raw_queue")

F = TypeVar("F", bound=Callable[..., Any])


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

    #: ``add_raw_job(message_body, _delay_seconds=None, _deduplication_id=None,
    #: _group_id=None, *, message_attributes=None)``: send ``message_body`` as is
    #: (see :func:`sqsw_core.sending.add_raw_job`, shared with dead-letter queues).
    add_raw_job = add_raw_job

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
