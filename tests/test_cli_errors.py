"""Every error path of the README's exit-code table, as a user meets it.

``sqsw`` runs as a subprocess (as in tests/test_cli.py); each case checks that
stderr is one ``Error:`` line, without a traceback, naming what to change, and
that the exit code is the one the README documents: 2 bad command line, 3 the
app cannot be imported, 4 plugin or configuration error, 5 SQS unreachable or a
queue that does not exist. Cases that need a server use the LocalStack endpoint.
"""

from __future__ import annotations

import os
import re
import subprocess
import textwrap
from pathlib import Path

import pytest

from sqsw_core import SQSEnv, create_fifo_queue, create_standard_queue
from sqsw_core.cli.common import EXIT_APP, EXIT_OK, EXIT_PLUGIN, EXIT_SQS, EXIT_USAGE
from tests.helpers import cli_environ, one_error_line, run_sqsw
from tests.localstack_server import REGION

REPO = Path(__file__).resolve().parent.parent

#: An app with two jobs on queue ``emails`` and one on ``reports``; the memory
#: session, so ``sqsw run`` works without a server.
APP = textwrap.dedent(
    """
    from sqsw_core import SQSEnv, create_standard_queue

    sqs = SQSEnv(session="memory")
    create_standard_queue(sqs, "emails")
    create_standard_queue(sqs, "reports")
    emails = sqs.queue("emails")
    reports = sqs.queue("reports")


    @emails.processor("send_email")
    def send_email(to, subject="hi"):
        pass


    @emails.processor("send_sms", pass_context=True)
    def send_sms(number, context):
        pass


    @reports.processor("build")
    def build(**options):
        pass
    """
)


def sqsw(
    *args: str, cwd: Path, endpoint: str | None = None, **variables: str
) -> subprocess.CompletedProcess[str]:
    """``sqsw ARGS`` in ``cwd``: no SQSW_* variable but ``variables`` (and the endpoint)."""
    settings = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "SQSW_REGION": REGION}
    if endpoint is not None:
        settings["SQSW_ENDPOINT_URL"] = endpoint
    return run_sqsw(*args, cwd=cwd, env=cli_environ({**settings, **variables}))


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "jobs_app.py").write_text(APP)
    return tmp_path


# -- without a server: the command line, the app, plugins and values --------------------

RUN = ["run", "--app", "jobs_app:sqs", "--wait-seconds", "0"]
ENQUEUE = ["enqueue", "--app", "jobs_app:sqs"]


@pytest.mark.parametrize(
    ("args", "variables", "exit_code", "fragments"),
    [
        # 2: a bad command line (click's errors too: one line, naming the --help)
        (["--bogus"], {}, EXIT_USAGE, ["No such option '--bogus'", "'sqsw --help'"]),
        (["nosuchcommand"], {}, EXIT_USAGE, ["No such command 'nosuchcommand'"]),
        ([*RUN, "--bogus", "emails"], {}, EXIT_USAGE, ["'--bogus'", "'sqsw run --help'"]),
        (["run"], {}, EXIT_USAGE, ["Missing argument 'QUEUES...'"]),
        (["queue", "stats"], {}, EXIT_USAGE, ["Missing argument", "sqsw queue stats --help"]),
        ([*RUN, "--log-level", "LOUD", "emails"], {}, EXIT_USAGE, ["'--log-level': 'LOUD'"]),
        ([*ENQUEUE, "emails", "send_email", "--arg", "to"], {}, EXIT_USAGE, ["key=value"]),
        ([*ENQUEUE, "emails", "send_email", "--json", "[1]"], {}, EXIT_USAGE, ["JSON object"]),
        (
            [*ENQUEUE, "emails", "send_emial", "--arg", "to=a"],
            {},
            EXIT_USAGE,
            ["job 'send_emial'", "send_email, send_sms", "did you mean 'send_email'?"],
        ),
        (
            [*ENQUEUE, "audit", "send_email", "--arg", "to=a"],
            {},
            EXIT_USAGE,
            ["no job on queue 'audit'", "queues with jobs: emails, reports"],
        ),
        (
            [*ENQUEUE, "emails", "send_email", "--arg", "too=a"],
            {},
            EXIT_USAGE,
            ["job 'send_email'", "jobs_app.py, line 11", "'too'", "'to'"],
        ),
        (
            [*ENQUEUE, "emails", "send_sms", "--arg", "number=1", "--arg", "x=2"],
            {},
            EXIT_USAGE,
            ["job 'send_sms'", "'x'"],
        ),
        # 3: the app cannot be imported
        (["run", "emails"], {}, EXIT_APP, ["no app to run", "--app", "SQSW_APP"]),
        (
            ["run", "--app", "no_such_app:sqs", "emails"],
            {},
            EXIT_APP,
            ["No module named 'no_such_app'", "PYTHONPATH"],
        ),
        (
            ["run", "--app", "jobs_app.py", "emails"],
            {},
            EXIT_APP,
            ["give a module name, not a file: --app jobs_app"],
        ),
        (["run", "--app", "jobs_app:nope", "emails"], {}, EXIT_APP, ["no attribute 'nope'"]),
        (["run", "--app", "jobs_app:emails", "emails"], {}, EXIT_APP, ["not an SQSEnv"]),
        (
            ["enqueue", "--app", "no_such_app", "emails", "send_email"],
            {},
            EXIT_APP,
            ["cannot import app 'no_such_app'"],
        ),
        ([*ENQUEUE[:1], "emails", "x"], {"SQSW_APP": "nope_app"}, EXIT_APP, ["SQSW_APP"]),
        # 4: a plugin or configuration error: unknown plugin name, key or option, bad value
        ([*RUN, "--codec", "jsno", "emails"], {}, EXIT_PLUGIN, ["--codec", "'json'"]),
        (
            [*RUN, "--shutdown", "idle", "emails"],
            {},
            EXIT_PLUGIN,
            ["option --shutdown", "write idle=IDLE_SECONDS"],
        ),
        (
            [*RUN, "--shutdown", "max-tasks", "emails"],
            {},
            EXIT_PLUGIN,
            ["write max-tasks=MAX_TASKS"],
        ),
        ([*RUN, "--shutdown", "never=3", "emails"], {}, EXIT_PLUGIN, ["write never,"]),
        ([*RUN, "--shutdown", "idle=x", "emails"], {}, EXIT_PLUGIN, ["number >= 0"]),
        ([*RUN, "--shutdown", "soon", "emails"], {}, EXIT_PLUGIN, ["'soon'", "sqsw.shutdown"]),
        ([*RUN, "emails"], {"SQSW_SHUTDOWN": "idle"}, EXIT_PLUGIN, ["SQSW_SHUTDOWN", "idle="]),
        ([*RUN, "emails"], {"SQSW_CONCURENCY": "2"}, EXIT_PLUGIN, ["SQSW_CONCURRENCY?"]),
        (
            [*RUN, "--session", "aws", "emails"],
            {"SQSW_SESSION__DIRECT_REQUESTS": "maybe"},
            EXIT_PLUGIN,
            ["SQSW_SESSION__DIRECT_REQUESTS", "'direct_requests'", "true or false", "'maybe'"],
        ),
        (
            [*RUN, "--session", "aws", "emails"],
            {"SQSW_SESSION__MAX_POOL_CONNECTIONS": "1.5"},
            EXIT_PLUGIN,
            ["'max_pool_connections'", "must be an integer", "got 1.5"],
        ),
        (
            [*ENQUEUE, "emails", "send_email", "--delay", "-5"],
            {},
            EXIT_PLUGIN,
            ["option --delay", "got -5"],
        ),
        (
            ["queue", "create", "q", "--session", "memory", "--delay", "-5"],
            {},
            EXIT_PLUGIN,
            ["option --delay", "got -5"],
        ),
    ],
)
def test_an_error_is_one_line_with_the_documented_exit_code(
    app_dir: Path,
    args: list[str],
    variables: dict[str, str],
    exit_code: int,
    fragments: list[str],
) -> None:
    line = one_error_line(sqsw(*args, cwd=app_dir, **variables), exit_code)
    for fragment in fragments:
        assert fragment in line


def test_the_location_of_an_app_error_is_the_users_line(tmp_path: Path) -> None:
    """An app failing inside importlib or a library names the app's own file and line."""
    (tmp_path / "lib_app.py").write_text(
        "import importlib\n\nimportlib.import_module('no_such_dependency')\n"
    )
    line = one_error_line(sqsw("run", "--app", "lib_app", "q", cwd=tmp_path), EXIT_APP)
    assert f"({tmp_path / 'lib_app.py'}, line 3)" in line
    assert "importlib" not in line.split("(")[-1]


def test_enqueue_checked_against_the_app_sends_a_job_that_fits(app_dir: Path) -> None:
    ok = sqsw(*ENQUEUE, "emails", "send_email", "--arg", "to=ada", cwd=app_dir)
    assert ok.returncode == EXIT_OK, ok.stderr
    ok = sqsw(*ENQUEUE, "reports", "build", "--json", '{"any": 1}', cwd=app_dir)
    assert ok.returncode == EXIT_OK, ok.stderr


# -- with a server: SQS errors and FIFO flags -----------------------------------------


def test_sqs_errors_exit_5_suggesting_the_command_to_run(
    ls_env: SQSEnv, endpoint: str, tmp_path: Path
) -> None:
    prefix = ["--queue-prefix", ls_env.queue_prefix]
    for args in (
        ["enqueue", "missing", "send", *prefix],
        ["queue", "stats", "missing", *prefix],
        ["queue", "purge", "missing", "--yes", *prefix],
    ):
        line = one_error_line(sqsw(*args, cwd=tmp_path, endpoint=endpoint), EXIT_SQS)
        assert "'missing' does not exist" in line
        assert "Create it with: sqsw queue create missing" in line
        assert "create_standard_queue" not in line
    refused = sqsw("queue", "list", cwd=tmp_path, endpoint="http://127.0.0.1:9")
    assert "Could not connect" in one_error_line(refused, EXIT_SQS)


def test_enqueue_to_fifo_names_the_flags(ls_env: SQSEnv, endpoint: str, tmp_path: Path) -> None:
    create_fifo_queue(ls_env, "jobs.fifo")
    prefix = ["--queue-prefix", ls_env.queue_prefix]
    result = sqsw(
        "enqueue", "jobs.fifo", "ok", "--arg", "n=1", *prefix, cwd=tmp_path, endpoint=endpoint
    )
    line = one_error_line(result, EXIT_USAGE)
    assert "--deduplication-id" in line
    assert "sqsw queue create jobs.fifo --content-based-dedup" in line
    assert "_deduplication_id" not in line
    result = sqsw(
        "enqueue",
        "jobs.fifo",
        "ok",
        "--deduplication-id",
        "1",
        "--delay",
        "5",
        *prefix,
        cwd=tmp_path,
        endpoint=endpoint,
    )
    assert "drop --delay" in one_error_line(result, EXIT_USAGE)
    sent = sqsw(
        "enqueue",
        "jobs.fifo",
        "ok",
        "--deduplication-id",
        "1",
        *prefix,
        cwd=tmp_path,
        endpoint=endpoint,
    )
    assert sent.returncode == EXIT_OK, sent.stderr


def test_queue_stats_fits_80_columns_when_piped(
    ls_env: SQSEnv, endpoint: str, tmp_path: Path
) -> None:
    """LocalStack has no CloudWatch: the long reason is one line below the table."""
    create_standard_queue(ls_env, "a_rather_long_dead_letter_queue_name")
    create_standard_queue(
        ls_env,
        "stats_jobs",
        redrive_policy=ls_env.redrive_policy("a_rather_long_dead_letter_queue_name", 3),
    )
    result = sqsw(
        "queue",
        "stats",
        "stats_jobs",
        "a_rather_long_dead_letter_queue_name",
        "--queue-prefix",
        ls_env.queue_prefix,
        cwd=tmp_path,
        endpoint=endpoint,
    )
    assert result.returncode == EXIT_OK, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines if line[:1] in "┏┃┡│└") <= 80, result.stdout
    notes = [line for line in lines if line.startswith("oldest age n/a")]
    if notes:  # no CloudWatch there: one line for both queues, not a cell
        assert len(notes) == 1
        assert "CloudWatch" in notes[0]
        assert not any("CloudWatch" in line for line in lines if line[:1] in "┃│")


def test_run_shows_the_region_boto3_resolved(endpoint: str, tmp_path: Path) -> None:
    """No region given to sqsw: the startup line shows AWS_DEFAULT_REGION's, not 'default'."""
    prefix = f"region_{os.getpid()}_"
    (tmp_path / "aws_app.py").write_text(
        "from sqsw_core import SQSEnv, create_standard_queue\n"
        f"sqs = SQSEnv(session='aws', queue_prefix={prefix!r})\n"
        "create_standard_queue(sqs, 'emails')\n"
    )
    variables = {"AWS_DEFAULT_REGION": "eu-north-1", "SQSW_REGION": ""}
    run = ["run", "--app", "aws_app", "--shutdown", "idle=0", "--wait-seconds", "0", "emails"]
    result = sqsw(*run, cwd=tmp_path, endpoint=endpoint, **variables)
    assert result.returncode == EXIT_OK, result.stderr
    assert re.search(r"region=eu-north-1\b", result.stderr), result.stderr
    assert "region=default" not in result.stderr
    deleted = sqsw(
        "queue",
        "delete",
        "emails",
        "--yes",
        "--queue-prefix",
        prefix,
        cwd=tmp_path,
        endpoint=endpoint,
        **variables,
    )
    assert deleted.returncode == EXIT_OK, deleted.stderr
