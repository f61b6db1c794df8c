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

from sqsw_prometheus.exporter import PrometheusExporter
from sqsw_prometheus.instruments import Instruments
from sqsw_prometheus.processor import MetricsProcessor

__all__ = ["Instruments", "MetricsProcessor", "PrometheusExporter"]
