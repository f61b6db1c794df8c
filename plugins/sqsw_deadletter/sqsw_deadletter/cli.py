"""``sqsw redrive``: the command sqsw-deadletter adds to ``sqsw`` (entry point ``sqsw.commands``).

Built on :mod:`sqsw_core.cli.common`, the API for plugin commands: its options,
configuration, console and exit codes are those of every other ``sqsw`` command.
"""

from __future__ import annotations

import math
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sqsw_core.cli.common import EXIT_PLUGIN, CliError, bounded, console, env_for, env_options, show
from sqsw_core.env import SQSEnv
from sqsw_core.queue_management import get_queue_attributes
from sqsw_core.sessions import is_process_local
from sqsw_deadletter.deadletter_queue import DeadLetterQueue
from sqsw_deadletter.selection import RedriveFilter

__all__ = ["parse_filters", "redrive", "upstream_of"]

_FILTER_KEYS = {
    "job": "job_name",
    "min-age": "min_age",
    "max-age": "max_age",
    "min-receives": "min_receive_count",
    "max-receives": "max_receive_count",
}


def parse_filters(filters: tuple[str, ...]) -> dict[str, Any]:
    """``job=NAME`` (repeatable), ``min-age``/``max-age`` (seconds), ``min-/max-receives``."""
    out: dict[str, Any] = {}
    jobs: list[str] = []
    for text in filters:
        key, sep, value = text.partition("=")
        if not sep or key not in _FILTER_KEYS:
            raise click.BadParameter(
                f"{text!r}: use {', '.join(k + '=...' for k in _FILTER_KEYS)}",
                param_hint="--filter",
            )
        if key == "job":
            jobs.append(value)
            continue
        try:
            number: float = float(value) if "age" in key else int(value)
        except ValueError:
            raise click.BadParameter(f"{text!r}: not a number", param_hint="--filter") from None
        if not math.isfinite(number) or number < 0:
            raise CliError(
                f"option --filter: {text!r}: {key} must be a number >= 0, got {show(number)}",
                EXIT_PLUGIN,
            )
        out[_FILTER_KEYS[key]] = number
    if jobs:
        out["job_name"] = jobs
    return out


def upstream_of(env: SQSEnv, dlq: str) -> str:
    """The one queue whose redrive policy targets ``dlq`` (SQS ListDeadLetterSourceQueues)."""
    response = env.api.call("list_dead_letter_source_queues", dlq, QueueUrl=env.get_queue_url(dlq))
    prefix = env.queue_prefix
    names = [url.rsplit("/", 1)[-1] for url in response.get("queueUrls", [])]
    names = [name[len(prefix) :] for name in names if name.startswith(prefix)]
    if len(names) != 1:
        raise click.UsageError(
            f"{dlq!r} is the dead-letter queue of {len(names)} queue(s) "
            f"({', '.join(names) or 'none'}): say where messages go with --to QUEUE"
        )
    return str(names[0])


def _print_dry_run(
    dead: DeadLetterQueue, selection: RedriveFilter | None, wait: int, dlq: str, target: str
) -> None:
    candidates = dead.dry_run(selection, wait_seconds=wait)
    table = Table(title=f"{len(candidates)} message(s) would move from {dlq} to {target}")
    for column in ("message id", "job", "age (s)", "receives"):
        table.add_column(column)
    for c in candidates:
        age = "-" if c.age is None else f"{c.age:.0f}"
        table.add_row(c.message_id, c.job_name or "-", age, str(c.receive_count))
    console().print(table)


def _move(
    dead: DeadLetterQueue,
    selection: RedriveFilter | None,
    wait: int,
    rate: float | None,
    total: int,
    target: str,
) -> tuple[int, int]:
    """Push back in chunks of 50 with a progress bar on stderr: (moved, failed)."""
    moved = failed = 0
    chunk = 50
    with Progress(
        TextColumn(f"redrive {dead.name} -> {target}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console(stderr=True),
    ) as progress:
        task = progress.add_task("redrive", total=total or None)
        while True:
            report = dead.push_back(
                selection, wait_seconds=wait, max_messages=chunk, max_messages_per_second=rate
            )
            moved += report.moved
            failed += report.failed
            progress.update(task, completed=moved + failed, total=max(total, moved + failed))
            if report.moved + report.failed < chunk:
                return moved, failed


@click.command("redrive")
@click.argument("dlq")
@click.option(
    "--to",
    "upstream",
    default=None,
    help="Queue to move messages to (default: the one queue whose redrive policy targets DLQ).",
)
@click.option(
    "--filter",
    "filters",
    multiple=True,
    help="job=NAME (repeatable), min-age=S, max-age=S, min-receives=N, max-receives=N.",
)
@click.option("--dry-run", is_flag=True, help="List what would move; move nothing.")
@click.option(
    "--rate",
    type=float,
    default=None,
    callback=bounded(0, integer=False, exclusive=True),
    help="At most this many messages per second.",
)
@env_options
@click.pass_context
def redrive(
    ctx: click.Context,
    /,
    dlq: str,
    upstream: str | None,
    filters: tuple[str, ...],
    dry_run: bool,
    rate: float | None,
    **flags: Any,
) -> None:
    """Move the messages of dead-letter queue DLQ back (sqsw-deadletter's push-back).

    A message is deleted from DLQ only after the target queue accepted its copy.
    """
    selection = RedriveFilter(**parse_filters(filters)) if filters else None
    env = env_for(ctx, **flags)
    target = upstream or upstream_of(env, dlq)
    dead = env.queue(dlq, DeadLetterQueue.maker(target))
    wait = 0 if is_process_local(env.session) else 1
    if dry_run:
        _print_dry_run(dead, selection, wait, dlq, target)
        return
    total = int(get_queue_attributes(env, dlq).get("ApproximateNumberOfMessages", 0))
    moved, failed = _move(dead, selection, wait, rate, total, target)
    click.echo(f"{moved} moved to {target}, {failed} failed")
