"""Stopping and crashing ``sqsw run --workers N``, as a terminal, systemd or the OOM killer does.

Each test runs the real command line as its own process group (a session of
its own), signals it the way a terminal does (``killpg``: the supervisor and
every worker process get the signal at once), and then reads SQS: receive
counts, the dead-letter queue (maxReceiveCount 2) and what is still in flight
right after the command exited. Worker processes cannot share the in-memory
session, so these run on LocalStack only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from sqsw_core import SQSEnv
from tests.helpers import (
    dead_letter_depth,
    queue_counts,
    queue_with_dead_letters,
    receive_all,
    settled_counts,
    wait_until,
)
from tests.localstack_server import REGION

REPO = Path(__file__).resolve().parent.parent
SQSW = [sys.executable, "-m", "sqsw_core.cli"]
MAX_RECEIVES = 2


class Event(NamedTuple):
    """One line of the app's job log (see tests/apps/process_app.py)."""

    kind: str  # start, done or poison
    n: int
    receives: int  # ApproximateReceiveCount of the message when the job started
    pid: int
    at: float  # epoch seconds


def events(log: Path) -> list[Event]:
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        kind, n, count, pid, at = line.split()
        out.append(Event(kind, int(n), int(count), int(pid), float(at)))
    return out


def of_kind(log: Path, kind: str) -> Counter[int]:
    return Counter(e.n for e in events(log) if e.kind == kind)


def enqueue(
    queue: Any, jobs: int, seconds: float, poison: int | None = None, after: float = 0
) -> None:
    with queue.add_batch():
        for n in range(jobs):
            if n == poison:
                queue.add_job("poison", n=n, after=after)
            else:
                queue.add_job("job", n=n, seconds=seconds)


def start_run(env: SQSEnv, endpoint: str, tmp_path: Path, *options: str) -> subprocess.Popen[str]:
    """``sqsw run --workers 2 ... work`` in a process group of its own; output in tmp/out.log."""
    variables = {k: v for k, v in os.environ.items() if not k.startswith("SQSW_")}
    variables.update(
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        SQSW_REGION=REGION,
        SQSW_ENDPOINT_URL=endpoint,
        PYTHONPATH=os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(REPO)])),
        APP_LOG=str(tmp_path / "jobs.log"),
    )
    command = [*SQSW, "run", "--app", "tests.apps.process_app:sqs"]
    command += ["--queue-prefix", env.queue_prefix, "--wait-seconds", "1"]
    command += ["--stats-interval", "5", "--workers", "2", *options, "work"]
    out = (tmp_path / "out.log").open("w")
    return subprocess.Popen(
        command,
        cwd=tmp_path,
        env=variables,
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, like a shell job
    )


def finish(run: subprocess.Popen[str], tmp_path: Path, timeout: float) -> tuple[int, str]:
    """Wait for the command to exit; (exit code, its output). Kills the group on timeout."""
    try:
        code = run.wait(timeout)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(10)
    return code, (tmp_path / "out.log").read_text()


def running(run: subprocess.Popen[str], tmp_path: Path, predicate: Any) -> Any:
    """``predicate``, failing at once with the output if the command has exited."""

    def check() -> bool:
        if run.poll() is not None:
            pytest.fail(
                f"sqsw run exited with {run.returncode}:\n{(tmp_path / 'out.log').read_text()}"
            )
        return bool(predicate())

    return check


def job_numbers(messages: list[dict[str, Any]]) -> dict[int, int]:
    """n -> receives before this look, for messages returned by ``receive_all``."""
    return {
        json.loads(m["Body"])["n"]: int(m["Attributes"]["ApproximateReceiveCount"]) - 1
        for m in messages
    }


def stop_lines(output: str, kind: str) -> list[str]:
    return [line for line in output.splitlines() if f"{kind} stop of" in line]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP], ids=["ctrl-c", "closed-terminal"])
def test_one_signal_to_the_process_group_is_one_warm_stop_localstack(
    sig: signal.Signals, ls_env: SQSEnv, endpoint: str, tmp_path: Path
) -> None:
    """Ctrl+C (SIGINT) or a closed terminal (SIGHUP) reaches every process at once."""
    jobs = 16
    queue, dead = queue_with_dead_letters(ls_env, "work", MAX_RECEIVES, visibility_timeout=60)
    enqueue(queue, jobs, seconds=2)
    log = tmp_path / "jobs.log"
    run = start_run(ls_env, endpoint, tmp_path, "--concurrency", "2")
    try:
        ready = running(run, tmp_path, lambda: sum(of_kind(log, "start").values()) >= 2)
        wait_until(ready, 60, "jobs to start")
        time.sleep(0.5)  # the pollers are in their long polls now
        os.killpg(run.pid, sig)
    finally:
        code, output = finish(run, tmp_path, 60)
    counts = queue_counts(queue)  # right after exit
    started, done = of_kind(log, "start"), of_kind(log, "done")
    print(f"{sig.name}: exit {code}, started {len(started)}, finished {len(done)}, {counts}")
    assert code == 0, output
    # Every job that started finished, once; none was abandoned.
    assert started == done, (started, done)
    assert max(done.values()) == 1
    # One warm stop per process (the supervisor and its 2 workers), never a cold one.
    assert stop_lines(output, "cold") == [], output
    assert len(stop_lines(output, "warm")) == 3, stop_lines(output, "warm")
    # Nothing is left in flight, nothing was dead-lettered, and each job that did
    # not run was received at most once (by the stopped run).
    assert counts.in_flight == 0, output
    assert dead_letter_depth(dead) == 0
    left = job_numbers(receive_all(queue, expected=jobs - len(done), release=False))
    assert set(left) | set(done) == set(range(jobs))
    assert not set(left) & set(done)
    assert max(left.values(), default=0) <= 1, left


def test_a_second_signal_after_a_second_is_a_cold_stop_localstack(
    ls_env: SQSEnv, endpoint: str, tmp_path: Path
) -> None:
    """A deliberate second Ctrl+C abandons the running jobs; their messages come back at once."""
    jobs = 8
    queue, dead = queue_with_dead_letters(ls_env, "work", MAX_RECEIVES, visibility_timeout=60)
    enqueue(queue, jobs, seconds=20)  # under the 30 s grace period
    log = tmp_path / "jobs.log"
    run = start_run(ls_env, endpoint, tmp_path, "--concurrency", "2")
    try:
        ready = running(run, tmp_path, lambda: sum(of_kind(log, "start").values()) >= 2)
        wait_until(ready, 60, "jobs to start")
        os.killpg(run.pid, signal.SIGINT)
        time.sleep(1.5)
        os.killpg(run.pid, signal.SIGINT)
    finally:
        code, output = finish(run, tmp_path, 15)  # well before the jobs end
    counts = queue_counts(queue)
    started = of_kind(log, "start")
    print(f"cold stop: exit {code}, abandoned {len(started)} running job(s), {counts}")
    assert code == 0, output
    assert of_kind(log, "done") == Counter()
    assert stop_lines(output, "cold"), output
    assert counts.in_flight == 0, output
    assert dead_letter_depth(dead) == 0
    # Every message is back; the abandoned ones with the one receive that ran them.
    left = job_numbers(receive_all(queue, expected=jobs, release=False))
    assert set(left) == set(range(jobs))
    assert all(left[n] == 1 for n in started), (left, started)
    assert max(left.values()) <= 1, left


def test_a_worker_process_that_dies_costs_its_messages_one_receive_localstack(
    ls_env: SQSEnv, endpoint: str, tmp_path: Path
) -> None:
    """A job that kills its process among 20 good jobs: the good ones all run, none is
    dead-lettered, the poison is, and the command exits 1."""
    jobs, poison, visibility = 21, 5, 10
    queue, dead = queue_with_dead_letters(
        ls_env, "work", MAX_RECEIVES, visibility_timeout=visibility
    )
    enqueue(queue, jobs, seconds=0.2, poison=poison, after=0.5)
    log = tmp_path / "jobs.log"
    good = set(range(jobs)) - {poison}
    run = start_run(ls_env, endpoint, tmp_path, "--concurrency", "1")
    try:
        wait_until(
            running(
                run,
                tmp_path,
                lambda: len(of_kind(log, "done")) + dead_letter_depth(dead) >= jobs,
            ),
            90,
            "every job to run or reach the dead-letter queue",
        )
        os.killpg(run.pid, signal.SIGINT)
    finally:
        code, output = finish(run, tmp_path, 60)
    counts = settled_counts(queue, (0, 0, 0))
    seen = events(log)
    crashes = [e.at for e in seen if e.kind == "poison"]
    # How soon after the first crash the messages it held ran again.
    back = min((e.at - crashes[0] for e in seen if e.receives > 1), default=float("nan"))
    in_dlq = job_numbers(receive_all(dead, release=True))
    print(
        f"poison: exit {code}, crashes {len(crashes)}, dead-lettered {sorted(in_dlq)}, "
        f"first redelivery {back:.1f} s after the first crash "
        f"(visibility timeout {visibility} s), {counts}"
    )
    assert code == 1, output
    assert "crashed" in output
    assert set(in_dlq) == {poison}
    assert of_kind(log, "done") == Counter(good)  # every good job ran to the end, once
    assert counts == (0, 0, 0), output
    assert "died holding" in output  # released, not left to the visibility timeout
