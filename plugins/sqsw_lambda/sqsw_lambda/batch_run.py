"""Running the messages of one queue from one Lambda invocation, through the core's job runner.

Each message goes through :meth:`sqsw_core.job_runner.JobRunner.run_message`
(or ``run_bulk`` for bulk jobs), exactly as in a worker process: long-delay
hops, decoding and ``accept`` lists, processors (otel included), raw queues,
``RetryJob`` and backoff policies. Only the settling differs
(:class:`~sqsw_lambda.verdicts.Verdicts`).

Order rules:

* standard queues run every message; bulk jobs are gathered per job name
  (up to the bulk processor's ``max_jobs`` per call) and run after the others;
* FIFO queues stop at the first message that is not done (failed, retried, or
  held back until a long delay is due): it and every later record are reported
  as failed, as AWS requires, so no later message of its group can run first.
  Later records of the same group stay hidden as long as it does (their
  visibility is changed before its own, so none becomes visible before it);
  records of other groups, which never ran, become visible at once.

Running out of time (the invocation's remaining time below the handler's
margin) gives the messages not yet run back, visible at once, instead of
letting Lambda time out and deliver the whole batch again.

An async processor can be added here later: the loop only needs an awaitable
form of ``run_message`` when the core offers one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqsw_core.job_runner import JobRunner
from sqsw_core.limits import chunks
from sqsw_core.settling import Settler
from sqsw_lambda.verdicts import Verdicts

if TYPE_CHECKING:
    from sqsw_core.messages import Message
    from sqsw_core.queue import GenericQueue

__all__ = ["BatchRun"]

logger = logging.getLogger("sqsw.lambda")


class BatchRun:
    """The messages of one queue in one invocation: run them, record each verdict."""

    def __init__(self, queue: GenericQueue, out_of_time: Callable[[], bool]) -> None:
        self.queue = queue
        self.verdicts = Verdicts(queue)
        self.runner = JobRunner(queue, Settler(queue, acker=self.verdicts))
        self.out_of_time = out_of_time
        #: A ``KeyboardInterrupt`` or ``SystemExit`` a job raised (the batch stopped there).
        self.interrupt: BaseException | None = None
        self._ran_any = False

    def run(self, messages: list[Message]) -> None:
        """Run ``messages`` (in record order); every one ends with a verdict."""
        if self.queue.is_fifo:
            self._run_fifo(messages)
        else:
            self._run_standard(messages)

    def _stop_here(self, rest: list[Message]) -> bool:
        """Whether to stop before ``rest`` for lack of time (after at least one message ran)."""
        if not self._ran_any or not rest or not self.out_of_time():
            self._ran_any = True
            return False
        logger.warning(
            "The Lambda invocation is close to its timeout: %d message(s) of %s that did "
            "not run are reported as failed and visible again now",
            len(rest),
            self.queue.name,
        )
        self._give_back(rest, 0)
        return True

    def _give_back(self, messages: list[Message], delay: int) -> None:
        for message in messages:
            self.verdicts.retry(message, delay)

    def _run_standard(self, messages: list[Message]) -> None:
        bulk = self.queue.bulk_processors
        gathered: dict[str, list[Message]] = {}
        for index, message in enumerate(messages):
            name = message.job_name if bulk else None
            if name is not None and name in bulk:
                gathered.setdefault(name, []).append(message)
                continue
            if self._stop_here(messages[index:]):
                self._give_back([m for group in gathered.values() for m in group], 0)
                return
            _outcome, interrupt = self.runner.run_message(message)
            if interrupt is not None:
                rest = messages[index + 1 :] + [m for g in gathered.values() for m in g]
                self._interrupted(interrupt, rest)
                return
        batches = [
            batch
            for name, group in gathered.items()
            for batch in chunks(group, bulk[name].max_jobs)
        ]
        for index, batch in enumerate(batches):
            rest = [m for later in batches[index:] for m in later]
            if self._stop_here(rest):
                return
            _outcomes, interrupt = self.runner.run_bulk(batch)
            if interrupt is not None:
                self._interrupted(interrupt, rest[len(batch) :])
                return

    def _run_fifo(self, messages: list[Message]) -> None:
        for index, message in enumerate(messages):
            if self._stop_here(messages[index:]):
                return
            outcome, interrupt = self.runner.run_message(message)
            if outcome.ok is True:
                continue
            # Failed (after its backoff) or held back until due: its group mates come
            # back with it (None: it waits for its visibility timeout, and so do they).
            head_delay = self.verdicts.delay_of(message)
            for later in messages[index + 1 :]:
                if later.group_id != message.group_id:
                    self.verdicts.retry(later, 0)
                elif head_delay is not None:
                    self.verdicts.retry(later, head_delay)
            if interrupt is not None:
                self._interrupted(interrupt, [])
            return

    def _interrupted(self, interrupt: BaseException, rest: list[Message]) -> None:
        """A job raised ``KeyboardInterrupt``/``SystemExit``: the rest goes back unrun."""
        self.interrupt = interrupt
        logger.error(
            "A job of %s raised %s: %d message(s) of the batch that did not run are "
            "reported as failed and visible again now",
            self.queue.name,
            type(interrupt).__name__,
            len(rest),
        )
        self._give_back(rest, 0)
