"""``sqsw plugins``, ``sqsw queue ...``, ``sqsw enqueue`` and ``sqsw redrive``."""

from __future__ import annotations

import importlib.metadata
import json
import math
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sqsw_core import plugins
from sqsw_core.cli.common import (
    EXIT_PLUGIN,
    EXIT_USAGE,
    CliError,
    bounded,
    console,
    env_for,
    env_options,
)
from sqsw_core.engine_options import show
from sqsw_core.env import SQSEnv
from sqsw_core.exceptions import ConfigurationError, PluginError
from sqsw_core.long_delays import MAX_LONG_DELAY_SECONDS
from sqsw_core.queue import JobQueue
from sqsw_core.queue_management import (
    create_fifo_queue,
    create_standard_queue,
    delete_queue,
    get_queue_attributes,
    oldest_message_age,
)
from sqsw_core.retries import describe_error

# -- sqsw plugins ------------------------------------------------------------------


def plugin_rows() -> list[dict[str, str]]:
    """Every installed plugin: group, name, provider, target and load status."""
    rows: list[dict[str, str]] = []
    for group in plugins.GROUPS:
        for ep in sorted(importlib.metadata.entry_points(group=group), key=lambda e: e.name):
            dist = ep.dist
            provider = f"{dist.name} {dist.version}" if dist is not None else "?"
            try:
                ep.load()
                status = "ok"
            except Exception as exc:  # reported, not raised: that is the command's job
                status = f"FAILED: {type(exc).__name__}: {exc}"
            rows.append(
                {
                    "group": group,
                    "name": ep.name,
                    "provider": provider,
                    "target": ep.value,
                    "status": status,
                }
            )
    return rows


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins_command(as_json: bool) -> None:
    """List every entry-point group, its installed plugins and who provides them.

    Plugins whose code fails to import are shown with the reason; the command
    then exits with code 4.
    """
    rows = plugin_rows()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        out = console()
        for group, what in plugins.GROUPS.items():
            table = Table(title=f"{group}: {what}", title_justify="left", expand=False)
            for column in ("name", "provider", "target", "status"):
                table.add_column(column)
            mine = [row for row in rows if row["group"] == group]
            for row in mine:
                style = None if row["status"] == "ok" else "red"
                cells = (row["name"], row["provider"], row["target"], row["status"])
                table.add_row(*cells, style=style)
            if not mine:
                table.add_row("(none)", "", "", "")
            out.print(table)
    failed = [row for row in rows if row["status"] != "ok"]
    if failed:
        raise CliError(
            f"{len(failed)} plugin(s) fail to load: "
            + ", ".join(f"{row['group']}:{row['name']}" for row in failed),
            EXIT_PLUGIN,
        )


# -- sqsw queue ----------------------------------------------------------------------


@click.group("queue")
def queue_group() -> None:
    """Create, delete, purge, list and inspect queues."""


@queue_group.command("create")
@click.argument("name")
@click.option(
    "--visibility-timeout",
    type=int,
    default=None,
    callback=bounded(0, 43_200, reason="the SQS limit, 12 hours"),
    help="Seconds (SQS default 30).",
)
@click.option(
    "--retention",
    type=int,
    default=None,
    callback=bounded(60, 1_209_600, reason="the SQS limits, 1 minute to 14 days"),
    help="Message retention seconds.",
)
@click.option(
    "--delay",
    type=int,
    default=None,
    callback=bounded(0, 900, reason="the SQS limit"),
    help="Delay of every message, seconds.",
)
@click.option("--dead-letter", default=None, help="Dead-letter queue (created if missing).")
@click.option(
    "--max-receives",
    type=int,
    default=5,
    show_default=True,
    callback=bounded(1, 1000, reason="the SQS limit"),
    help="Deliveries before a message goes to --dead-letter.",
)
@click.option("--content-based-dedup", is_flag=True, help="FIFO: deduplicate by body hash.")
@env_options
@click.pass_context
def queue_create(
    ctx: click.Context,
    /,
    name: str,
    visibility_timeout: int | None,
    retention: int | None,
    delay: int | None,
    dead_letter: str | None,
    max_receives: int,
    content_based_dedup: bool,
    **flags: Any,
) -> None:
    """Create queue NAME (FIFO when it ends in .fifo); prints its URL."""
    env = env_for(ctx, **flags)
    fifo = name.endswith(".fifo")
    redrive = None
    if dead_letter is not None:
        if fifo:
            create_fifo_queue(env, dead_letter)
        else:
            create_standard_queue(env, dead_letter)
        redrive = env.redrive_policy(dead_letter, max_receives)
    options: dict[str, Any] = {
        "message_retention_period": retention,
        "visibility_timeout": visibility_timeout,
        "redrive_policy": redrive,
        "delay_seconds": delay,
    }
    if fifo:
        url = create_fifo_queue(env, name, content_based_dedup, **options)
    else:
        url = create_standard_queue(env, name, **options)
    click.echo(url)


@queue_group.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@env_options
@click.pass_context
def queue_delete(ctx: click.Context, /, name: str, yes: bool, **flags: Any) -> None:
    """Delete queue NAME and every message in it."""
    env = env_for(ctx, **flags)
    if not yes:
        click.confirm(f"Delete queue {env.get_sqs_queue_name(name)} and its messages?", abort=True)
    delete_queue(env, name)
    click.echo(f"deleted {env.get_sqs_queue_name(name)}")


@queue_group.command("purge")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@env_options
@click.pass_context
def queue_purge(ctx: click.Context, /, name: str, yes: bool, **flags: Any) -> None:
    """Delete every message of queue NAME (SQS allows one purge a minute)."""
    env = env_for(ctx, **flags)
    if not yes:
        click.confirm(f"Delete every message of {env.get_sqs_queue_name(name)}?", abort=True)
    env.api.call("purge_queue", name, QueueUrl=env.get_queue_url(name))
    click.echo(f"purged {env.get_sqs_queue_name(name)}")


@queue_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@env_options
@click.pass_context
def queue_list(ctx: click.Context, /, as_json: bool, **flags: Any) -> None:
    """List the queues whose SQS name starts with the queue prefix."""
    env = env_for(ctx, **flags)
    names = sorted(env.get_all_known_queues())
    if as_json:
        click.echo(json.dumps(names))
    else:
        for name in names:
            click.echo(name)


def queue_stats(env: SQSEnv, name: str) -> dict[str, Any]:
    """Depth, in flight, delayed, oldest age, redrive policy and dead-letter depth of a queue."""
    attrs = get_queue_attributes(env, name)
    stats: dict[str, Any] = {
        "queue": name,
        "depth": int(attrs.get("ApproximateNumberOfMessages", 0)),
        "in_flight": int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
        "delayed": int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
        # SQS reports the oldest message's age only as a CloudWatch metric.
        "oldest_age": None,
        "oldest_age_error": None,
        "fifo": attrs.get("FifoQueue") == "true",
        "visibility_timeout": int(attrs.get("VisibilityTimeout", 30)),
        "redrive_policy": None,
        "dead_letter_queue": None,
        "dead_letter_depth": None,
    }
    try:
        stats["oldest_age"] = oldest_message_age(env, name)
    except Exception as exc:  # no CloudWatch there, or no permission to read it
        stats["oldest_age_error"] = f"CloudWatch: {describe_error(exc)}"
    if attrs.get("RedrivePolicy"):
        policy = json.loads(attrs["RedrivePolicy"])
        stats["redrive_policy"] = policy
        dlq_sqs_name = str(policy.get("deadLetterTargetArn", "")).rsplit(":", 1)[-1]
        stats["dead_letter_queue"] = dlq_sqs_name
        try:
            url = env.api.call("get_queue_url", dlq_sqs_name, QueueName=dlq_sqs_name)["QueueUrl"]
            dlq = env.api.call(
                "get_queue_attributes",
                dlq_sqs_name,
                QueueUrl=url,
                AttributeNames=["ApproximateNumberOfMessages"],
            )
            stats["dead_letter_depth"] = int(dlq["Attributes"]["ApproximateNumberOfMessages"])
        except Exception:  # the DLQ was deleted: the policy still names it
            stats["dead_letter_depth"] = None
    return stats


def format_age(age: float | None, error: str | None) -> str:
    """The oldest-age cell: ``42 s``, ``3 min``, ``-`` (no datapoint) or ``n/a`` and why."""
    if error is not None:
        return f"n/a ({error})"
    if age is None:
        return "-"
    if age < 120:
        return f"{age:.0f} s"
    if age < 7200:
        return f"{age / 60:.0f} min"
    return f"{age / 3600:.1f} h"


@queue_group.command("stats")
@click.argument("names", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@env_options
@click.pass_context
def queue_stats_command(
    ctx: click.Context, /, names: tuple[str, ...], as_json: bool, **flags: Any
) -> None:
    """Depth, in flight, delayed, oldest message age (CloudWatch), redrive policy and
    dead-letter depth of queues NAMES."""
    env = env_for(ctx, **flags)
    rows = [queue_stats(env, name) for name in names]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table()
    for column in ("queue", "depth", "in flight", "delayed", "oldest age", "redrive", "DLQ depth"):
        table.add_column(column)
    for row in rows:
        policy = row["redrive_policy"]
        redrive = (
            f"{row['dead_letter_queue']} after {policy.get('maxReceiveCount')}" if policy else "-"
        )
        table.add_row(
            row["queue"],
            str(row["depth"]),
            str(row["in_flight"]),
            str(row["delayed"]),
            format_age(row["oldest_age"], row["oldest_age_error"]),
            redrive,
            "-" if row["dead_letter_depth"] is None else str(row["dead_letter_depth"]),
        )
    console().print(table)


# -- sqsw enqueue --------------------------------------------------------------------


def parse_arg(text: str) -> tuple[str, Any]:
    """``key=value``: the value as JSON when it parses, else the string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"expected key=value, got {text!r}", param_hint="--arg")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


@click.command("enqueue")
@click.argument("queue")
@click.argument("job")
@click.option("--arg", "args", multiple=True, help="key=value (JSON when it parses); repeat.")
@click.option("--json", "json_args", default=None, help="The keyword arguments as a JSON object.")
@click.option(
    "--delay",
    type=int,
    default=None,
    callback=bounded(0, MAX_LONG_DELAY_SECONDS, reason="14 days, the longest sqsw delays a job"),
    help="Delay seconds.",
)
@click.option("--group-id", default=None, help="FIFO message group.")
@click.option("--deduplication-id", default=None, help="FIFO deduplication id.")
@env_options
@click.pass_context
def enqueue(
    ctx: click.Context,
    /,
    queue: str,
    job: str,
    args: tuple[str, ...],
    json_args: str | None,
    delay: int | None,
    group_id: str | None,
    deduplication_id: str | None,
    **flags: Any,
) -> None:
    """Send job JOB to QUEUE; prints the message id."""
    kwargs: dict[str, Any] = {}
    if json_args is not None:
        try:
            loaded = json.loads(json_args)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--json") from None
        if not isinstance(loaded, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--json")
        kwargs.update(loaded)
    kwargs.update(parse_arg(arg) for arg in args)
    env = env_for(ctx, **flags)
    target = env.queue(queue)
    if not isinstance(target, JobQueue):
        raise click.UsageError(f"queue {queue!r} is not a job queue")
    try:
        message_id = target.add_job(
            job,
            _delay_seconds=delay,
            _group_id=group_id,
            _deduplication_id=deduplication_id,
            **kwargs,
        )
    except (ConfigurationError, PluginError):
        raise
    except ValueError as exc:  # a FIFO queue without --deduplication-id, too large, ...
        raise CliError(f"cannot send {job!r} to queue {queue!r}: {exc}", EXIT_USAGE) from None
    click.echo(message_id)


# -- sqsw redrive --------------------------------------------------------------------

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
    try:
        from sqsw_deadletter import DeadLetterQueue, RedriveFilter
    except ImportError:
        raise CliError(
            "sqsw redrive needs the sqsw-deadletter plugin: pip install sqsw-deadletter",
            EXIT_PLUGIN,
        ) from None
    selection = RedriveFilter(**parse_filters(filters)) if filters else None
    env = env_for(ctx, **flags)
    target = upstream or upstream_of(env, dlq)
    dead = env.queue(dlq, DeadLetterQueue.maker(target))
    wait = 0 if getattr(env.session, "process_local", False) else 1
    out = console()
    if dry_run:
        candidates = dead.dry_run(selection, wait_seconds=wait)
        table = Table(title=f"{len(candidates)} message(s) would move from {dlq} to {target}")
        for column in ("message id", "job", "age (s)", "receives"):
            table.add_column(column)
        for c in candidates:
            age = "-" if c.age is None else f"{c.age:.0f}"
            table.add_row(c.message_id, c.job_name or "-", age, str(c.receive_count))
        out.print(table)
        return
    total = int(get_queue_attributes(env, dlq).get("ApproximateNumberOfMessages", 0))
    moved = failed = 0
    chunk = 50
    with Progress(
        TextColumn(f"redrive {dlq} -> {target}"),
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
                break
    click.echo(f"{moved} moved to {target}, {failed} failed")
