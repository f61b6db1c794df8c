"""Per-job cost of sqsw-prometheus's job metrics (``sqsw run --metrics-port``), memory session.

    .venv/bin/python benchmarks/metrics_overhead.py [--jobs 20000] [--repeat 3]

Three variants, each in a fresh subprocess: the ``default`` processor; the
metrics processor outermost (what ``--metrics-port`` adds: one counter
increment and one histogram observation per job, labelled by queue and job);
and the same in prometheus_client's multiprocess mode (``--workers N``: values
kept in memory-mapped files). Each run sends N no-op jobs, then runs them with
the engine (``process_queue(concurrency=1)``); only the processing phase is
timed, as the metrics processor does nothing on sends. Best of ``--repeat``.
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
import atexit, json, os, shutil, sys, tempfile

variant, n = sys.argv[1], int(sys.argv[2])
processor = "default"
if variant != "default":
    if variant == "prometheus, multiprocess":
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="sqsw-bench-")
        atexit.register(shutil.rmtree, os.environ["PROMETHEUS_MULTIPROC_DIR"], True)
    from prometheus_client import CollectorRegistry
    from sqsw_prometheus import Instruments, MetricsProcessor

    processor = [MetricsProcessor.using(Instruments(CollectorRegistry())), "default"]

sys.path.insert(0, "benchmarks")
from memory_throughput import bench_sqsw  # the same enqueue + process loop

result = bench_sqsw(n, processor=processor, engine=True)
print(json.dumps({"process_s": result["process_s"]}))
"""

VARIANTS = ["default", "prometheus", "prometheus, multiprocess"]


def run(variant: str, jobs: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), variant, str(jobs)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["process_s"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.jobs
    best: dict[str, float] = {}
    for _ in range(args.repeat):
        for variant in VARIANTS:
            seconds = run(variant, n)
            best[variant] = min(seconds, best.get(variant, seconds))
    base = best["default"] / n * 1e6
    print(f"{n} no-op jobs, memory session, engine, best of {args.repeat} (µs per job)")
    print(f"{'variant':<26}{'process':>9}{'overhead':>10}{'ratio':>7}")
    for variant in VARIANTS:
        per_job = best[variant] / n * 1e6
        print(f"{variant:<26}{per_job:>9.1f}{per_job - base:>+10.1f}{per_job / base:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
