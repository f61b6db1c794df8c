"""Job slots shared by the engines of several queues in one process.

``sqs.process_queues([...], concurrency=N)`` runs at most N jobs at once
across all its queues. When more jobs wait than slots are free, the
allocator decides which queue runs next: ``strict`` priority (the first
queue named with a job waiting always wins) or ``weighted`` (smooth weighted
round robin: each waiting queue gets slots in proportion to its weight).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence


class SlotAllocator:
    """Grants ``total`` job slots to queues by strict or weighted priority."""

    def __init__(
        self,
        total: int,
        order: Sequence[str],
        mode: str = "strict",
        weights: Mapping[str, float] | None = None,
    ) -> None:
        if total < 1:
            raise ValueError(f"concurrency must be >= 1, got {total}")
        if mode not in ("strict", "weighted"):
            raise ValueError(f"priority must be 'strict' or 'weighted', got {mode!r}")
        self.total = total
        self.order = list(order)
        self.mode = mode
        self.weights = {key: float((weights or {}).get(key, 1.0)) for key in self.order}
        if any(w <= 0 for w in self.weights.values()):
            raise ValueError(f"weights must be positive, got {self.weights}")
        self._free = total
        self._waiting = dict.fromkeys(self.order, 0)
        self._credit = dict.fromkeys(self.order, 0.0)
        self._next: str | None = None
        self._cond = threading.Condition(threading.Lock())
        self.granted = dict.fromkeys(self.order, 0)

    def acquire(self, key: str, handing_back: bool = False) -> None:
        """Block until ``key``'s queue may start one more job.

        ``handing_back``: the caller holds a slot and wants another job run:
        its slot is returned and re-requested in one step, so the choice sees
        it waiting (a queue with work keeps its slot unless another should run).
        """
        with self._cond:
            if handing_back:
                self._free += 1
                self._next = None
            self._waiting[key] += 1
            self._choose()
            if self._next != key:
                self._cond.notify_all()  # the choice may have fallen on a waiter
                while self._next != key:
                    self._cond.wait()
            self._waiting[key] -= 1
            self._free -= 1
            self.granted[key] += 1
            self._next = None
            self._choose()
            self._cond.notify_all()

    def release(self) -> None:
        """A job finished: its slot is free again."""
        with self._cond:
            self._free += 1
            if self._next is None:
                self._choose()
            self._cond.notify_all()

    def _choose(self) -> None:
        """Pick the queue that gets the next free slot (under the lock)."""
        if self._next is not None or self._free <= 0:
            return
        waiting = [key for key in self.order if self._waiting[key] > 0]
        if not waiting:
            return
        if self.mode == "strict":
            self._next = waiting[0]
            return
        total = sum(self.weights[key] for key in waiting)
        for key in waiting:
            self._credit[key] += self.weights[key]
        best = max(waiting, key=lambda key: self._credit[key])
        self._credit[best] -= total
        self._next = best
