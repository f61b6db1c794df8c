"""Prometheus metrics for sqsw workers, registered as ``prometheus`` in ``sqsw.metrics``.

``sqsw run QUEUE --metrics-port 9100`` serves ``/metrics`` on all interfaces:
jobs by queue, job and outcome, job durations, the engines' message counters,
messages in flight and SQS errors by operation and code. With ``--workers N``
the supervisor serves the sum over its worker processes (prometheus_client's
multiprocess mode).

Modules: ``instruments`` (the metrics and their names), ``processor`` (job
outcomes and durations), ``sampler`` (the engines' counters), ``exporter``
(the object ``sqsw run`` drives).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqsw_prometheus.exporter import PrometheusExporter
from sqsw_prometheus.processor import MetricsProcessor

if TYPE_CHECKING:
    from sqsw_prometheus.instruments import Instruments

__all__ = ["Instruments", "MetricsProcessor", "PrometheusExporter"]


def __getattr__(name: str) -> Any:
    # prometheus_client is imported when metrics are made, not when sqsw lists plugins.
    if name == "Instruments":
        from sqsw_prometheus.instruments import Instruments

        return Instruments
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
