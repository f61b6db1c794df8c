"""The ``sqsw`` command line: ``run``, ``plugins``, ``queue``, ``enqueue``, and the
commands plugins add through the ``sqsw.commands`` entry-point group (``redrive``
from sqsw-deadletter), as ``flask.commands`` does for Flask.

Every command reads ``[tool.sqsw]`` (pyproject.toml) or ``sqsw.toml``, then
``SQSW_*`` variables, then its flags. Exit codes: see
:data:`sqsw_core.cli.common.EXIT_CODES_HELP`.
"""

from __future__ import annotations

import importlib.metadata
import logging
from typing import Any

import click

from sqsw_core import __version__
from sqsw_core.cli.commands import enqueue, plugins_command, queue_group
from sqsw_core.cli.common import (
    COMMANDS_GROUP,
    EXIT_CODES_HELP,
    EXIT_PLUGIN,
    CliError,
    SqswGroup,
)
from sqsw_core.cli.run import run
from sqsw_core.plugins import COMMANDS, KNOWN_PROVIDERS, provider

__all__ = ["KNOWN_COMMANDS", "PluginCommandGroup", "cli", "main", "quiet_logging"]

#: Commands of the plugins sqsw ships and the distribution providing each, so that
#: ``sqsw NAME`` without that plugin says what to install (exit 4): the provider
#: table's rows for the commands group.
KNOWN_COMMANDS: dict[str, str] = KNOWN_PROVIDERS[COMMANDS]


def _unavailable(name: str, message: str) -> click.Command:
    """A stand-in for a command that cannot run: any arguments, then ``message``, exit 4."""

    def fail(args: tuple[str, ...]) -> None:
        raise CliError(message, EXIT_PLUGIN)

    return click.Command(
        name,
        callback=fail,
        params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
        help=message,
        short_help=message,
        add_help_option=False,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


class PluginCommandGroup(SqswGroup):
    """The ``sqsw`` group: its own commands, then those of the ``sqsw.commands`` group.

    A plugin's command is imported only when it is run or listed (``sqsw --help``);
    one that cannot be used (not installed, fails to import, not a click command,
    registered twice) still shows up and, run, says why with exit code 4. The
    core's own commands win over a plugin command of the same name.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plugin_commands: dict[str, click.Command] = {}

    @staticmethod
    def _entry_points(name: str | None = None) -> list[importlib.metadata.EntryPoint]:
        found = importlib.metadata.entry_points(group=COMMANDS_GROUP)
        return [ep for ep in found if name is None or ep.name == name]

    def list_commands(self, ctx: click.Context) -> list[str]:
        plugin_names = {ep.name for ep in self._entry_points()} | set(KNOWN_COMMANDS)
        return sorted(set(super().list_commands(ctx)) | plugin_names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None:
            command = self._plugin_commands.get(cmd_name)
        if command is None:
            command = self._load_plugin_command(cmd_name)
            if command is not None:
                self._plugin_commands[cmd_name] = command
        return command

    def _load_plugin_command(self, name: str) -> click.Command | None:
        found = self._entry_points(name)
        package = KNOWN_COMMANDS.get(name)
        if not found:
            if package is None:
                return None
            return _unavailable(
                name, f"sqsw {name} needs the {package} plugin: pip install {package}"
            )
        if len(found) > 1:
            providers = ", ".join(sorted(provider(ep) for ep in found))
            return _unavailable(
                name,
                f"sqsw {name}: several distributions register the command in group "
                f"{COMMANDS_GROUP!r} ({providers}): uninstall all but one",
            )
        ep = found[0]
        where = f"the sqsw command {name!r} ({provider(ep)}, entry point {ep.value!r})"
        reinstall = f": reinstall it with: pip install {package}" if package else ""
        try:
            command = ep.load()
        except Exception as exc:
            return _unavailable(
                name, f"{where} failed to load: {type(exc).__name__}: {exc}{reinstall}"
            )
        if not isinstance(command, click.Command):
            return _unavailable(
                name, f"{where} is a {type(command).__name__}, not a click command{reinstall}"
            )
        return command


@click.group(cls=PluginCommandGroup, epilog=EXIT_CODES_HELP)
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    default=None,
    help="Config file (default: sqsw.toml or pyproject.toml [tool.sqsw], searched upward).",
)
@click.version_option(__version__, prog_name="sqsw")
def cli(config: str | None) -> None:
    """sqsw: run and manage Amazon SQS job workers."""
    quiet_logging()


def quiet_logging() -> None:
    """Log records of ERROR and above only, until a command sets up its own logging
    (``sqsw run`` does): a one-shot command's outcome is its output or its one
    ``Error:`` line, not the retries (say) that led to it."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setLevel(logging.ERROR)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        root.addHandler(handler)


cli.add_command(run)
cli.add_command(plugins_command)
cli.add_command(queue_group)
cli.add_command(enqueue)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="sqsw")
