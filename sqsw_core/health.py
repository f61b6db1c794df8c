"""Health checks of a running worker: ``sqsw run --health-port PORT``.

:class:`HealthServer` answers two paths over HTTP, with a one-object JSON body:

* ``/healthz`` (liveness): 200 while every engine's threads (job threads,
  pollers, visibility heartbeat) are alive and SQS answers, else 503 with the
  reason. "SQS answers" fails only when SQS calls have been failing and none
  succeeded for :func:`sqs_window` seconds: a worker busy with long jobs makes
  no receive for a long time, and is healthy. A stopping worker stays healthy
  (its threads end on purpose), so a probe never kills it during its grace
  period.
* ``/readyz`` (readiness): 200 once every queue's engine runs, 503 before that
  and from the first stop request on, with each queue's state (``starting``,
  ``running``, ``failing``, ``stopping``, ``stopped``).

One process reports on its own engines (:func:`process_report`); with worker
processes the supervisor serves, combining what each child publishes
(:func:`workers_report`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

from sqsw_core.sqs_api import ACTIVITY

__all__ = [
    "HEALTH_PATH",
    "READY_PATH",
    "HealthServer",
    "WorkerReport",
    "process_report",
    "sqs_window",
    "workers_report",
]

logger = logging.getLogger("sqsw.health")

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
#: Seconds after which a worker process's last published report is too old.
REPORT_STALE_AFTER = 10.0

#: A report: ``healthy``, ``ready``, ``reason`` (why not healthy, else why not
#: ready, else ""), ``queues`` (name -> state).
Report = dict[str, Any]


def sqs_window(wait_seconds: float) -> float:
    """Seconds SQS calls may fail with no success before a worker is unhealthy:
    three long polls, at least a minute (a few retried outages of a second pass)."""
    return max(60.0, 3.0 * wait_seconds)


def sqs_problem(window: float, started: float, now: float | None = None) -> str:
    """Why SQS looks unreachable from this process ("" when it does not): the last
    call failed and none succeeded for ``window`` seconds (since ``started``, if none
    ever did)."""
    last_error, last_success = ACTIVITY.last_error, ACTIVITY.last_success
    if last_error is None or (last_success is not None and last_success >= last_error):
        return ""
    now = time.monotonic() if now is None else now
    since = last_success if last_success is not None else started
    if now - since <= window:
        return ""
    return f"no successful SQS call for {now - since:.0f} s (last: {ACTIVITY.last_error_text})"


def queue_state(queue: Any) -> tuple[str, str]:
    """A queue's state in this process, and the problem that makes it unhealthy ("")."""
    engine = getattr(queue, "engine", None)
    if engine is None:
        stopped = getattr(queue, "last_engine_stats", None) is not None
        return ("stopped" if stopped else "starting"), ""
    health = engine.health()
    if health["stopping"]:
        return "stopping", ""
    if not health["running"]:
        return "starting", ""
    dead = health["dead_threads"]
    if dead:
        return "failing", f"queue {queue.name}: thread(s) {', '.join(dead)} ended"
    return "running", ""


def process_report(queues: Iterable[Any], window: float, started: float) -> Report:
    """The health of the engines of ``queues`` in this process (see the module)."""
    states: dict[str, str] = {}
    problems: list[str] = []
    for queue in queues:
        state, problem = queue_state(queue)
        states[queue.name] = state
        if problem:
            problems.append(problem)
    sqs = sqs_problem(window, started)
    if sqs:
        problems.append(sqs)
    waiting = [f"queue {name} is {state}" for name, state in states.items() if state != "running"]
    return {
        "healthy": not problems,
        "ready": not problems and not waiting,
        "reason": "; ".join(problems or waiting),
        "queues": states,
    }


class WorkerReport(NamedTuple):
    """What the supervisor knows of one worker slot for a health check."""

    slot: int
    #: The child's pid, ``None`` while the slot has no process (waiting for a restart).
    pid: int | None
    alive: bool
    #: Seconds since the child last published ``report`` (``None``: never).
    age: float | None
    report: Report | None


def workers_report(workers: Sequence[WorkerReport], stopping: bool) -> Report:
    """The health of a supervisor's worker processes: healthy while each slot has a
    live child whose recent report is healthy; ready when each one's report is ready
    and no stop was asked. ``queues`` maps each queue to its children's states."""
    if not workers:
        return _starting()  # the supervisor has not started its children yet
    problems: list[str] = []
    waiting: list[str] = []
    states: dict[str, list[str]] = {}
    for worker in workers:
        name = f"worker {worker.slot}" + (f" (pid {worker.pid})" if worker.pid else "")
        report = worker.report
        if worker.pid is None or not worker.alive:
            problems.append(f"{name} is not running")
        elif report is None or worker.age is None:
            waiting.append(f"{name} is starting")
        elif worker.age > REPORT_STALE_AFTER:
            problems.append(f"{name} has not reported for {worker.age:.0f} s")
        elif not report["healthy"]:
            problems.append(f"{name}: {report['reason']}")
        elif not report["ready"]:
            waiting.append(f"{name}: {report['reason']}")
        for queue, state in (report or {}).get("queues", {}).items():
            states.setdefault(queue, []).append(state)
    if stopping:
        problems = []  # children end on purpose: the supervisor stays alive until they did
        waiting.insert(0, "stopping")
    return {
        "healthy": not problems,
        "ready": not problems and not waiting,
        "reason": "; ".join(problems or waiting),
        "queues": states,
    }


def _starting() -> Report:
    return {"healthy": True, "ready": False, "reason": "starting", "queues": {}}


class HealthServer:
    """Serves ``/healthz`` and ``/readyz`` on ``host:port`` from a daemon thread.

    Binds when made (an ``OSError`` if the port is taken). ``probe`` returns
    the current report; until one is set the worker is healthy and starting.
    """

    def __init__(self, port: int, host: str = "0.0.0.0") -> None:
        self.probe: Callable[[], Report] = _starting
        server = self

        class Handler(_Handler):
            health = server

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port: int = self.httpd.server_address[1]
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="sqsw-health", daemon=True
        )

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def report(self) -> Report:
        """The probe's report; a probe that raises makes an unhealthy one (logged)."""
        try:
            return self.probe()
        except Exception as exc:
            logger.exception("The health check failed")
            return {"healthy": False, "ready": False, "reason": f"health check failed: {exc}"}

    def close(self) -> None:
        if self._thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    health: HealthServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == HEALTH_PATH:
            report = self.health.report()
            ok = bool(report["healthy"])
            body: dict[str, Any] = {"status": "ok" if ok else "failing"}
            if report["reason"] and not ok:
                body["reason"] = report["reason"]
        elif path == READY_PATH:
            report = self.health.report()
            ok = bool(report["ready"])
            body = {"status": "ready" if ok else "not ready", "queues": report.get("queues", {})}
            if report["reason"]:
                body["reason"] = report["reason"]
        else:
            self._send(404, {"status": "not found", "paths": [HEALTH_PATH, READY_PATH]})
            return
        self._send(200 if ok else 503, body)

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = (json.dumps(body) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)
