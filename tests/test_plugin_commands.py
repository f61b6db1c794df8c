"""Commands that plugins add to ``sqsw`` (entry-point group ``sqsw.commands``).

Each test runs the real CLI in a subprocess; plugins are made present or absent
through real package metadata (a ``.dist-info`` on the path, or a copy of the
venv's site-packages without sqsw-deadletter), nothing is mocked.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import click

from sqsw_core.cli.common import EXIT_APP, EXIT_OK, EXIT_PLUGIN, EXIT_SQS, EXIT_USAGE
from tests.helpers import cli_environ, run_sqsw

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent

HELLO = textwrap.dedent(
    """
    import click

    from sqsw_core.cli.common import EXIT_SQS, CliError, bounded, console, settings_for
    from sqsw_core.exceptions import ConfigurationError


    @click.command("hello")
    @click.argument("name")
    @click.option("--times", type=int, default=1, callback=bounded(1, 3, reason="enough"))
    @click.option("--fail", type=click.Choice(["config", "sqs"]), default=None)
    @click.pass_context
    def hello(ctx, name, times, fail):
        \"\"\"Greet NAME (a third-party command).\"\"\"
        if fail == "config":
            raise ConfigurationError("hello: bad configuration")
        if fail == "sqs":
            raise CliError("hello: no SQS today", EXIT_SQS)
        prefix = settings_for(ctx).env_options().get("queue_prefix")
        for _ in range(times):
            console().print(f"hello {name} prefix={prefix}")


    NOT_A_COMMAND = "just a string"
    """
)


def _dist(site_dir: Path, name: str, commands: str) -> None:
    dist = site_dir / f"{name.replace('-', '_')}-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[sqsw.commands]\n{commands}")
    (dist / "RECORD").write_text("")


def _sqsw(
    *args: str, pythonpath: Path | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    paths = (pythonpath,) if pythonpath is not None else ()
    return run_sqsw(*args, cwd=REPO, env=cli_environ(extra, *paths))


def test_third_party_command_runs_with_the_cli_helpers(tmp_path: Path) -> None:
    site_dir = tmp_path / "site"
    (site_dir / "hello_sqsw").mkdir(parents=True)
    (site_dir / "hello_sqsw" / "__init__.py").write_text(HELLO)
    _dist(
        site_dir,
        "hello-sqsw",
        "hello = hello_sqsw:hello\n"
        "run = hello_sqsw:hello\n"  # the core's own command wins
        "broken = hello_sqsw_missing:command\n"
        "notcmd = hello_sqsw:NOT_A_COMMAND\n"
        "twice = hello_sqsw:hello\n",
    )
    _dist(site_dir, "other-sqsw", "twice = hello_sqsw:hello\n")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return _sqsw(*args, pythonpath=site_dir, SQSW_QUEUE_PREFIX="t_")

    listing = run("--help")
    assert listing.returncode == EXIT_OK, listing.stderr
    for name in ("hello", "redrive", "broken", "run"):
        assert f"  {name} " in listing.stdout
    assert "Greet NAME" in listing.stdout

    result = run("hello", "ada", "--times", "2")
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout.splitlines() == ["hello ada prefix=t_"] * 2

    # The exit codes of every sqsw command: bounded() flags, translated errors, CliError.
    result = run("hello", "ada", "--times", "9")
    assert result.returncode == EXIT_PLUGIN
    assert "option --times: must be an integer from 1 to 3 (enough), got 9" in result.stderr
    result = run("hello", "ada", "--fail", "config")
    assert (result.returncode, result.stderr) == (EXIT_PLUGIN, "Error: hello: bad configuration\n")
    assert run("hello", "ada", "--fail", "sqs").returncode == EXIT_SQS
    assert run("hello").returncode == EXIT_USAGE

    assert "Run workers" in run("run", "--help").stdout

    result = run("broken", "--any", "thing")
    assert result.returncode == EXIT_PLUGIN
    assert "the sqsw command 'broken' (hello-sqsw 1.0" in result.stderr
    assert "ModuleNotFoundError" in result.stderr
    result = run("notcmd")
    assert result.returncode == EXIT_PLUGIN
    assert "is a str, not a click command" in result.stderr
    result = run("twice")
    assert result.returncode == EXIT_PLUGIN
    assert "hello-sqsw 1.0, other-sqsw 1.0" in result.stderr

    result = run("plugins", "--json")
    assert result.returncode == EXIT_PLUGIN  # broken fails to import
    rows = {(row["group"], row["name"], row["provider"]): row for row in json.loads(result.stdout)}
    assert rows[("sqsw.commands", "hello", "hello-sqsw 1.0")]["status"] == "ok"
    assert rows[("sqsw.commands", "redrive", "sqsw-deadletter 0.1.0")]["status"] == "ok"
    assert rows[("sqsw.commands", "broken", "hello-sqsw 1.0")]["status"].startswith("FAILED")
    # A name two distributions register: one row each, with its own provider.
    assert {
        ("sqsw.commands", "twice", "hello-sqsw 1.0"),
        ("sqsw.commands", "twice", "other-sqsw 1.0"),
    } <= set(rows)
    assert "sqsw.commands:broken" in result.stderr


def _site_without_deadletter(tmp_path: Path) -> Path:
    """The venv's site-packages as symlinks, minus sqsw-deadletter's code and metadata
    (and sqsw-dashboard's, which requires sqsw-deadletter)."""
    source = Path(click.__file__).resolve().parent.parent  # the venv's site-packages
    hidden = tmp_path / "site-packages"
    hidden.mkdir()
    for entry in source.iterdir():
        if "sqsw_deadletter" not in entry.name and "sqsw_dashboard" not in entry.name:
            (hidden / entry.name).symlink_to(entry)
    return hidden


def test_redrive_without_sqsw_deadletter_says_what_to_install(tmp_path: Path) -> None:
    hidden = _site_without_deadletter(tmp_path)
    launcher = (
        "import site, sys; site.addsitedir(sys.argv.pop(1)); from sqsw_core.cli import main; main()"
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SQSW_", "PYTHON"))}
        return subprocess.run(
            [sys.executable, "-S", "-c", launcher, str(hidden), *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    check = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            "import site, sys; site.addsitedir(sys.argv[1]); "
            "import sqsw_core, sqsw_json; import sqsw_deadletter",
            str(hidden),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert "No module named 'sqsw_deadletter'" in check.stderr, check.stderr

    for args in (
        ["redrive", "orders_dead"],
        ["redrive", "orders_dead", "--to", "orders", "--filter", "job=bill", "--rate", "5"],
        ["redrive"],
        ["redrive", "--help"],
        ["redrive", "--queue-prefix", "x_"],
    ):
        result = run(*args)
        assert result.returncode == EXIT_PLUGIN, (args, result.stderr)
        assert result.stderr == (
            "Error: sqsw redrive needs the sqsw-deadletter plugin: pip install sqsw-deadletter\n"
        )
    listing = run("--help")
    assert listing.returncode == EXIT_OK, listing.stderr
    # Columns are as wide as the longest command name (other plugins' commands too).
    assert "redrive sqsw redrive needs the sqsw-deadletter plugin" in " ".join(
        listing.stdout.split()
    )
    plugins = run("plugins", "--json")
    assert plugins.returncode == EXIT_OK, plugins.stderr
    assert "sqsw-deadletter" not in plugins.stdout
    assert '"name": "json"' in plugins.stdout


DEPTH_APP = textwrap.dedent(
    """
    from sqsw_core import SQSEnv, create_standard_queue

    # The in-memory SQS lives in the process: the app creates and fills its queues.
    sqs = SQSEnv(session="memory")
    create_standard_queue(sqs, "emails")
    create_standard_queue(sqs, "reports")
    for n in range(3):
        sqs.queue("emails").add_job("send", n=n)
    """
)


def _doc_example() -> tuple[str, str]:
    """The pyproject and the Python code of docs/plugins.md's "Adding a CLI command"."""
    text = (REPO / "docs" / "plugins.md").read_text()
    section = text[text.index("## Adding a CLI command") :]
    section = section[: section.index("\n## ")]
    (toml,) = re.findall(r"```toml\n(.*?)```", section, re.S)
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    return toml, code


def test_the_documented_command_example_runs(tmp_path: Path) -> None:
    """The example of docs/plugins.md, installed as its pyproject says, run as users would."""
    toml, code = _doc_example()
    project = tomllib.loads(toml)["project"]
    ((name, target),) = project["entry-points"]["sqsw.commands"].items()
    module = target.partition(":")[0]
    site_dir = tmp_path / "site"
    path = site_dir.joinpath(*module.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True)
    (path.parent / "__init__.py").write_text("")
    path.write_text(code)
    _dist(site_dir, project["name"], f"{name} = {target}\n")
    (site_dir / "depth_app.py").write_text(DEPTH_APP)

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return _sqsw(*args, pythonpath=site_dir, **extra)

    def table(result: subprocess.CompletedProcess[str]) -> list[list[str]]:
        assert (result.returncode, result.stderr) == (EXIT_OK, "")
        lines = [line.strip("│┃ ") for line in result.stdout.splitlines()]
        return [re.split(r"\s*[│┃]\s*", line) for line in lines if line[:1].isalnum()]

    app = ["--app", "depth_app:sqs"]
    assert table(run(name, "emails", "reports", *app)) == [
        ["queue", "messages"],
        ["emails", "3"],
        ["reports", "0"],
    ]
    assert table(run(name, "--all", SQSW_APP="depth_app:sqs")) == table(run(name, "--all", *app))
    assert ["emails", "3"] in table(run(name, "--all", *app))
    assert "Exit codes: 0 stopped normally" in run(name, "--help").stdout

    # One line and the exit code of every sqsw command.
    def error(result: subprocess.CompletedProcess[str], code: int) -> str:
        assert result.returncode == code, result.stderr
        assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
        return result.stderr

    assert error(run(name, *app), EXIT_USAGE) == "Error: give QUEUE names or --all\n"
    error(run(name, "emails", "--all", *app), EXIT_USAGE)
    assert "orders" in error(run(name, "orders", *app), EXIT_SQS)
    error(run(name, "emails", "--session", "memory"), EXIT_SQS)  # no app: no queues
    assert "no_such_app" in error(run(name, "emails", "--app", "no_such_app:sqs"), EXIT_APP)
    assert "'json'?" in error(run(name, "emails", *app, "--codec", "jsn"), EXIT_PLUGIN)
