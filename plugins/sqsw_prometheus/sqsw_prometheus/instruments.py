"""The metrics sqsw-prometheus exports, all named ``sqsw_*``.

Made once per exporter, after the multiprocess mode is chosen (prometheus_client
picks how values are stored when a metric is made).
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["DURATION_BUCKETS", "OUTCOMES", "Instruments"]

#: ``outcome`` label values of ``sqsw_jobs_total``. ``timed_out`` is reserved for
#: job time limits and not emitted yet.
OUTCOMES = ("succeeded", "failed", "retried", "timed_out")

#: Seconds: from fast jobs to hour-long ones.
DURATION_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    float("inf"),
)


class Instruments:
    """The counters, gauge and histogram, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.jobs = Counter(
            "sqsw_jobs",
            "Jobs run, by queue, job and outcome (succeeded, failed, retried).",
            ["queue", "job", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "sqsw_job_duration_seconds",
            "Seconds a job ran (a bulk job or raw handler: one call for its messages).",
            ["queue", "job"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.received = self._counter(registry, "sqsw_messages_received", "Messages received.")
        self.redelivered = self._counter(
            registry,
            "sqsw_messages_redelivered",
            "Received messages SQS had delivered before (receive count > 1).",
        )
        self.released = self._counter(
            registry, "sqsw_messages_released", "Messages made visible again without running."
        )
        self.extended = self._counter(
            registry, "sqsw_visibility_extensions", "Visibility timeouts extended for long jobs."
        )
        self.failed_acks = self._counter(
            registry,
            "sqsw_failed_acks",
            "Succeeded jobs whose delete SQS refused or never got: they may run again.",
        )
        self.in_flight = Gauge(
            "sqsw_messages_in_flight",
            "Messages held by the workers: prefetched or running.",
            ["queue"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.sqs_errors = Counter(
            "sqsw_sqs_errors",
            "Failed SQS call attempts (retried ones too), by operation and error code.",
            ["operation", "code"],
            registry=registry,
        )

    @staticmethod
    def _counter(registry: CollectorRegistry, name: str, text: str) -> Counter:
        return Counter(name, f"{text} By queue.", ["queue"], registry=registry)

    def sqs_error(self, operation: str, code: str) -> None:
        """Listener of :data:`sqsw_core.sqs_api.ACTIVITY`: count one failed SQS call."""
        self.sqs_errors.labels(operation, code).inc()
