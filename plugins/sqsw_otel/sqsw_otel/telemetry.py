"""The tracer and metric instruments, one set per (tracer provider, meter provider) pair.

Also whether any telemetry is on at all: without an SDK the global providers
are the API's proxies and every call would be a no-op.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter, Histogram, MeterProvider
    from opentelemetry.trace import Tracer, TracerProvider

__all__ = [
    "DURATION_BUCKETS",
    "INSTRUMENTATION_NAME",
    "INSTRUMENTATION_VERSION",
    "Telemetry",
    "global_providers_off",
    "telemetry_for",
]

INSTRUMENTATION_NAME = "sqsw_otel"
#: The distribution's version (``sqsw_otel.__version__``), reported with every span and metric.
INSTRUMENTATION_VERSION = "0.1.0"

#: Bucket boundaries (seconds) the semantic conventions advise for durations.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)


class Telemetry:
    """The tracer and instruments of one (tracer provider, meter provider) pair."""

    def __init__(
        self, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None
    ) -> None:
        # Without explicit providers these are the API's proxies: they follow
        # the global providers even when those are set later.
        self.tracer: Tracer = trace.get_tracer(
            INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION, tracer_provider
        )
        meter = metrics.get_meter(INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION, meter_provider)
        description = "Duration of processing operation."
        try:
            self.process_duration: Histogram = meter.create_histogram(
                "messaging.process.duration",
                unit="s",
                description=description,
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
            )
        except TypeError:  # opentelemetry-api < 1.23 has no advisory
            self.process_duration = meter.create_histogram(
                "messaging.process.duration", unit="s", description=description
            )
        self.consumed: Counter = meter.create_counter(
            "messaging.client.consumed.messages",
            unit="{message}",
            description="Number of messages that were delivered to the application.",
        )
        self.sent: Counter = meter.create_counter(
            "messaging.client.sent.messages",
            unit="{message}",
            description="Number of messages producer attempted to send to the broker.",
        )


_telemetry: dict[tuple[Any, Any], Telemetry] = {}
_telemetry_lock = threading.Lock()


def telemetry_for(
    tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None
) -> Telemetry:
    """The tracer and instruments for these providers (made once per pair)."""
    key = (tracer_provider, meter_provider)
    found = _telemetry.get(key)
    if found is None:
        with _telemetry_lock:
            found = _telemetry.get(key)
            if found is None:
                found = _telemetry[key] = Telemetry(*key)
    return found


#: Until when (monotonic) the global providers are known to be the API's proxies.
_off_until = [0.0]


def global_providers_off() -> bool:
    """True while the global providers are the API's proxies (no SDK configured).

    Re-checked at most once a second (the API's lookups read the environment).
    """
    now = time.monotonic()
    if now < _off_until[0]:
        return True
    off = (
        isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        and type(metrics.get_meter_provider()).__name__ == "_ProxyMeterProvider"
    )
    if off:
        _off_until[0] = now + 1.0
    return off
