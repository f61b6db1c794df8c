"""The ``sqsw`` command line, run as a subprocess against LocalStack."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sqsw_core import SQSEnv, create_standard_queue, plugins
from sqsw_core.cli import common
from sqsw_core.cli.common import EXIT_APP, EXIT_OK, EXIT_PLUGIN, EXIT_SQS, EXIT_USAGE
from tests.helpers import dead_letter_depth, expect_counts, receive_all, wait_until
from tests.localstack_server import REGION

REPO = Path(__file__).resolve().parent.parent
SQSW = [sys.executable, "-m", "sqsw_core.cli"]

APP = textwrap.dedent(
    """
    import os
    import time

    from sqsw_core import SQSEnv

    sqs = SQSEnv()  # session, prefix and processor come from the command line
    emails = sqs.queue("emails")


    @emails.processor("send")
    def send(n):
        time.sleep(float(os.environ.get("APP_SLEEP", "0")))
        processor = type(emails.processors["send"]).__name__
        with open(os.environ["APP_LOG"], "a") as f:
            f.write(f"{n} {processor}\\n")
    """
)


def variables(endpoint: str | None = None, **extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("SQSW_")}
    out.update(
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        SQSW_REGION=REGION,
        PYTHONPATH=str(REPO),
    )
    if endpoint is not None:
        out["SQSW_ENDPOINT_URL"] = endpoint
    out.update(extra)
    return out


def sqsw(
    *args: str, cwd: Path | None = None, endpoint: str | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SQSW, *args],
        cwd=cwd or REPO,
        env=variables(endpoint, **extra),
        capture_output=True,
        text=True,
        timeout=120,
    )


def emails_app(ls_env: SQSEnv, tmp_path: Path, jobs: int) -> tuple[Path, list[str]]:
    """The CLI app in ``tmp_path``, ``jobs`` jobs on its queue (which redrives to
    ``emails_dead`` after 2 receives); the job log and the ``sqsw run`` command line
    for that queue (add options before the queue name)."""
    (tmp_path / "cli_app.py").write_text(APP)
    create_standard_queue(ls_env, "emails_dead")
    create_standard_queue(
        ls_env,
        "emails",
        visibility_timeout=60,
        redrive_policy=ls_env.redrive_policy("emails_dead", 2),
    )
    queue = ls_env.queue("emails")
    with queue.add_batch():
        for n in range(jobs):
            queue.add_job("send", n=n)
    command = [*SQSW, "run", "--app", "cli_app:sqs", "--queue-prefix", ls_env.queue_prefix]
    command += ["--wait-seconds", "1", "--stats-interval", "0.5"]
    return tmp_path / "jobs.log", command


def logged_jobs(log: Path) -> list[int]:
    return [int(line.split()[0]) for line in log.read_text().splitlines()] if log.exists() else []


def processor_variants() -> list[str]:
    return ["default", "otel"]


@pytest.mark.slow
@pytest.mark.parametrize("processor", processor_variants())
def test_run_processes_jobs_and_stops_cleanly_on_sigterm(
    processor: str, ls_env: SQSEnv, endpoint: str, tmp_path: Path
) -> None:
    """SIGTERM while jobs run: exit 0, running jobs finish, the rest waits, received once."""
    jobs = 40
    log, command = emails_app(ls_env, tmp_path, jobs)
    queue, dead = ls_env.queue("emails"), ls_env.queue("emails_dead")
    output_path = tmp_path / "output.txt"
    with output_path.open("w") as output_file:
        worker = subprocess.Popen(
            [*command, "--processor", processor, "--concurrency", "2", "emails"],
            cwd=tmp_path,
            env=variables(endpoint, APP_LOG=str(log), APP_SLEEP="0.2"),
            stdout=output_file,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        # A few jobs done and at least one stats line (every 0.5 s), then the stop.
        wait_until(
            lambda: (
                worker.poll() is not None
                or (len(logged_jobs(log)) >= 4 and "jobs done" in output_path.read_text())
            ),
            60,
            "4 jobs and a stats line",
        )
        assert worker.poll() is None, output_path.read_text()
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    output = output_path.read_text()
    assert worker.returncode == EXIT_OK, output
    assert "SIGTERM received" in output
    assert "jobs done" in output
    lines = log.read_text().splitlines()
    expected = "Processor" if processor == "default" else "Otel"
    assert all(expected in line.split()[1] for line in lines), lines
    done = logged_jobs(log)
    assert len(done) == len(set(done)), f"a job ran twice: {sorted(done)}"
    assert len(done) < jobs, "every job ran before the stop"
    # Right after the exit: nothing in flight, none dead-lettered, the rest
    # receivable now (visibility timeout 60 s), each received at most once before.
    left = jobs - len(done)
    expect_counts(queue, (left, 0, 0), "after sqsw run exited", dead=dead)
    assert dead_letter_depth(dead) == 0
    waiting = receive_all(queue, expected=left, release=False)
    assert sorted(done + [json.loads(m["Body"])["n"] for m in waiting]) == list(range(jobs))
    receives = Counter(int(m["Attributes"]["ApproximateReceiveCount"]) - 1 for m in waiting)
    assert set(receives) <= {0, 1}, f"receives before the look -> messages: {dict(receives)}"


@pytest.mark.slow
def test_run_with_worker_processes_shows_their_summed_counters(
    ls_env: SQSEnv, endpoint: str, tmp_path: Path
) -> None:
    log, command = emails_app(ls_env, tmp_path, 30)
    result = subprocess.run(
        [*command, "--workers", "2", "--concurrency", "2", "--shutdown", "idle=2", "emails"],
        cwd=tmp_path,
        env=variables(endpoint, APP_LOG=str(log)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == EXIT_OK, result.stderr
    assert sorted(logged_jobs(log)) == list(range(30))
    # Nothing held after the exit, nothing dead-lettered.
    expect_counts(ls_env.queue("emails"), (0, 0, 0), "after sqsw run exited")
    assert dead_letter_depth(ls_env.queue("emails_dead")) == 0
    # One line for the whole run, summed over the worker processes.
    assert "emails: 30 jobs done" in result.stderr
    (final,) = [x for x in result.stderr.splitlines() if "Stopped emails (2 worker" in x]
    assert "received=30 " in final and "succeeded=30 " in final, final


def test_plugins_lists_every_shipped_plugin_with_its_distribution() -> None:
    result = sqsw("plugins", "--json")
    assert result.returncode == EXIT_OK, result.stderr
    rows = json.loads(result.stdout)
    found = {(row["group"], row["name"]): row for row in rows}
    for group, names in plugins.KNOWN_PROVIDERS.items():
        for name, package in names.items():
            row = found[(group, name)]
            assert row["provider"] == f"{package} 0.1.0"
            assert row["status"] == "ok"
    table = sqsw("plugins")
    assert table.returncode == EXIT_OK
    for group in plugins.GROUPS:
        assert group in table.stdout
    assert "sqsw-deadletter 0.1.0" in table.stdout


def test_plugins_reports_one_that_fails_to_load(tmp_path: Path) -> None:
    site = tmp_path / "site"
    dist = site / "broken_sqsw-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-sqsw\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[sqsw.codecs]\nbroken = broken_sqsw_missing:Codec\n")
    result = sqsw("plugins", PYTHONPATH=f"{site}{os.pathsep}{REPO}")
    assert result.returncode == EXIT_PLUGIN
    assert "broken-sqsw 1.0" in result.stdout
    assert "ModuleNotFoundError" in result.stdout
    assert "sqsw.codecs:broken" in result.stderr


def test_bad_app_import_exits_3(tmp_path: Path) -> None:
    result = sqsw("run", "--app", "no_such_module_here:sqs", "emails", cwd=tmp_path)
    assert result.returncode == EXIT_APP, result.stderr
    assert "cannot import app 'no_such_module_here:sqs'" in result.stderr
    assert "No module named 'no_such_module_here'" in result.stderr

    (tmp_path / "broken_app.py").write_text("import os\nraise RuntimeError('boom at import')\n")
    result = sqsw("run", "--app", "broken_app", "emails", cwd=tmp_path)
    assert result.returncode == EXIT_APP
    assert "RuntimeError: boom at import" in result.stderr
    assert "broken_app.py, line 2" in result.stderr

    result = sqsw("run", "emails", cwd=tmp_path)
    assert result.returncode == EXIT_APP
    assert "no app to run" in result.stderr
    assert "SQSW_APP" in result.stderr


def test_app_from_environment_variable_and_attr_checks(tmp_path: Path) -> None:
    (tmp_path / "cli_app.py").write_text(APP)
    result = sqsw("run", "emails", cwd=tmp_path, SQSW_APP="cli_app:emails")
    assert result.returncode == EXIT_APP
    assert "from environment variable SQSW_APP" in result.stderr
    assert "is a JobQueue, not an SQSEnv" in result.stderr


def test_unknown_plugin_exits_4_naming_the_flag(tmp_path: Path) -> None:
    (tmp_path / "cli_app.py").write_text(APP)
    result = sqsw("run", "--app", "cli_app", "--codec", "jsno", "emails", cwd=tmp_path)
    assert result.returncode == EXIT_PLUGIN, result.stderr
    assert "option --codec" in result.stderr
    assert "Did you mean 'json'?" in result.stderr

    result = sqsw("run", "--app", "cli_app", "emails", cwd=tmp_path, SQSW_PROCESSOR="nope")
    assert result.returncode == EXIT_PLUGIN
    assert "environment variable SQSW_PROCESSOR" in result.stderr

    (tmp_path / "sqsw.toml").write_text('app = "cli_app"\nbackoff_policy = "expo"\n')
    result = sqsw("run", "emails", cwd=tmp_path)
    assert result.returncode == EXIT_PLUGIN
    assert f"{tmp_path / 'sqsw.toml'} key 'backoff_policy'" in result.stderr


def test_missing_queue_and_refused_connection_exit_5(
    ls_env: SQSEnv, endpoint: str, tmp_path: Path
) -> None:
    (tmp_path / "cli_app.py").write_text(APP)
    result = sqsw(
        "run",
        "--app",
        "cli_app",
        "--queue-prefix",
        ls_env.queue_prefix,
        "emails",
        cwd=tmp_path,
        endpoint=endpoint,
    )
    assert result.returncode == EXIT_SQS, result.stderr
    assert "does not exist" in result.stderr

    result = sqsw("run", "--app", "cli_app", "emails", cwd=tmp_path, endpoint="http://127.0.0.1:9")
    assert result.returncode == EXIT_SQS, result.stderr
    assert "Could not connect" in result.stderr


def test_queue_commands_enqueue_and_redrive(ls_env: SQSEnv, endpoint: str) -> None:
    prefix = ["--queue-prefix", ls_env.queue_prefix]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        result = sqsw(*args, *prefix, endpoint=endpoint)
        assert result.returncode == EXIT_OK, result.stderr
        return result

    url = run("queue", "create", "orders", "--dead-letter", "orders_dead", "--max-receives", "2")
    assert url.stdout.strip().endswith(f"{ls_env.queue_prefix}orders")
    assert json.loads(run("queue", "list", "--json").stdout) == ["orders", "orders_dead"]

    message_id = run("enqueue", "orders", "ship", "--arg", "n=1", "--arg", "to=ada").stdout
    assert message_id.strip()
    run("enqueue", "orders", "ship", "--json", '{"n": 2, "tags": ["a"]}')
    jobs = ls_env.queue("orders").get_raw_messages(wait_seconds=1, max_messages=10)
    decoded = sorted((m.job_name, ls_env.decode_job(m)[0]["n"]) for m in jobs)
    assert decoded == [("ship", 1), ("ship", 2)]
    assert {tuple(sorted(ls_env.decode_job(m)[0])) for m in jobs} == {("n", "to"), ("n", "tags")}

    # Dead letters: two jobs in the DLQ, one of each name; redrive one name back.
    run("enqueue", "orders_dead", "ship", "--arg", "n=3")
    run("enqueue", "orders_dead", "bill", "--arg", "n=4")
    stats = json.loads(run("queue", "stats", "orders", "--json").stdout)[0]
    assert stats["in_flight"] == 2
    assert stats["dead_letter_queue"] == f"{ls_env.queue_prefix}orders_dead"
    assert stats["redrive_policy"]["maxReceiveCount"] in ("2", 2)
    assert stats["dead_letter_depth"] == 2
    table = run("queue", "stats", "orders", "orders_dead").stdout
    assert "DLQ depth" in table

    dry = run("redrive", "orders_dead", "--filter", "job=bill", "--dry-run").stdout
    assert "1 message(s) would move" in dry
    assert "bill" in dry
    moved = run("redrive", "orders_dead", "--filter", "job=bill").stdout
    assert "1 moved to orders, 0 failed" in moved
    # The pushed-back copy has a 1 s delay.
    back: list[Any] = []
    wait_until(
        lambda: bool(back.extend(ls_env.queue("orders").get_raw_messages(wait_seconds=1)) or back),
        10,
        "the redriven message",
    )
    assert [m.job_name for m in back] == ["bill"]
    assert ls_env.queue("orders").get_raw_messages(wait_seconds=1) == []

    result = sqsw("redrive", "orders_dead", "--filter", "color=red", *prefix, endpoint=endpoint)
    assert result.returncode == EXIT_USAGE
    assert "--filter" in result.stderr

    run("queue", "purge", "orders_dead", "--yes")
    run("queue", "delete", "orders_dead", "--yes")
    assert json.loads(run("queue", "list", "--json").stdout) == ["orders"]


def test_run_help_documents_exit_codes() -> None:
    result = sqsw("run", "--help")
    assert result.returncode == EXIT_OK
    text = " ".join(result.stdout.split())
    for fragment in ("3 the app cannot be imported", "4 plugin or configuration", "5 SQS"):
        assert fragment in text
    assert (Path(sys.executable).parent / "sqsw").exists()


def test_the_plugin_command_api_is_documented() -> None:
    """``sqsw_core.cli.common.__all__``, the API of plugin commands: each name is defined
    there, documented (docstring or ``#:`` comment) and named in docs/plugins.md."""
    source = Path(common.__file__).read_text()
    docs = (Path(__file__).parent.parent / "docs" / "plugins.md").read_text()
    section = docs[docs.index("## Adding a CLI command") :]
    section = section[: section.index("\n## ")]
    for name in common.__all__:
        value = getattr(common, name)
        if callable(value):
            assert (value.__doc__ or "").strip(), f"{name} has no docstring"
        else:
            before = source.split(f"\n{name} = ", 1)[0].rsplit("\n", 1)[-1]
            assert before.startswith("#: "), f"{name} has no #: comment"
        assert re.search(rf"\b{name}\b", section), f"docs/plugins.md does not name {name}"
    public = {
        n
        for n, v in vars(common).items()
        if not n.startswith("_") and getattr(v, "__module__", None) == common.__name__
    }
    assert public <= set(common.__all__), (
        f"public but not in __all__: {public - set(common.__all__)}"
    )
