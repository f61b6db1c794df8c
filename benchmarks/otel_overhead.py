"""Per-job cost of the ``otel`` processor on the in-memory session.

    .venv/bin/python benchmarks/otel_overhead.py [--jobs 20000] [--repeat 3]

Three variants, each in a fresh subprocess (OpenTelemetry's global providers
can be set only once per process): the ``default`` processor; ``otel`` with the
API alone (no SDK: no-op providers); ``otel`` with the SDK, every span and
metric recorded, spans handed to an exporter that drops them. Each run sends
N no-op jobs with batched sends, then processes them with ``process_batch``.
The best of ``--repeat`` runs is kept; the send and process phases are
reported apart because the processor wraps both.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import json, sys

variant, n = sys.argv[1], int(sys.argv[2])
if variant == "otel+sdk":
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    class DropExporter(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(DropExporter()))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))

sys.path.insert(0, "benchmarks")
from memory_throughput import bench_sqsw  # the same enqueue + process_batch loop

result = bench_sqsw(n, processor="default" if variant == "default" else "otel")
print(json.dumps({"send_s": result["enqueue_s"], "process_s": result["process_s"]}))
"""

VARIANTS = ["default", "otel (API only)", "otel+sdk"]


def run(variant: str, jobs: int) -> dict[str, float]:
    name = "otel" if variant == "otel (API only)" else variant
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), name, str(jobs)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.jobs
    best: dict[str, dict[str, float]] = {}
    for _ in range(args.repeat):
        for variant in VARIANTS:
            result = run(variant, n)
            if variant not in best or sum(result.values()) < sum(best[variant].values()):
                best[variant] = result
    base = best["default"]
    print(f"{n} no-op jobs, memory session, best of {args.repeat} (µs per job)")
    print(f"{'processor':<18}{'send':>8}{'process':>10}{'total':>9}{'overhead':>11}")
    for variant in VARIANTS:
        send = best[variant]["send_s"] / n * 1e6
        process = best[variant]["process_s"] / n * 1e6
        total = send + process
        extra = total - (base["send_s"] + base["process_s"]) / n * 1e6
        print(f"{variant:<18}{send:>8.1f}{process:>10.1f}{total:>9.1f}{extra:>+10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
