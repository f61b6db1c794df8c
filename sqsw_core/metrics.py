"""The ``sqsw.metrics`` extension point: a metrics exporter for ``sqsw run --metrics-port``.

``sqsw run --metrics-port PORT`` loads the entry point ``prometheus`` of the
group ``sqsw.metrics`` (the sqsw-prometheus distribution) and calls it as
``factory(port=PORT, workers=N)``; the object it returns is a
:class:`MetricsExporter`, driven through one run:

1. :meth:`~MetricsExporter.start`, in the process that serves (the only
   worker, or the supervisor of ``--workers N``), before the app is imported
   and before any worker process is forked;
2. :meth:`~MetricsExporter.instrument` with the app's environment, once it
   is loaded and configured (add a processor with ``env.reconfigure``, listen
   to SQS errors through :data:`sqsw_core.sqs_api.ACTIVITY`);
3. :meth:`~MetricsExporter.running` around the run of the queues in each
   worker process (the only one, or each forked child): read the engines'
   counters there (``queue.engine_stats()``);
4. :meth:`~MetricsExporter.worker_exited` in the supervisor, with the pid of
   each worker process that ended;
5. :meth:`~MetricsExporter.close` when the run is over, whatever happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from sqsw_core.env import SQSEnv

__all__ = ["METRICS_PLUGIN", "MetricsExporter", "is_metrics_exporter"]

#: The entry point ``sqsw run --metrics-port`` loads from the ``sqsw.metrics`` group.
METRICS_PLUGIN = "prometheus"


@runtime_checkable
class MetricsExporter(Protocol):
    """What a ``sqsw.metrics`` factory returns (see the module for the order of calls)."""

    def start(self) -> None:
        """Start serving (on all interfaces: ``0.0.0.0``); ``OSError`` if the port is taken."""

    def instrument(self, env: SQSEnv) -> None:
        """Measure the jobs and SQS calls of ``env``, the app's environment."""

    def running(self, env: SQSEnv, queue_names: Sequence[str]) -> AbstractContextManager[object]:
        """Around the run of ``queue_names`` in a worker process."""

    def worker_exited(self, pid: int) -> None:
        """In the supervisor: the worker process ``pid`` ended."""

    def close(self) -> None:
        """The run is over: stop serving and free what :meth:`start` took."""


def is_metrics_exporter(obj: object) -> bool:
    """Whether ``obj`` has the methods of a :class:`MetricsExporter`."""
    return isinstance(obj, MetricsExporter)
