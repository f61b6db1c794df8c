"""A bad option is refused where it comes in, with one line naming where it came from.

``sqsw`` runs as a subprocess, as a user runs it: each case checks the exit
code the README gives, that stderr is one ``Error:`` line (no traceback) and
that the line names the flag, variable or file key. The Python API raises
``ConfigurationError`` naming the option, the value and the allowed range,
before anything is received.
"""

from __future__ import annotations

import math
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from sqsw_core import ConfigurationError, SQSEnv, create_fifo_queue, create_standard_queue
from sqsw_core.cli.common import EXIT_APP, EXIT_OK, EXIT_PLUGIN, EXIT_USAGE
from sqsw_core.config import load_settings
from sqsw_core.shutdown_policies import IdleShutdown, MaxTasksShutdown
from sqsw_memory import MemorySession
from tests.helpers import cli_environ, one_error_line, run_sqsw
from tests.localstack_server import REGION

REPO = Path(__file__).resolve().parent.parent

#: An app on the in-memory SQS that creates its own queue, so ``sqsw run`` works
#: without a server; with ``--shutdown idle=0 --wait-seconds 0`` it returns at once.
MEMORY_APP = textwrap.dedent(
    """
    from sqsw_core import SQSEnv, create_standard_queue

    sqs = SQSEnv(session="memory")
    create_standard_queue(sqs, "emails")


    def make_app():
        raise RuntimeError("database is down")
    """
)


def sqsw(
    *args: str, cwd: Path, variables: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``sqsw ARGS`` in ``cwd`` with no SQSW_* variable but ``variables``."""
    return run_sqsw(*args, cwd=cwd, env=cli_environ(variables))


def run_app(
    tmp_path: Path, *options: str, variables: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``sqsw run`` of the memory app with ``options``; stops as soon as the queue is idle
    (unless ``options`` or ``sqsw.toml`` say otherwise)."""
    (tmp_path / "memory_app.py").write_text(MEMORY_APP)
    config = tmp_path / "sqsw.toml"
    args = ["run", "--app", "memory_app:sqs", "--wait-seconds", "0"]
    if "--shutdown" not in options and not (config.exists() and "shutdown" in config.read_text()):
        args += ["--shutdown", "idle=0"]
    return sqsw(*args, *options, "emails", cwd=tmp_path, variables=variables)


# -- sqsw run: flags, variables and config file keys ---------------------------------


@pytest.mark.parametrize(
    ("options", "variables", "names"),
    [
        (["--concurrency", "0"], {}, ["option --concurrency", "integer >= 1", "got 0"]),
        (["--wait-seconds", "nan"], {}, ["option --wait-seconds", "from 0 to 20", "got nan"]),
        (["--wait-seconds", "25"], {}, ["option --wait-seconds", "from 0 to 20", "got 25"]),
        (["--wait-seconds", "-5"], {}, ["option --wait-seconds", "from 0 to 20", "got -5"]),
        (["--wait-seconds", "inf"], {}, ["option --wait-seconds", "got inf"]),
        (["--stats-interval", "0"], {}, ["option --stats-interval", "> 0", "got 0"]),
        (["--shutdown", "idle=NaN"], {}, ["option --shutdown", "'idle=NaN'", ">= 0"]),
        (["--shutdown", "idle=-1"], {}, ["option --shutdown", "'idle=-1'", ">= 0"]),
        ([], {"SQSW_POLLERS": "-1"}, ["environment variable SQSW_POLLERS", "got -1"]),
        ([], {"SQSW_WORKERS": "0"}, ["environment variable SQSW_WORKERS", "got 0"]),
        ([], {"SQSW_PREFETCH": "-1"}, ["environment variable SQSW_PREFETCH", ">= 0"]),
        ([], {"SQSW_CONCURRENCY": "2.5"}, ["environment variable SQSW_CONCURRENCY", "integer"]),
        ([], {"SQSW_GRACE_PERIOD": "inf"}, ["environment variable SQSW_GRACE_PERIOD", "got inf"]),
        ([], {"SQSW_PRIORITY": "fast"}, ["environment variable SQSW_PRIORITY", "'weighted'"]),
        (
            [],
            {"SQSW_CONCURENCY": "3"},
            ["environment variable SQSW_CONCURENCY", "did you mean SQSW_CONCURRENCY?"],
        ),
        (
            [],
            {"SQSW_SESION__REGION_NAME": "eu-west-1"},
            ["SQSW_SESION__REGION_NAME", "did you mean SQSW_SESSION__REGION_NAME?"],
        ),
    ],
)
def test_run_refuses_a_bad_value_naming_its_source(
    tmp_path: Path, options: list[str], variables: dict[str, str], names: list[str]
) -> None:
    line = one_error_line(run_app(tmp_path, *options, variables=variables), EXIT_PLUGIN)
    for name in names:
        assert name in line


def test_workers_from_a_variable_is_not_blamed_on_the_flag(tmp_path: Path) -> None:
    line = one_error_line(run_app(tmp_path, variables={"SQSW_WORKERS": "0"}), EXIT_PLUGIN)
    assert "--workers" not in line
    assert "workers must be an integer >= 1" in line


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("max_job_duration = -1\n", ["key 'max_job_duration'", "> 0", "got -1"]),
        ("wait_seconds = 25\n", ["key 'wait_seconds'", "from 0 to 20", "got 25"]),
        ("concurrency = 2.5\n", ["key 'concurrency'", "integer >= 1", "got 2.5"]),
        ("workers = true\n", ["key 'workers'", "integer >= 1", "got True"]),
        ('shutdown = "idle=-3"\n', ["key 'shutdown'", "'idle=-3'"]),
    ],
)
def test_a_bad_value_in_sqsw_toml_names_the_file_and_key(
    tmp_path: Path, text: str, names: list[str]
) -> None:
    (tmp_path / "sqsw.toml").write_text(text)
    line = one_error_line(run_app(tmp_path), EXIT_PLUGIN)
    assert str(tmp_path / "sqsw.toml") in line
    for name in names:
        assert name in line


def test_values_at_the_edges_of_the_ranges_run(tmp_path: Path) -> None:
    (tmp_path / "sqsw.toml").write_text("grace_period = 0\nmax_job_duration = 0.5\n")
    result = run_app(
        tmp_path,
        "--concurrency",
        "1",
        variables={"SQSW_PREFETCH": "0", "SQSW_POLLERS": "1", "SQSW_WORKERS": "1"},
    )
    assert result.returncode == EXIT_OK, result.stderr
    assert "Stopped emails" in result.stderr


def test_variables_of_sqsw_its_plugins_and_its_test_suite_are_accepted(tmp_path: Path) -> None:
    (tmp_path / "empty.toml").write_text("")
    variables = {
        "SQSW_CONFIG": str(tmp_path / "empty.toml"),
        "SQSW_ENDPOINT_URL": "http://127.0.0.1:9",  # AWSSession's; the app uses memory
        "SQSW_REGION": REGION,
        "SQSW_PROFILE": "default",
        "SQSW_SIGNING_KEYS": "k1:0123456789abcdef0123",  # owned by sqsw-signing
        "SQSW_TEST_ENDPOINT": "http://127.0.0.1:9",  # the test suite's own
        "SQSW_LINT": "0",
        "SQSW_CONCURRENCY": "2",
    }
    result = run_app(tmp_path, variables=variables)
    assert result.returncode == EXIT_OK, result.stderr


def test_an_unknown_variable_without_a_close_match_says_what_sqsw_reads(tmp_path: Path) -> None:
    line = one_error_line(run_app(tmp_path, variables={"SQSW_XYZZY": "1"}), EXIT_PLUGIN)
    assert "environment variable SQSW_XYZZY is not one sqsw reads" in line
    assert "SQSW_<KEY>" in line
    assert "SQSW_SIGNING_*" in line  # a plugin's variables


def test_missing_config_file_from_the_variable_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    line = one_error_line(run_app(tmp_path, variables={"SQSW_CONFIG": str(missing)}), EXIT_PLUGIN)
    assert f"config file {missing} (from SQSW_CONFIG) does not exist" in line


def test_an_unknown_log_level_is_a_bad_command_line(tmp_path: Path) -> None:
    result = run_app(tmp_path, "--log-level", "LOUD")
    assert result.returncode == EXIT_USAGE, result.stderr
    assert "Traceback" not in result.stderr
    assert "Invalid value for '--log-level': 'LOUD'" in result.stderr.splitlines()[-1]


# -- sqsw run: the app ----------------------------------------------------------------


def test_an_app_factory_that_raises_exits_3_naming_app_and_exception(tmp_path: Path) -> None:
    result = run_app(tmp_path, "--app", "memory_app:make_app")
    line = one_error_line(result, EXIT_APP)
    assert "app 'memory_app:make_app' (from option --app)" in line
    assert "make_app() raised RuntimeError: database is down" in line
    assert "memory_app.py, line 9" in line


def test_debug_log_level_shows_the_traceback_of_a_failing_app(tmp_path: Path) -> None:
    result = run_app(tmp_path, "--app", "memory_app:make_app", "--log-level", "DEBUG")
    assert result.returncode == EXIT_APP
    assert "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: app 'memory_app:make_app'")


def test_an_app_with_a_syntax_error_names_its_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "broken_syntax.py").write_text("import os\n\ndef job(:\n    pass\n")
    result = sqsw("run", "--app", "broken_syntax:sqs", "emails", cwd=tmp_path)
    line = one_error_line(result, EXIT_APP)
    assert "cannot import app 'broken_syntax:sqs'" in line
    assert f"SyntaxError: invalid syntax ({tmp_path / 'broken_syntax.py'}, line 3)" in line
    assert "importlib" not in line


def test_an_app_attribute_that_does_not_exist_exits_3(tmp_path: Path) -> None:
    line = one_error_line(run_app(tmp_path, "--app", "memory_app:sqs_env"), EXIT_APP)
    assert "module 'memory_app' has no attribute 'sqs_env'" in line


# -- the other commands --------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (
            ["queue", "create", "jobs", "--dead-letter", "dead", "--max-receives", "0"],
            ["option --max-receives", "from 1 to 1000", "got 0"],
        ),
        (
            ["queue", "create", "jobs", "--visibility-timeout", "-5"],
            ["option --visibility-timeout", "from 0 to 43200", "got -5"],
        ),
        (["queue", "create", "jobs", "--delay", "901"], ["option --delay", "from 0 to 900"]),
        (
            ["queue", "create", "jobs", "--retention", "10"],
            ["option --retention", "from 60 to 1209600"],
        ),
        (["enqueue", "jobs", "send", "--delay", "-1"], ["option --delay", "got -1"]),
        (["redrive", "dead", "--to", "jobs", "--rate", "nan"], ["option --rate", "got nan"]),
        (["redrive", "dead", "--to", "jobs", "--rate", "0"], ["option --rate", "> 0"]),
        (
            ["redrive", "dead", "--to", "jobs", "--filter", "min-age=-1"],
            ["option --filter", "'min-age=-1'", ">= 0"],
        ),
    ],
)
def test_other_commands_refuse_values_outside_the_sqs_limits(
    tmp_path: Path, args: list[str], names: list[str]
) -> None:
    line = one_error_line(sqsw(*args, "--session", "memory", cwd=tmp_path), EXIT_PLUGIN)
    for name in names:
        assert name in line


def test_enqueue_to_fifo_without_deduplication_id_is_one_line(
    ls_env: SQSEnv, endpoint: str, tmp_path: Path
) -> None:
    create_fifo_queue(ls_env, "orders.fifo")
    variables = {
        "SQSW_ENDPOINT_URL": endpoint,
        "SQSW_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "SQSW_QUEUE_PREFIX": ls_env.queue_prefix,
    }
    result = sqsw("enqueue", "orders.fifo", "ship", cwd=tmp_path, variables=variables)
    line = one_error_line(result, EXIT_USAGE)
    assert "cannot send 'ship' to queue 'orders.fifo'" in line
    assert "deduplication" in line


# -- configuration in Python -----------------------------------------------------------


def test_load_settings_reports_variables_and_ranges() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings(environ={"SQSW_CONCURENCY": "3"}, use_file=False)
    assert "did you mean SQSW_CONCURRENCY?" in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        load_settings(environ={"SQSW_MAX_DELAY_HOP": "1000"}, use_file=False)
    assert str(info.value) == (
        "environment variable SQSW_MAX_DELAY_HOP: max_delay_hop must be an integer from 1 "
        "to 900 (the longest DelaySeconds SQS allows), got 1000"
    )
    settings = load_settings(environ={"SQSW_WAIT_SECONDS": "20", "SQSW_APP": ""}, use_file=False)
    assert settings.get("wait_seconds") == 20
    assert settings.get("app") is None  # set but empty: as if unset


def test_from_config_refuses_an_unknown_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="did you mean SQSW_QUEUE_PREFIX"):
        SQSEnv.from_config(cwd=tmp_path, environ={"SQSW_QUEUE_PERFIX": "x_"})


# -- the Python API: process_queue / process_queues ------------------------------------


@pytest.fixture
def emails() -> Any:
    """A memory queue holding one job."""
    env = SQSEnv(MemorySession())
    create_standard_queue(env, "emails")
    queue = env.queue("emails")

    @queue.processor("send")
    def send() -> None:
        pass

    send.delay()
    return queue


def waiting_and_in_flight(queue: Any) -> tuple[int, int]:
    attrs = queue.env.sqs_client.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["All"])[
        "Attributes"
    ]
    return (
        int(attrs["ApproximateNumberOfMessages"]),
        int(attrs["ApproximateNumberOfMessagesNotVisible"]),
    )


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"concurrency": 0}, "concurrency must be an integer >= 1, got 0"),
        ({"concurrency": True}, "concurrency must be an integer >= 1, got True"),
        ({"concurrency": 2.0}, "concurrency must be an integer >= 1, got 2.0"),
        ({"pollers": -1}, "pollers must be an integer >= 1 (None or unset: automatic), got -1"),
        ({"pollers": 0}, "pollers must be an integer >= 1"),
        ({"prefetch": -1}, "prefetch must be an integer >= 0"),
        ({"max_job_duration": -1}, "max_job_duration must be a number > 0, got -1"),
        ({"max_job_duration": math.inf}, "max_job_duration must be a number > 0, got inf"),
        ({"grace_period": math.nan}, "grace_period must be a number >= 0, got nan"),
        ({"stats_interval": 0}, "stats_interval must be a number > 0, got 0"),
        ({"wait_seconds": 25}, "wait_seconds must be a number from 0 to 20"),
        ({"wait_seconds": -5}, "wait_seconds must be a number from 0 to 20"),
        ({"wait_seconds": math.nan}, "wait_seconds must be a number from 0 to 20"),
    ],
)
def test_process_queue_refuses_bad_options_before_receiving(
    emails: Any, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        emails.process_queue(MaxTasksShutdown(1), **options)
    assert message in str(info.value)
    assert waiting_and_in_flight(emails) == (1, 0)  # nothing was received


@pytest.mark.timeout(20)
def test_process_queue_refuses_zero_workers(emails: Any) -> None:
    with pytest.raises(ConfigurationError, match="workers must be an integer >= 1, got 0"):
        emails.process_queue(MaxTasksShutdown(1), workers=0)
    assert waiting_and_in_flight(emails) == (1, 0)


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"concurrency": 0}, "concurrency must be an integer >= 1, got 0"),
        ({"priority": "fast"}, "priority must be 'strict' or 'weighted', got 'fast'"),
        ({"priority": "weighted", "weights": {"emials": 2}}, "did you mean 'emails'?"),
        ({"priority": "weighted", "weights": {"emails": 0}}, "must be a number > 0, got 0"),
        ({"pollers": -1}, "pollers must be an integer >= 1"),
        ({"wait_seconds": 25}, "wait_seconds must be a number from 0 to 20"),
    ],
)
def test_process_queues_refuses_bad_options_before_receiving(
    emails: Any, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        emails.env.process_queues(["emails"], lambda: IdleShutdown(0), **options)
    assert message in str(info.value)
    assert waiting_and_in_flight(emails) == (1, 0)
