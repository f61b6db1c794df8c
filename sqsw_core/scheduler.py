"""The engine's job scheduler: received messages waiting for a job thread, under one lock.

Pollers put what they receive in; job threads take the next job out. The
scheduler keeps the buffer bounded (``capacity``: running + buffered +
receives in progress), runs one job at a time per FIFO message group, and
gathers the messages of bulk jobs until ``max_jobs`` are there or the first
has waited ``max_wait`` seconds. It only holds state; the threads that wait
on its conditions are the engine's pollers and job threads.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from sqsw_core.limits import MAX_BATCH_ENTRIES

if TYPE_CHECKING:
    from sqsw_core.bulk_jobs import BulkProcessor
    from sqsw_core.messages import Message


class JobScheduler:
    """Buffered messages, FIFO groups in progress and bulk jobs being gathered."""

    def __init__(
        self,
        capacity: int,
        fifo: bool,
        bulk_processors: Mapping[str, BulkProcessor],
        solo: bool = False,
    ) -> None:
        #: Everything below is read and changed under this lock. Take it as
        #: ``with scheduler.lock`` (the conditions share it; entering a Condition
        #: costs a Python-level call more, once or twice per job).
        self.lock = threading.Lock()
        #: Job threads wait here for a job.
        self.jobs = threading.Condition(self.lock)
        #: Pollers wait here for room for a full batch. A solo thread (solo_thread.py)
        #: receives and runs jobs: it waits for either, on one condition.
        self.room = self.jobs if solo else threading.Condition(self.lock)
        #: Only the solo thread waits on the conditions: woken by other threads only (an
        #: async job's end, a gathered bulk job's flush, a stop), never by what it adds.
        self.solo = solo
        self.capacity = capacity
        #: Pollers receive full batches: they wait for this much room.
        self.batch_room = min(MAX_BATCH_ENTRIES, capacity)
        self.fifo = fifo
        self.bulk_processors = dict(bulk_processors)
        self.buffer: collections.deque[Message | list[Message]] = collections.deque()
        #: Bulk jobs being gathered: job name -> (first arrival, messages).
        self.gathering: dict[str, tuple[float, list[Message]]] = {}
        self.held = 0  # buffered + running + receives in progress (reserved)
        #: Receives reserved or in progress: what they return after a stop began is
        #: released with the other unrun messages, once none is left.
        self.receives = 0
        self.running = 0
        self.busy_groups: set[str] = set()
        self.last_poll_empty = False
        self.receive_failures = 0  # in a row, across pollers
        self.missing_queue_receives = 0  # the last of those that found the queue gone
        #: A stop began: no new receive, no new job.
        self.stopping = False
        #: Messages that will not run, kept until the receives in progress have
        #: ended, then released together.
        self.unrun: list[Message] = []
        self.unrun_released = False

    def has_room(self) -> bool:
        """Whether a poller can receive a full batch now (under the lock)."""
        return self.capacity - self.held >= self.batch_room

    def add(self, messages: list[Message], now: float) -> None:
        """Buffer received messages and wake job threads for them (under the lock)."""
        ready = self._gather(messages, now) if self.bulk_processors else messages
        self.buffer.extend(ready)
        if not self.solo:  # the solo thread is the only waiter, and the one adding
            self.jobs.notify(len(ready))

    def _gather(self, messages: list[Message], now: float) -> list[Message | list[Message]]:
        """Set aside messages of bulk jobs; the rest run one by one."""
        ready: list[Message | list[Message]] = []
        for message in messages:
            name = message.job_name
            processor = self.bulk_processors.get(name) if name is not None else None
            if processor is None or name is None:
                ready.append(message)
                continue
            _, gathered = self.gathering.setdefault(name, (now, []))
            gathered.append(message)
            if len(gathered) >= processor.max_jobs:
                del self.gathering[name]
                ready.append(gathered)
        return ready

    def flush_gathered(self, now: float, everything: bool = False) -> None:
        """Move bulk jobs that waited ``max_wait`` (or all) to the buffer (under the lock)."""
        for name, (since, gathered) in list(self.gathering.items()):
            if everything or now - since >= self.bulk_processors[name].max_wait:
                del self.gathering[name]
                self.buffer.append(gathered)
                self.jobs.notify()

    def next_job(self) -> Message | list[Message] | None:
        """The next runnable job (under the lock); FIFO groups run one at a time."""
        buffer = self.buffer
        if not self.fifo:
            return buffer.popleft() if buffer else None
        busy = self.busy_groups
        for index, item in enumerate(buffer):
            assert not isinstance(item, list)  # FIFO queues have no bulk processors
            group = item.group_id or ""
            if group not in busy:
                del buffer[index]
                busy.add(group)
                return item
        return None

    def free_group(self, message: Message, ok: bool | None) -> list[Message]:
        """A FIFO job ended (under the lock): its group may run again; after a failure,
        the group's buffered messages are taken out, to go back after the failed one."""
        group = message.group_id or ""
        self.busy_groups.discard(group)
        dropped: list[Message] = []
        if ok is False:
            dropped = [
                m for m in self.buffer if not isinstance(m, list) and (m.group_id or "") == group
            ]
            for m in dropped:
                self.buffer.remove(m)
            self.held -= len(dropped)
        if self.buffer:
            self.jobs.notify()  # a message of the freed group may wait
        return dropped

    def stop_intake(self) -> None:
        """A stop began (under the lock): no new receive or job; what waits will not run."""
        self.stopping = True
        self.flush_gathered(0, everything=True)
        unrun: list[Message] = []
        for item in self.buffer:
            unrun.extend(item if isinstance(item, list) else [item])
        self.buffer.clear()
        self.held -= len(unrun)
        self.unrun.extend(unrun)
        self.jobs.notify_all()
        self.room.notify_all()

    def take_unrun(self) -> list[Message]:
        """The messages of the stop that did not run, once (under the lock)."""
        unrun, self.unrun = self.unrun, []
        self.unrun_released = True
        return unrun

    def waiting(self) -> list[Message]:
        """The messages whose job has not started (under the lock)."""
        items = [*self.buffer, *(gathered for _, gathered in self.gathering.values())]
        items.extend(self.unrun)
        return [m for item in items for m in (item if isinstance(item, list) else [item])]
