"""Before/after: a git revision's sqsw against the working tree's, in one run.

    .venv/bin/python benchmarks/ab_trees.py REV [--what loop,engine] [--jobs 50000] [--runs 5]
    .venv/bin/python benchmarks/ab_trees.py REV --what localstack --endpoint URL [--jobs 2000]

Single best-of runs on a shared machine move by 5-10 %, more than most changes
to the hot path. This exports REV (``git archive``) to a temporary folder, then
runs the two trees alternately, each run a fresh process importing only its own
tree (``PYTHONPATH``), and prints every run and the medians with their ratio:

- ``loop``: ``process_batch`` until the queue is empty;
- ``engine``: ``process_queue(concurrency=1)`` (the solo engine on memory);
- ``localstack``: ``process_queue(concurrency=4)`` on the LocalStack at
  ``--endpoint`` (benchmarks/engine.py's no-op scenario), with the client CPU
  per 1,000 jobs beside the jobs/s.

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
import sys, time, uuid
from sqsw_core import AWSSession, SQSEnv, create_standard_queue, delete_queue
from sqsw_core.shutdown_policies import MaxTasksShutdown
what, n = sys.argv[1], int(sys.argv[2])
if what == "localstack":
    session = AWSSession(endpoint_url=sys.argv[3], region_name="us-east-1",
                         aws_access_key_id="test", aws_secret_access_key="test")
    env = SQSEnv(session, queue_prefix=f"ab{uuid.uuid4().hex[:8]}_")
else:
    env = SQSEnv(session="memory")
create_standard_queue(env, "ab")
queue = env.queue("ab")
finished = [0.0]
def noop(i):
    finished[0] = time.perf_counter()
queue.connect_processor("noop", noop)
with queue.add_batch():
    for i in range(n):
        queue.add_job("noop", i=i)
env.get_queue_url("ab")  # the client is made before the clock starts
cpu0, t0 = time.process_time(), time.perf_counter()
if what == "loop":
    while queue.process_batch(wait_seconds=0).total_count():
        pass
elif what == "engine":
    queue.process_queue(MaxTasksShutdown(n), wait_seconds=0, concurrency=1,
                        handle_signals=False, stats_interval=3600)
else:
    queue.process_queue(MaxTasksShutdown(n), wait_seconds=1, concurrency=4,
                        handle_signals=False, stats_interval=3600)
    delete_queue(env, "ab")
print(n / (finished[0] - t0), (time.process_time() - cpu0) * 1e6 / n)
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


def one_run(pythonpath: str, what: str, jobs: int, endpoint: str) -> tuple[float, float]:
    """Jobs/s and CPU ms per 1,000 jobs of one run."""
    env = {**os.environ, "PYTHONPATH": pythonpath}
    out = subprocess.run(
        [sys.executable, "-c", RUN, what, str(jobs), endpoint],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=tempfile.gettempdir(),
    )
    rate, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(rate), float(cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("rev", help="the git revision to compare with (e.g. HEAD~3)")
    parser.add_argument("--what", default="loop,engine")
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--endpoint", default="", help="LocalStack, for --what localstack")
    args = parser.parse_args()
    if "localstack" in args.what and not args.endpoint:
        parser.error("--what localstack needs --endpoint (a running LocalStack)")
    with tempfile.TemporaryDirectory() as tmp:
        export(args.rev, Path(tmp))
        before, after = tree_path(Path(tmp) / "tree"), tree_path(REPO)
        for what in args.what.split(","):
            rows = [
                (
                    one_run(before, what, args.jobs, args.endpoint),
                    one_run(after, what, args.jobs, args.endpoint),
                )
                for _ in range(args.runs)
            ]
            b = statistics.median(r[0][0] for r in rows)
            a = statistics.median(r[1][0] for r in rows)
            runs = "  ".join(f"{r[0][0]:,.0f}/{r[1][0]:,.0f}" for r in rows)
            print(f"{what}: {args.rev} vs working tree, jobs/s per run: {runs}")
            print(f"  median {b:,.0f} -> {a:,.0f} jobs/s ({a / b:.3f}x)")
            b_cpu = statistics.median(r[0][1] for r in rows)
            a_cpu = statistics.median(r[1][1] for r in rows)
            print(
                f"  median client CPU {b_cpu:,.0f} -> {a_cpu:,.0f} ms per 1,000 jobs "
                f"({a_cpu / b_cpu:.3f}x)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
