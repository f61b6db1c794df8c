"""Helpers shared by the behaviour tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from sqsw_core import JobQueue, SQSEnv, create_standard_queue
from sqsw_core.job_runner import ROWS_RECEIVE
from sqsw_core.settling import HANDLES_DELETE
from sqsw_core.shutdown_policies import IdleShutdown


def queue_with_dead_letters(
    env: SQSEnv, name: str, max_receives: int, **options: Any
) -> tuple[JobQueue, JobQueue]:
    """Queue ``name`` redriving to ``name_dead`` after ``max_receives`` receives; both
    queues (``options``: ``create_standard_queue``'s, e.g. ``visibility_timeout``)."""
    create_standard_queue(env, f"{name}_dead")
    create_standard_queue(
        env, name, redrive_policy=env.redrive_policy(f"{name}_dead", max_receives), **options
    )
    return env.queue(name), env.queue(f"{name}_dead")


def on_memory(env: SQSEnv) -> bool:
    return type(env.session).__name__ == "MemorySession"


def poll(env: SQSEnv) -> int:
    """Long-poll seconds for "is anything left?": LocalStack's timers tick once a second."""
    return 0 if on_memory(env) else 1


def process_until_idle(queue: Any, idle: float | None = None) -> None:
    """Run the worker until the queue stays empty for ``idle`` seconds (default: short)."""
    memory = on_memory(queue.env)
    if idle is None:
        # On FIFO queues the messages after a failed one come back 1 s after it.
        idle = 1.5 if queue.is_fifo else 0.3 if memory else 1.0
    wait = 0 if memory and idle < 1 else 1
    queue.process_queue(shutdown_policy=IdleShutdown(idle), wait_seconds=wait)


class QueueCounts(NamedTuple):
    """What SQS reports for a queue: compares equal to ``(visible, in_flight, delayed)``."""

    visible: int
    in_flight: int
    delayed: int


def queue_counts(queue: Any) -> QueueCounts:
    """Visible, in flight (received, not deleted) and delayed messages of ``queue``."""
    attributes = queue.env.sqs_client.get_queue_attributes(
        QueueUrl=queue.url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return QueueCounts(
        int(attributes.get("ApproximateNumberOfMessages", 0)),
        int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
        int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
    )


def wait_until(predicate: Callable[[], bool], timeout: float, what: str = "condition") -> None:
    """Poll ``predicate`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


def settled_counts(queue: Any, expected: tuple[int, int, int], timeout: float = 3.0) -> QueueCounts:
    """``queue_counts(queue)`` once it equals ``expected``, or the last counts seen.

    LocalStack updates its counters on a timer that ticks about once a second;
    this waits up to ``timeout`` for them to settle. Use a visibility timeout
    well above ``timeout`` so that a message held by mistake cannot reappear
    within it: then ``settled_counts(q, (0, 0, 0))[1]`` is what is really in flight.
    """
    deadline = time.monotonic() + timeout
    counts = queue_counts(queue)
    while counts != expected and time.monotonic() < deadline:
        time.sleep(0.1)
        counts = queue_counts(queue)
    return counts


def expect_counts(
    queue: Any, expected: tuple[int, int, int], what: str = "", dead: Any = None
) -> None:
    """Assert that ``queue`` settles at ``expected`` (visible, in flight, delayed) within 3 s.

    ``dead``: its dead-letter queue, whose depth the failure message then shows.
    """
    counts = settled_counts(queue, expected)
    if counts != expected:
        where = f" (dead-letter queue: {dead_letter_depth(dead)})" if dead is not None else ""
        label = f"{queue.name} {what}".strip()
        raise AssertionError(f"{label}: {counts}, expected {expected}{where}")


def receive_all(
    queue: Any,
    *,
    expected: int | None = None,
    release: bool = True,
    timeout: float = 15.0,
) -> list[dict[str, Any]]:
    """Every visible message of ``queue``, each received once, as boto3 dicts (all attributes).

    Stops when ``expected`` messages were received, or else when receives come back
    empty and SQS reports none visible. Each message's ``ApproximateReceiveCount``
    includes this receive. ``release=True`` makes them visible again at once
    (their receive count stays one higher); ``release=False`` deletes them.
    Delayed messages are not received.
    """
    client, url = queue.env.sqs_client, queue.url
    memory = type(queue.env.session).__name__ == "MemorySession"
    found: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    empty = 0
    while expected is None or len(found) < expected:
        assert time.monotonic() < deadline, (
            f"receive_all({queue.name}): {len(found)} message(s) after {timeout} s, "
            f"expected {expected}; counts {queue_counts(queue)}"
        )
        got = client.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0 if memory else 1,
            VisibilityTimeout=120,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        for message in got:
            found[message["MessageId"]] = message
        if got:
            empty = 0
            continue
        empty += 1
        if expected is None and empty >= 2 and queue_counts(queue).visible == 0:
            break
    handles = [m["ReceiptHandle"] for m in found.values()]
    for start in range(0, len(handles), 10):
        chunk = handles[start : start + 10]
        if release:
            client.change_message_visibility_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                    for i, h in enumerate(chunk)
                ],
            )
        else:
            client.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(chunk)],
            )
    return list(found.values())


def receive_counts(queue: Any, **options: Any) -> dict[str, int]:
    """How many times each visible message of ``queue`` had been received before this look.

    MessageId -> ``ApproximateReceiveCount`` - 1; see :func:`receive_all` (same options):
    looking costs each message one receive (mind a redrive policy's maxReceiveCount).
    """
    return {
        m["MessageId"]: int(m["Attributes"]["ApproximateReceiveCount"]) - 1
        for m in receive_all(queue, **options)
    }


def dead_letter_depth(queue: Any) -> int:
    """Messages in ``queue`` (a dead-letter queue): visible + in flight + delayed."""
    return sum(queue_counts(queue))


REPO = Path(__file__).resolve().parent.parent


def start_worker_process(
    env: SQSEnv, endpoint: str, log: Path, *, capture_output: bool = False, **settings: Any
) -> subprocess.Popen[str]:
    """Start ``tests/apps/worker_app.py`` on queue ``work`` of ``env`` (see its docstring).

    ``settings`` become its ``APP_*`` variables (``sleep=0.02`` -> ``APP_SLEEP``).
    """
    variables = {
        **os.environ,
        "SQSW_TEST_ENDPOINT": endpoint,
        "APP_PREFIX": env.queue_prefix,
        "APP_QUEUE": "work",
        "APP_LOG": str(log),
    }
    variables.update(
        {f"APP_{key.rstrip('_').upper()}": str(value) for key, value in settings.items()}
    )
    output = subprocess.PIPE if capture_output else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "tests.apps.worker_app"],
        cwd=REPO,
        env=variables,
        stdout=output,
        stderr=subprocess.STDOUT if capture_output else subprocess.DEVNULL,
        text=True,
    )


def handles_signal(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler installed for ``signum`` (Linux: /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # gone
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


def wait_until_handling(process: subprocess.Popen[str], signum: int, timeout: float = 30) -> None:
    """Wait until ``process`` (still running) has installed its handler for ``signum``.

    A worker process signalled earlier, while still importing, dies of the signal
    instead of stopping: this makes "the worker is ready for a stop" observable.
    """
    wait_until(
        lambda: process.poll() is not None or handles_signal(process.pid, signum),
        timeout,
        f"process {process.pid} to handle signal {signum}",
    )
    assert process.poll() is None, f"process {process.pid} exited with {process.returncode}"


def runs_in(log: Path) -> Counter[int]:
    """How many times each job number ran, from a worker app's log."""
    if not log.exists():
        return Counter()
    return Counter(int(line.split()[0]) for line in log.read_text().splitlines() if line)


def runs_by_process(log: Path) -> dict[int, list[int]]:
    """Job number -> the pids of the processes that ran it, in order, from a worker app's log."""
    runs: dict[int, list[int]] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            if line:
                n, pid = line.split()[:2]
                runs.setdefault(int(n), []).append(int(pid))
    return runs


def operation_name(method: str) -> str:
    """The SQS operation of a boto3 method: ``delete_message_batch`` -> ``DeleteMessageBatch``."""
    return "".join(word.capitalize() for word in method.split("_"))


#: Calls sqsw makes on the in-memory SQS instead of ReceiveMessage and DeleteMessageBatch.
SHORTCUTS = frozenset({ROWS_RECEIVE, HANDLES_DELETE})


class InterceptedClient:
    """Test-only wrapper of an SQS client: every API call goes through :meth:`intercept`."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        if name in SHORTCUTS:
            # The in-memory SQS's own receive and delete: refused, so the worker makes
            # the SQS calls this wrapper sees.
            raise AttributeError(name)
        target = getattr(self._client, name)
        if name.startswith("_") or not callable(target) or name in ("get_paginator", "meta"):
            return target
        operation = operation_name(name)

        def call(**params: Any) -> Any:
            return self.intercept(operation, target, params)

        return call

    def intercept(self, operation: str, target: Callable[..., Any], params: dict[str, Any]) -> Any:
        """Make the call ``target(**params)`` of ``operation`` (subclasses inject faults)."""
        return target(**params)


def one_error_line(result: subprocess.CompletedProcess[str], exit_code: int) -> str:
    """The one ``Error:`` line on stderr of a refused ``sqsw`` command, after checking the
    exit code and that no traceback was printed."""
    assert result.returncode == exit_code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), result.stderr
    return lines[0]


def cli_environ(variables: dict[str, str] | None = None, *pythonpath: Path) -> dict[str, str]:
    """This process's environment for a ``sqsw`` subprocess: no SQSW_* variable but
    ``variables``, and ``pythonpath`` (then the repository) on PYTHONPATH."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SQSW_")}
    environ["PYTHONPATH"] = os.pathsep.join(str(p) for p in (*pythonpath, REPO))
    environ.update(variables or {})
    return environ


def run_sqsw(
    *args: str, cwd: Path, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``sqsw ARGS`` as a user runs it (``python -m sqsw_core.cli``), output captured."""
    return subprocess.run(
        [sys.executable, "-m", "sqsw_core.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
