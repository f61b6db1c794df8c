"""The ``sqsw`` command line: ``run``, ``plugins``, ``queue``, ``enqueue``, ``redrive``.

Every command reads ``[tool.sqsw]`` (pyproject.toml) or ``sqsw.toml``, then
``SQSW_*`` variables, then its flags. Exit codes: see
:data:`sqsw_core.cli.common.EXIT_CODES_HELP`.
"""

from __future__ import annotations

import click

from sqsw_core import __version__
from sqsw_core.cli.commands import enqueue, plugins_command, queue_group, redrive
from sqsw_core.cli.common import EXIT_CODES_HELP, SqswGroup
from sqsw_core.cli.run import run

__all__ = ["cli", "main"]


@click.group(cls=SqswGroup, epilog=EXIT_CODES_HELP)
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    default=None,
    help="Config file (default: sqsw.toml or pyproject.toml [tool.sqsw], searched upward).",
)
@click.version_option(__version__, prog_name="sqsw")
def cli(config: str | None) -> None:
    """sqsw: run and manage Amazon SQS job workers."""


cli.add_command(run)
cli.add_command(plugins_command)
cli.add_command(queue_group)
cli.add_command(enqueue)
cli.add_command(redrive)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="sqsw")
