"""The SQS metrics of CloudWatch, for the in-memory queues.

``MemorySession().client("cloudwatch")`` answers ``GetMetricStatistics`` for
the ``AWS/SQS`` namespace as CloudWatch does for real queues, computed from
the queue's state at the time of the call (CloudWatch itself lags by a
minute or more): ``ApproximateAgeOfOldestMessage`` (seconds since the oldest
message that can be received was sent; in-flight and delayed messages do not
count), ``ApproximateNumberOfMessagesVisible``, ``...NotVisible`` and
``...Delayed``. Any other metric, namespace or queue has no datapoints, as on
CloudWatch. Parameters are validated with botocore's CloudWatch model.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqsw_memory.errors import validate_params
from sqsw_memory.message import VISIBLE

if TYPE_CHECKING:
    from sqsw_memory.queue import Queue
    from sqsw_memory.registry import Registry

__all__ = ["MemoryCloudWatchClient"]

NAMESPACE = "AWS/SQS"


def _oldest_age(q: Queue, now_ms: int) -> float | None:
    sent = [m.sent_ms for m in q.messages.values() if m.state == VISIBLE]
    return max(0.0, (now_ms - min(sent)) / 1000) if sent else None


def _metric(q: Queue, name: str, now_ms: int) -> tuple[float, str] | None:
    """The metric's current value and unit for ``q`` (``None``: no datapoint)."""
    with q.lock:
        q._advance(q.clock())
        if name == "ApproximateAgeOfOldestMessage":
            age = _oldest_age(q, now_ms)
            return None if age is None else (age, "Seconds")
        counts = {
            "ApproximateNumberOfMessagesVisible": q.n_visible,
            "ApproximateNumberOfMessagesNotVisible": q.n_inflight,
            "ApproximateNumberOfMessagesDelayed": q.n_delayed,
        }
    count = counts.get(name)
    return None if count is None else (float(count), "Count")


class MemoryCloudWatchClient:
    """The ``GetMetricStatistics`` call of ``boto3.client("cloudwatch")`` for SQS metrics."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def get_metric_statistics(self, **params: Any) -> dict[str, Any]:
        validate_params("GetMetricStatistics", params, service="cloudwatch")
        name = params["MetricName"]
        response: dict[str, Any] = {"Label": name, "Datapoints": []}
        dimensions = {d["Name"]: d["Value"] for d in params.get("Dimensions", [])}
        q = self._registry.by_name.get(dimensions.get("QueueName", ""))
        if params["Namespace"] != NAMESPACE or q is None or len(dimensions) != 1:
            return response
        wall = self._registry.ctx.wall_clock()
        measured = _metric(q, name, int(wall * 1000))
        if measured is None:
            return response
        value, unit = measured
        statistics = {"SampleCount": 1.0, "Average": value, "Sum": value}
        statistics.update(Minimum=value, Maximum=value)
        point: dict[str, Any] = {
            "Timestamp": dt.datetime.fromtimestamp(wall, dt.timezone.utc),
            "Unit": unit,
        }
        point.update({s: statistics[s] for s in params.get("Statistics", [])})
        response["Datapoints"] = [point]
        return response

    def __repr__(self) -> str:
        return f"<MemoryCloudWatchClient region={self._registry.region!r}>"
