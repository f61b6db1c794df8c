"""``sqsw run --health-port`` and ``--metrics-port``, scraped over HTTP while a worker runs.

The worker is the real command line (tests/apps/metrics_app.py) on the in-memory
SQS (one process: the app enqueues its own jobs) or on LocalStack (one process,
and ``--workers 2``, whose one scrape sums both). Counters are checked against
the jobs run; SQS is checked after the worker exits.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sqsw_core import SQSEnv, create_standard_queue
from sqsw_core.health import HealthServer, process_report
from sqsw_core.shutdown_policies import MaxTasksShutdown
from tests.apps.metrics_app import enqueue
from tests.helpers import cli_environ, expect_counts, one_error_line, run_sqsw, wait_until
from tests.localstack_server import REGION

REPO = Path(__file__).resolve().parent.parent
APP = "tests.apps.metrics_app:sqs"
#: ok, flaky (fail once), later (RetryJob once), tally (bulk: odd ones fail once), lookup
SEED = (20, 5, 3, 6, 2)
#: (job, outcome) -> count for SEED.
EXPECTED_JOBS = {
    ("ok", "succeeded"): 20,
    ("flaky", "failed"): 5,
    ("flaky", "succeeded"): 5,
    ("later", "retried"): 3,
    ("later", "succeeded"): 3,
    ("tally", "failed"): 3,
    ("tally", "succeeded"): 6,
    ("lookup", "succeeded"): 2,
}
RECEIVED = 20 + 2 * 5 + 2 * 3 + 6 + 3 + 2
MISSING_QUEUE_CODES = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(port: int, path: str) -> tuple[int, str]:
    """``GET http://127.0.0.1:PORT/PATH``: status and body (0, "" if nothing listens)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return 0, ""


def probe(port: int, path: str) -> tuple[int, dict[str, Any]]:
    status, body = get(port, path)
    return status, json.loads(body) if body else {}


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of ``/metrics``: (name, labels) -> value."""
    status, text = get(port, "/metrics")
    assert status == 200, (status, text)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def jobs_by_outcome(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float],
) -> dict[tuple[str, str], int]:
    out = {}
    for (name, labels), count in samples.items():
        if name == "sqsw_jobs_total" and count:
            label = dict(labels)
            assert label["queue"] == "metered", label
            out[(label["job"], label["outcome"])] = int(count)
    return out


class Worker:
    """``sqsw run`` of the metrics app in a process group of its own, output in a file."""

    def __init__(
        self, tmp_path: Path, variables: dict[str, str], *options: str, queues: str = "metered"
    ) -> None:
        self.tmp_path = tmp_path
        self.health_port, self.metrics_port = free_port(), free_port()
        command = [sys.executable, "-m", "sqsw_core.cli", "run", "--app", APP]
        command += ["--wait-seconds", "1", "--backoff-policy", "immediate"]
        command += ["--health-port", str(self.health_port)]
        command += ["--metrics-port", str(self.metrics_port), *options, *queues.split()]
        environ = cli_environ({"APP_DIR": str(tmp_path), **variables})
        self.out = tmp_path / "out.log"
        with self.out.open("w") as out:
            self.process = subprocess.Popen(
                command,
                cwd=tmp_path,
                env=environ,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.out.read_text()

    def running(self, predicate: Any) -> Any:
        def check() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"sqsw run exited with {self.process.returncode}:\n{self.output()}")
            return bool(predicate())

        return check

    def wait_ready(self) -> dict[str, Any]:
        wait_until(
            self.running(lambda: probe(self.health_port, "/readyz")[0] == 200), 30, "/readyz 200"
        )
        return probe(self.health_port, "/readyz")[1]

    def wait_jobs(self, expected: dict[tuple[str, str], int]) -> dict[Any, float]:
        """The scrape once ``sqsw_jobs_total`` and in flight show every job settled."""

        def settled() -> bool:
            samples = scrape(self.metrics_port)
            return (
                jobs_by_outcome(samples) == expected
                and value(samples, "sqsw_messages_received_total", queue="metered") == RECEIVED
                and value(samples, "sqsw_messages_in_flight", queue="metered") == 0
            )

        try:
            wait_until(self.running(settled), 30, "every job counted")
        except AssertionError:
            raise AssertionError(f"{jobs_by_outcome(scrape(self.metrics_port))}\n{self.output()}")
        return scrape(self.metrics_port)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM to the group (as Kubernetes stops a pod), then its exit code."""
        os.killpg(self.process.pid, signal.SIGTERM)
        return self.finish(timeout)

    def finish(self, timeout: float = 30) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


def localstack_variables(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "SQSW_REGION": REGION,
        "SQSW_ENDPOINT_URL": endpoint,
    }


def check_counters(samples: dict[Any, float]) -> None:
    """The engines' counters and SQS errors of a run of SEED."""
    counters = {
        name: value(samples, name, queue="metered")
        for name in (
            "sqsw_messages_received_total",
            "sqsw_messages_redelivered_total",
            "sqsw_messages_released_total",
            "sqsw_visibility_extensions_total",
            "sqsw_failed_acks_total",
            "sqsw_messages_in_flight",
        )
    }
    assert counters == {
        "sqsw_messages_received_total": RECEIVED,
        "sqsw_messages_redelivered_total": 5 + 3 + 3,
        "sqsw_messages_released_total": 0,
        "sqsw_visibility_extensions_total": 0,
        "sqsw_failed_acks_total": 0,
        "sqsw_messages_in_flight": 0,
    }
    durations = {
        job: value(samples, "sqsw_job_duration_seconds_count", queue="metered", job=job)
        for job in ("ok", "flaky", "later", "lookup")
    }
    assert durations == {"ok": 20, "flaky": 10, "later": 6, "lookup": 2}
    assert value(samples, "sqsw_job_duration_seconds_count", queue="metered", job="tally") >= 2
    errors = {
        dict(labels)["code"]: count
        for (name, labels), count in samples.items()
        if name == "sqsw_sqs_errors_total" and count
    }
    assert len(errors) == 1 and set(errors) <= MISSING_QUEUE_CODES, errors
    code = next(iter(errors))
    assert value(samples, "sqsw_sqs_errors_total", operation="get_queue_url", code=code) == 2


def test_one_worker_serves_health_and_metrics_memory(tmp_path: Path) -> None:
    seed = ",".join(map(str, SEED))
    worker = Worker(tmp_path, {"APP_MEMORY": "1", "APP_SEED": seed})
    try:
        ready = worker.wait_ready()
        assert ready == {"status": "ready", "queues": {"metered": "running"}}
        assert probe(worker.health_port, "/healthz") == (200, {"status": "ok"})
        samples = worker.wait_jobs(EXPECTED_JOBS)
        check_counters(samples)
        assert value(samples, "process_cpu_seconds_total") > 0  # the default registry's too
        assert probe(worker.health_port, "/nowhere")[0] == 404
    finally:
        code = worker.stop()
    assert code == 0, worker.output()


def test_one_worker_serves_health_and_metrics_localstack(
    ls_env: SQSEnv, endpoint: str, tmp_path: Path
) -> None:
    create_standard_queue(ls_env, "metered", visibility_timeout=30)
    queue = ls_env.queue("metered")
    enqueue(queue, *SEED)
    variables = localstack_variables(endpoint)
    worker = Worker(tmp_path, variables, "--queue-prefix", ls_env.queue_prefix)
    try:
        assert worker.wait_ready()["queues"] == {"metered": "running"}
        check_counters(worker.wait_jobs(EXPECTED_JOBS))
        assert probe(worker.health_port, "/healthz") == (200, {"status": "ok"})
    finally:
        code = worker.stop()
    assert code == 0, worker.output()
    expect_counts(queue, (0, 0, 0), "after the worker exited")


def test_two_worker_processes_serve_one_sum_localstack(
    ls_env: SQSEnv, endpoint: str, tmp_path: Path
) -> None:
    create_standard_queue(ls_env, "metered", visibility_timeout=30)
    queue = ls_env.queue("metered")
    enqueue(queue, *SEED, seconds=0.05)
    options = ["--queue-prefix", ls_env.queue_prefix, "--workers", "2"]
    options += ["--concurrency", "2", "--prefetch", "0", "--pollers", "1"]
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    variables = {**localstack_variables(endpoint), "TMPDIR": str(temporary)}
    worker = Worker(tmp_path, variables, *options)
    try:
        assert worker.wait_ready()["queues"] == {"metered": ["running", "running"]}
        check_counters(worker.wait_jobs(EXPECTED_JOBS))
        # Both processes ran jobs: the scrape above summed them.
        ran = {path.name.split("-")[2] for path in tmp_path.glob("ok-by-*")}
        assert len(ran) == 2, ran
        assert probe(worker.health_port, "/healthz") == (200, {"status": "ok"})
        # A warm stop while a job runs: not ready (stopping), still alive, until it ends.
        enqueue(queue, 0, hold=1)
        wait_until(worker.running(lambda: (tmp_path / "holding-0").exists()), 20, "hold job")
        os.killpg(worker.process.pid, signal.SIGTERM)
        wait_until(lambda: probe(worker.health_port, "/readyz")[0] == 503, 10, "/readyz 503")
        status, body = probe(worker.health_port, "/readyz")
        assert (status, body["reason"].split(";")[0]) == (503, "stopping"), body
        assert probe(worker.health_port, "/healthz") == (200, {"status": "ok"})
        (tmp_path / "release").touch()
    finally:
        code = worker.finish()
    assert code == 0, worker.output()
    expect_counts(queue, (0, 0, 0), "after the workers exited")
    # The supervisor's directories (held messages, metrics files) are gone.
    assert list(temporary.iterdir()) == []


def test_several_queues_report_each_queue_memory(tmp_path: Path) -> None:
    variables = {"APP_MEMORY": "1", "APP_SEED": "7", "APP_OTHER": "4"}
    worker = Worker(tmp_path, variables, queues="metered other")
    try:
        ready = worker.wait_ready()
        assert ready == {"status": "ready", "queues": {"metered": "running", "other": "running"}}

        def counted() -> dict[str, float]:
            samples = scrape(worker.metrics_port)
            return {
                queue: value(samples, "sqsw_messages_received_total", queue=queue)
                + value(samples, "sqsw_jobs_total", queue=queue, job="ok", outcome="succeeded")
                for queue in ("metered", "other")
            }

        wait_until(worker.running(lambda: counted() == {"metered": 14, "other": 8}), 20, "jobs")
    finally:
        code = worker.stop()
    assert code == 0, worker.output()


def test_readyz_is_503_during_a_warm_stop_memory(tmp_path: Path) -> None:
    worker = Worker(tmp_path, {"APP_MEMORY": "1", "APP_SEED": "2,0,0,0,0,1"})
    try:
        worker.wait_ready()
        wait_until(worker.running(lambda: (tmp_path / "holding-0").exists()), 20, "hold job")
        os.killpg(worker.process.pid, signal.SIGTERM)
        wait_until(lambda: probe(worker.health_port, "/readyz")[0] == 503, 10, "/readyz 503")
        status, body = probe(worker.health_port, "/readyz")
        assert (status, body["queues"]) == (503, {"metered": "stopping"}), body
        assert probe(worker.health_port, "/healthz") == (200, {"status": "ok"})
        wait_until(
            lambda: (
                value(scrape(worker.metrics_port), "sqsw_messages_in_flight", queue="metered") == 1
            ),
            5,
            "the running hold job in flight",
        )
        assert jobs_by_outcome(scrape(worker.metrics_port)) == {("ok", "succeeded"): 2}
        (tmp_path / "release").touch()
    finally:
        code = worker.finish()
    assert code == 0, worker.output()


def test_healthz_fails_while_sqs_calls_fail_and_none_succeeds_memory() -> None:
    sqs = SQSEnv("memory")
    create_standard_queue(sqs, "q")
    queue = sqs.queue("q")
    queue.processor("ok")(lambda: None)
    queue.add_job("ok")
    runner = threading.Thread(
        target=queue.process_queue, args=(MaxTasksShutdown(1),), kwargs={"wait_seconds": 0}
    )
    runner.start()
    runner.join(10)
    server = HealthServer(0, host="127.0.0.1").start()
    started = time.monotonic()
    server.probe = lambda: process_report([queue], 0.3, started)
    try:
        assert probe(server.port, "/healthz") == (200, {"status": "ok"})
        assert probe(server.port, "/readyz") == (
            503,
            {"status": "not ready", "queues": {"q": "stopped"}, "reason": "queue q is stopped"},
        )
        with pytest.raises(Exception, match="does not exist"):
            sqs.get_queue_url("missing")  # a failed SQS call, and none succeeds after it
        time.sleep(0.4)
        status, body = probe(server.port, "/healthz")
        assert status == 503 and body["status"] == "failing", body
        assert "no successful SQS call for" in body["reason"], body
        assert "get_queue_url" in body["reason"], body
        sqs.api.call("list_queues", None)  # SQS answers again
        assert probe(server.port, "/healthz") == (200, {"status": "ok"})
    finally:
        server.close()


@pytest.mark.parametrize(
    ("args", "variables", "expected"),
    [
        (
            ["--metrics-port", "70000"],
            {},
            "option --metrics-port: metrics_port must be an integer from 1 to 65535, got 70000",
        ),
        (
            [],
            {"SQSW_HEALTH_PORT": "0"},
            "environment variable SQSW_HEALTH_PORT: health_port must be an integer from 1 to "
            "65535, got 0",
        ),
        (
            ["--health-port", "9999", "--metrics-port", "9999"],
            {},
            "option --metrics-port: the metrics port 9999 is also the health port (option "
            "--health-port); give two ports",
        ),
    ],
    ids=["metrics-port-range", "health-port-variable", "same-port"],
)
def test_bad_ports_are_refused_in_one_line(
    args: list[str], variables: dict[str, str], expected: str, tmp_path: Path
) -> None:
    result = run_sqsw(
        "run",
        "--app",
        APP,
        "--session",
        "memory",
        *args,
        "metered",
        cwd=tmp_path,
        env=cli_environ(variables, REPO),
    )
    assert one_error_line(result, 4) == f"Error: {expected}"


def test_a_config_file_port_out_of_range_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "sqsw.toml").write_text(f'app = "{APP}"\nmetrics_port = 70000\n')
    result = run_sqsw(
        "run", "--session", "memory", "metered", cwd=tmp_path, env=cli_environ({}, REPO)
    )
    assert one_error_line(result, 4) == (
        f"Error: {tmp_path / 'sqsw.toml'} key 'metrics_port': metrics_port must be an "
        "integer from 1 to 65535, got 70000"
    )


def test_a_port_in_use_is_refused_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_sqsw(
            "run",
            "--app",
            APP,
            "--health-port",
            str(port),
            "metered",
            cwd=tmp_path,
            env=cli_environ({}, REPO),
        )
    line = one_error_line(result, 4)
    assert line.startswith(f"Error: option --health-port {port}: cannot listen on 0.0.0.0:{port}: ")
    assert line.endswith("; choose a free port"), line


def test_metrics_without_sqsw_prometheus_say_what_to_install(tmp_path: Path) -> None:
    """An environment with sqsw-core and the other plugins, without sqsw-prometheus and
    prometheus_client: this one's site-packages minus those, as a site directory."""
    site_dir = tmp_path / "site-packages"
    site_dir.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if "sqsw_prometheus" not in entry.name and not entry.name.startswith("prometheus_client"):
            (site_dir / entry.name).symlink_to(entry)
    code = (
        "import runpy, site, sys; site.addsitedir(sys.argv.pop(1)); "
        "runpy.run_module('sqsw_core.cli', run_name='__main__')"
    )
    command = [sys.executable, "-S", "-c", code, str(site_dir), "run", "--app", APP]
    command += ["--session", "memory", "--metrics-port", "9100", "metered"]
    result = subprocess.run(
        command,
        cwd=tmp_path,
        env=cli_environ({}, REPO),
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = one_error_line(result, 4)
    assert line.startswith(
        "Error: option --metrics-port: serving metrics needs a plugin. No sqsw plugin named "
        "'prometheus' in group 'sqsw.metrics'"
    ), line
    assert line.endswith("Install it with: pip install sqsw-prometheus"), line
