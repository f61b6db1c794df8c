"""Before/after on the in-memory SQS: a git revision's sqsw against the working tree's.

    .venv/bin/python benchmarks/ab_trees.py REV [--what loop,engine] [--jobs 50000] [--runs 5]

Single best-of runs on a shared machine move by 5-10 %, more than most changes
to the hot path. This exports REV (``git archive``) to a temporary folder, then
runs the two trees alternately, each run a fresh process importing only its own
tree (``PYTHONPATH``), and prints every run and the medians with their ratio:

- ``loop``: ``process_batch`` until the queue is empty;
- ``engine``: ``process_queue(concurrency=1)`` (the solo engine on memory).

Each run enqueues ``--jobs`` no-op jobs first (not timed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

RUN = """
import sys, time
from sqsw_core import SQSEnv, create_standard_queue
from sqsw_core.shutdown_policies import MaxTasksShutdown
what, n = sys.argv[1], int(sys.argv[2])
env = SQSEnv(session="memory")
create_standard_queue(env, "ab")
queue = env.queue("ab")
queue.connect_processor("noop", lambda i: None)
with queue.add_batch():
    for i in range(n):
        queue.add_job("noop", i=i)
t0 = time.perf_counter()
if what == "loop":
    while queue.process_batch(wait_seconds=0).total_count():
        pass
else:
    queue.process_queue(MaxTasksShutdown(n), wait_seconds=0, concurrency=1,
                        handle_signals=False, stats_interval=3600)
print(n / (time.perf_counter() - t0))
"""


def tree_path(root: Path) -> str:
    """The PYTHONPATH that imports sqsw_core and every plugin package from ``root``."""
    plugins = sorted(str(p) for p in (root / "plugins").iterdir() if p.is_dir())
    return os.pathsep.join([str(root), *plugins])


def export(rev: str, into: Path) -> None:
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev], capture_output=True, check=True
    ).stdout
    archive_file = into / "tree.tar"
    archive_file.write_bytes(archive)
    with tarfile.open(archive_file) as tar:
        try:
            tar.extractall(into / "tree", filter="data")
        except TypeError:  # a Python before the extraction filters (our own archive)
            tar.extractall(into / "tree")


def one_run(pythonpath: str, what: str, jobs: int) -> float:
    env = {**os.environ, "PYTHONPATH": pythonpath}
    out = subprocess.run(
        [sys.executable, "-c", RUN, what, str(jobs)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=tempfile.gettempdir(),
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("rev", help="the git revision to compare with (e.g. HEAD~3)")
    parser.add_argument("--what", default="loop,engine")
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        export(args.rev, Path(tmp))
        before, after = tree_path(Path(tmp) / "tree"), tree_path(REPO)
        for what in args.what.split(","):
            rows = [
                (one_run(before, what, args.jobs), one_run(after, what, args.jobs))
                for _ in range(args.runs)
            ]
            b = statistics.median(r[0] for r in rows)
            a = statistics.median(r[1] for r in rows)
            runs = "  ".join(f"{r[0]:,.0f}/{r[1]:,.0f}" for r in rows)
            print(f"{what}: {args.rev} vs working tree, jobs/s per run: {runs}")
            print(f"  median {b:,.0f} -> {a:,.0f} jobs/s ({a / b:.3f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
