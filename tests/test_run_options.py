"""``sqsw run``'s engine options reach the engine, from a flag, a variable or a config key.

``--prefetch``, ``--pollers``, ``--grace-period``, ``--max-job-duration``,
``--weights`` (with ``--priority weighted``) and ``--log-format``, their
``SQSW_*`` variables and ``sqsw.toml`` keys. ``sqsw run`` runs as a subprocess
on the in-memory SQS (the app enqueues its jobs when imported); the checks are
on what the engine does and logs: its ``Processing`` line (prefetch, pollers),
how long a warm stop waits for a running job (grace period), the heartbeat
giving up on a long job (maximum job duration), and the line saying how
``process_queues`` shares the job threads (weights). A bad value is one
``Error:`` line naming the flag, variable or key, exit 4.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sqsw_core.cli.common import EXIT_OK, EXIT_PLUGIN, EXIT_USAGE
from sqsw_core.cli.run import run as run_command
from sqsw_core.config import ENV_KEYS, KEYS
from tests.helpers import cli_environ, one_error_line, run_sqsw

REPO = Path(__file__).resolve().parent.parent

#: Two memory queues; APP_JOBS (``slow=SECONDS`` entries) are enqueued on ``emails`` at
#: import; a job appends ``started`` to APP_MARK. ``emails`` has a 2 s visibility timeout,
#: so the heartbeat extends a running job's message at once.
APP = textwrap.dedent(
    """
    import os
    import time

    from sqsw_core import SQSEnv, create_standard_queue

    sqs = SQSEnv(session="memory")
    create_standard_queue(sqs, "emails", visibility_timeout=2)
    create_standard_queue(sqs, "payments")


    @sqs.processor("emails", "slow")
    def slow(seconds):
        with open(os.environ["APP_MARK"], "a") as f:
            f.write("started\\n")
        time.sleep(seconds)


    for spec in filter(None, os.environ.get("APP_JOBS", "").split(",")):
        sqs.queue("emails").add_job("slow", seconds=float(spec.partition("=")[2]))
    """
)


def sqsw_run(
    tmp_path: Path,
    *options: str,
    queues: tuple[str, ...] = ("emails",),
    variables: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``sqsw run`` of the memory app; stops once idle unless ``options`` say otherwise."""
    args = ["run", *_app_args(tmp_path), *options, *queues]
    return run_sqsw(*args, cwd=tmp_path, env=_environ(tmp_path, variables))


def _app_args(tmp_path: Path) -> list[str]:
    (tmp_path / "run_app.py").write_text(APP)
    return ["--app", "run_app:sqs", "--wait-seconds", "0"]


def _environ(tmp_path: Path, variables: dict[str, str] | None) -> dict[str, str]:
    return cli_environ({"APP_MARK": str(tmp_path / "mark"), **(variables or {})})


def idle_run(tmp_path: Path, *options: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return sqsw_run(tmp_path, "--shutdown", "idle=0", *options, **kwargs)  # type: ignore[arg-type]


# -- values reach the engine ---------------------------------------------------------


@pytest.mark.parametrize("where", ["flag", "variable", "file"])
def test_prefetch_and_pollers_reach_the_engine(tmp_path: Path, where: str) -> None:
    options: list[str] = []
    variables: dict[str, str] = {}
    if where == "flag":
        options = ["--prefetch", "3", "--pollers", "2"]
    elif where == "variable":
        variables = {"SQSW_PREFETCH": "3", "SQSW_POLLERS": "2"}
    else:
        (tmp_path / "sqsw.toml").write_text("prefetch = 3\npollers = 2\n")
    result = idle_run(tmp_path, *options, variables=variables)
    assert result.returncode == EXIT_OK, result.stderr
    assert "Processing emails: concurrency=16 prefetch=3 pollers=2 " in result.stderr


def test_a_flag_wins_over_a_variable_which_wins_over_the_file(tmp_path: Path) -> None:
    (tmp_path / "sqsw.toml").write_text("prefetch = 1\npollers = 1\n")
    result = idle_run(tmp_path, "--prefetch", "5", variables={"SQSW_POLLERS": "3"})
    assert result.returncode == EXIT_OK, result.stderr
    assert "prefetch=5 pollers=3 " in result.stderr


def _stop_while_a_job_runs(
    tmp_path: Path, *options: str, variables: dict[str, str] | None = None
) -> float:
    """Seconds from SIGTERM to exit of a worker whose one job sleeps 20 s."""
    mark = tmp_path / "mark"
    process = subprocess.Popen(
        [sys.executable, "-m", "sqsw_core.cli", "run", *_app_args(tmp_path), *options, "emails"],
        cwd=tmp_path,
        env=_environ(tmp_path, {"APP_JOBS": "slow=20", **(variables or {})}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (mark.exists() and "started" in mark.read_text()):
            assert time.monotonic() < deadline and process.poll() is None, "the job never started"
            time.sleep(0.05)
        stopped = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        return time.monotonic() - stopped
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stderr is not None
        process.stderr.close()


@pytest.mark.parametrize("where", ["flag", "variable"])
def test_grace_period_bounds_how_long_a_warm_stop_waits(tmp_path: Path, where: str) -> None:
    if where == "flag":
        took = _stop_while_a_job_runs(tmp_path, "--grace-period", "0.5")
    else:
        took = _stop_while_a_job_runs(tmp_path, variables={"SQSW_GRACE_PERIOD": "0.5"})
    # The default grace period is 30 s and the job sleeps 20 s: only 0.5 s stops this soon.
    assert took < 8, f"a warm stop with a 0.5 s grace period took {took:.1f} s"


@pytest.mark.parametrize("where", ["flag", "variable"])
def test_max_job_duration_stops_extending_a_long_job(tmp_path: Path, where: str) -> None:
    options = ["--shutdown", "idle=0", "--grace-period", "10"]
    variables = {"APP_JOBS": "slow=4"}
    if where == "flag":
        options += ["--max-job-duration", "1"]
    else:
        variables["SQSW_MAX_JOB_DURATION"] = "1"
    result = sqsw_run(tmp_path, *options, variables=variables)
    assert result.returncode == EXIT_OK, result.stderr
    assert "the maximum job duration; no longer extending its visibility" in result.stderr


@pytest.mark.parametrize(
    ("options", "variables", "config"),
    [
        (["--weights", "emails=3,payments=0.5"], {}, ""),
        (["--weights", "emails=3", "--weights", "payments=0.5"], {}, ""),
        ([], {"SQSW_WEIGHTS": "emails=3,payments=0.5"}, ""),
        ([], {}, "[weights]\nemails = 3\npayments = 0.5\n"),
    ],
)
def test_weights_reach_process_queues(
    tmp_path: Path, options: list[str], variables: dict[str, str], config: str
) -> None:
    if config:
        (tmp_path / "sqsw.toml").write_text('priority = "weighted"\n' + config)
    else:
        options = ["--priority", "weighted", *options]
    result = idle_run(tmp_path, *options, queues=("emails", "payments"), variables=variables)
    assert result.returncode == EXIT_OK, result.stderr
    assert (
        "Sharing 16 job threads between emails, payments: priority weighted "
        "(emails=3, payments=0.5)" in result.stderr
    )
    assert "Stopped emails" in result.stderr and "Stopped payments" in result.stderr


def test_queues_left_out_of_the_weights_weigh_1(tmp_path: Path) -> None:
    result = idle_run(
        tmp_path, "--priority", "weighted", "--weights", "payments=2", queues=("emails", "payments")
    )
    assert result.returncode == EXIT_OK, result.stderr
    assert "priority weighted (emails=1, payments=2)" in result.stderr


# -- bad values: one line naming the source, exit 4 ----------------------------------


@pytest.mark.parametrize(
    ("options", "variables", "names"),
    [
        (["--prefetch", "-1"], {}, ["option --prefetch", "integer >= 0", "got -1"]),
        (["--pollers", "0"], {}, ["option --pollers", "integer >= 1", "got 0"]),
        (["--grace-period", "-1"], {}, ["option --grace-period", ">= 0", "got -1"]),
        (["--grace-period", "nan"], {}, ["option --grace-period", "got nan"]),
        (["--max-job-duration", "0"], {}, ["option --max-job-duration", "> 0", "got 0"]),
        ([], {"SQSW_MAX_JOB_DURATION": "inf"}, ["variable SQSW_MAX_JOB_DURATION", "got inf"]),
        ([], {"SQSW_GRACE_PERIOD": "soon"}, ["variable SQSW_GRACE_PERIOD", "got 'soon'"]),
        ([], {"SQSW_LOG_FORMAT": "xml"}, ["variable SQSW_LOG_FORMAT", "'text' or 'json'"]),
        (
            ["--priority", "weighted", "--weights", "emails=0"],
            {},
            ["option --weights", "weight of queue 'emails' must be a number > 0", "got 0"],
        ),
        (
            ["--priority", "weighted", "--weights", "emails"],
            {},
            ["option --weights", "NAME=WEIGHT pairs", "got 'emails'"],
        ),
        (
            ["--priority", "weighted", "--weights", "emails=1,emails=2"],
            {},
            ["option --weights", "'emails' twice"],
        ),
        (
            ["--priority", "weighted", "--weights", "email=1"],
            {},
            ["option --weights", "'email'", "did you mean 'emails'?"],
        ),
        (
            ["--priority", "weighted"],
            {"SQSW_WEIGHTS": "emails=x"},
            ["environment variable SQSW_WEIGHTS", "got 'x'"],
        ),
        (
            ["--weights", "emails=2"],
            {},
            ["option --weights", "only with priority 'weighted'", "not 'strict'"],
        ),
    ],
)
def test_run_refuses_a_bad_value_naming_its_source(
    tmp_path: Path, options: list[str], variables: dict[str, str], names: list[str]
) -> None:
    line = one_error_line(idle_run(tmp_path, *options, variables=variables), EXIT_PLUGIN)
    for name in names:
        assert name in line


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("max_job_duration = 0\n", ["key 'max_job_duration'", "> 0", "got 0"]),
        ("pollers = 1.5\n", ["key 'pollers'", "integer >= 1", "got 1.5"]),
        ('priority = "weighted"\n[weights]\nemails = -1\n', ["key 'weights'", "got -1"]),
        ('weights = "emails=2"\n', ["key 'weights'", "only with priority 'weighted'"]),
        ('log_format = "yaml"\n', ["key 'log_format'", "'text' or 'json'", "got 'yaml'"]),
    ],
)
def test_a_bad_value_in_sqsw_toml_names_the_file_and_key(
    tmp_path: Path, text: str, names: list[str]
) -> None:
    (tmp_path / "sqsw.toml").write_text(text)
    line = one_error_line(idle_run(tmp_path), EXIT_PLUGIN)
    assert str(tmp_path / "sqsw.toml") in line
    for name in names:
        assert name in line


def test_an_unknown_log_format_flag_is_a_bad_command_line(tmp_path: Path) -> None:
    result = idle_run(tmp_path, "--log-format", "xml")
    assert result.returncode == EXIT_USAGE, result.stderr
    assert "Traceback" not in result.stderr
    assert "--log-format" in result.stderr


# -- the lists agree -------------------------------------------------------------------


def test_every_run_setting_has_a_flag_and_every_key_is_in_the_readme() -> None:
    """A key of ``config.KEYS`` that is not an ``SQSEnv`` option (``config.ENV_KEYS``) nor
    ``app`` configures ``sqsw run``, so it has a flag; every key is in the README."""
    flags = {opt for param in run_command.params for opt in getattr(param, "opts", [])}
    run_keys = [key for key in KEYS if key not in ENV_KEYS and key != "app"]
    missing = [key for key in run_keys if f"--{key.replace('_', '-')}" not in flags]
    assert not missing, f"settings with no sqsw run flag: {missing}"
    readme = (REPO / "README.md").read_text()
    keys_paragraph = readme[readme.index("Keys: `app`") :][:1200]
    absent = [key for key in KEYS if not re.search(rf"`{key}`", keys_paragraph)]
    assert not absent, f"README's Keys paragraph does not list {absent}"
