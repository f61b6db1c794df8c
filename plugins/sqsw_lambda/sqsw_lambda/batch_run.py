"""Running the messages of one queue from one Lambda invocation, through the core's job runner.

Each message goes through :meth:`sqsw_core.job_runner.JobRunner.run_message`
(or ``run_bulk`` for bulk jobs), exactly as in a worker process: long-delay
hops, decoding and ``accept`` lists, processors (otel included), raw queues,
``RetryJob`` and backoff policies. Only the settling differs
(:class:`~sqsw_lambda.verdicts.Verdicts`).

Order rules:

* standard queues run every message, ``concurrency`` at a time (threads, for
  I/O-bound jobs; 1 by default, as a function's own loop would); bulk jobs are
  gathered per job name (up to the bulk processor's ``max_jobs`` per call) and
  run after the others;
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

import contextvars
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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

    def __init__(
        self, queue: GenericQueue, out_of_time: Callable[[], bool], concurrency: int = 1
    ) -> None:
        self.queue = queue
        self.verdicts = Verdicts(queue)
        self.runner = JobRunner(queue, Settler(queue, acker=self.verdicts))
        self.out_of_time = out_of_time
        self.concurrency = concurrency
        #: A ``KeyboardInterrupt`` or ``SystemExit`` a job raised (the batch stopped there).
        self.interrupt: BaseException | None = None
        self._ran_any = False
        self._lock = threading.Lock()

    def run(self, messages: list[Message]) -> None:
        """Run ``messages`` (in record order); every one ends with a verdict."""
        if self.queue.is_fifo:
            self._run_fifo(messages)
        else:
            self._run_standard(messages)

    def _may_start(self) -> bool:
        """Whether another message may start: time is left, or none has run yet."""
        with self._lock:
            if self._ran_any and self.out_of_time():
                return False
            self._ran_any = True
            return True

    def _out_of_time(self, rest: list[Message]) -> None:
        """Give back ``rest`` (not run: the invocation is about to time out)."""
        logger.warning(
            "The Lambda invocation is close to its timeout: %d message(s) of %s that did "
            "not run are reported as failed and visible again now",
            len(rest),
            self.queue.name,
        )
        self._give_back(rest, 0)

    def _give_back(self, messages: list[Message], delay: int) -> None:
        for message in messages:
            self.verdicts.retry(message, delay)

    def _run_standard(self, messages: list[Message]) -> None:
        bulk = self.queue.bulk_processors
        gathered: dict[str, list[Message]] = {}
        singles: list[Message] = []
        for message in messages:
            name = message.job_name if bulk else None
            if name is not None and name in bulk:
                gathered.setdefault(name, []).append(message)
            else:
                singles.append(message)
        batches = [
            batch
            for name, group in gathered.items()
            for batch in chunks(group, bulk[name].max_jobs)
        ]
        if self.concurrency > 1 and len(singles) > 1:
            done = self._run_concurrently(singles)
        else:
            done = self._run_in_turn(singles)
        if not done:
            self._give_back([m for batch in batches for m in batch], 0)
            return
        for index, batch in enumerate(batches):
            rest = [m for later in batches[index:] for m in later]
            if not self._may_start():
                self._out_of_time(rest)
                return
            _outcomes, interrupt = self.runner.run_bulk(batch)
            if interrupt is not None:
                self._interrupted(interrupt, rest[len(batch) :])
                return

    def _run_in_turn(self, messages: list[Message]) -> bool:
        """Run ``messages`` one after another; whether the batch may go on."""
        for index, message in enumerate(messages):
            if not self._may_start():
                self._out_of_time(messages[index:])
                return False
            _outcome, interrupt = self.runner.run_message(message)
            if interrupt is not None:
                self._interrupted(interrupt, messages[index + 1 :])
                return False
        return True

    def _run_concurrently(self, messages: list[Message]) -> bool:
        """Run ``messages`` on ``concurrency`` threads (the invocation's context variables,
        the Lambda context among them, in each); whether the batch may go on."""
        context = contextvars.copy_context()
        late: list[Message] = []
        unrun: list[Message] = []

        def run_one(message: Message) -> None:
            if self.interrupt is not None:
                unrun.append(message)
                return
            if not self._may_start():
                late.append(message)
                return
            _outcome, interrupt = self.runner.run_message(message)
            if interrupt is not None:
                with self._lock:
                    self.interrupt = self.interrupt or interrupt

        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="sqsw-lambda") as pool:
            for message in messages:
                pool.submit(context.copy().run, run_one, message)
        if late:
            self._out_of_time(late)
        if self.interrupt is not None:
            self._interrupted(self.interrupt, unrun)
        return not late and self.interrupt is None

    def _run_fifo(self, messages: list[Message]) -> None:
        for index, message in enumerate(messages):
            if not self._may_start():
                self._out_of_time(messages[index:])
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
