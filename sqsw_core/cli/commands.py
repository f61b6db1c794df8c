"""``sqsw plugins``, ``sqsw queue ...`` and ``sqsw enqueue``.

``sqsw redrive`` comes from the sqsw-deadletter plugin (entry-point group
``sqsw.commands``, loaded by :class:`sqsw_core.cli.PluginCommandGroup`).
"""

from __future__ import annotations

import difflib
import importlib.metadata
import json
from typing import Any

import click
from rich.table import Table

from sqsw_core import plugins
from sqsw_core.bulk_jobs import BulkProcessor
from sqsw_core.cli.common import (
    COMMANDS_GROUP,
    EXIT_PLUGIN,
    EXIT_USAGE,
    CliError,
    bounded,
    console,
    env_for,
    env_options,
    load_app,
    settings_for,
)
from sqsw_core.env import SQSEnv
from sqsw_core.exceptions import ConfigurationError, PluginError
from sqsw_core.limits import (
    MAX_DELAY_SECONDS,
    MAX_RETENTION_SECONDS,
    MAX_VISIBILITY_TIMEOUT,
    MIN_RETENTION_SECONDS,
)
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
from sqsw_core.tasks import AsyncTask

# -- sqsw plugins ------------------------------------------------------------------


#: The groups ``sqsw plugins`` lists: the plugin groups and the commands plugins add.
LISTED_GROUPS: dict[str, str] = {
    **plugins.GROUPS,
    COMMANDS_GROUP: "an sqsw subcommand (a click command)",
}


def _load_status(ep: importlib.metadata.EntryPoint) -> str:
    try:
        ep.load()
    except Exception as exc:  # reported, not raised: that is the command's job
        return f"FAILED: {type(exc).__name__}: {exc}"
    return "ok"


def plugin_rows() -> list[dict[str, str]]:
    """Every installed plugin: group, name, provider, target and load status."""
    return [
        {
            "group": group,
            "name": ep.name,
            # Per entry point: two distributions may register the same name.
            "provider": plugins.provider(ep),
            "target": ep.value,
            "status": _load_status(ep),
        }
        for group in LISTED_GROUPS
        for ep in sorted(importlib.metadata.entry_points(group=group), key=lambda e: e.name)
    ]


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
        for group, what in LISTED_GROUPS.items():
            table = Table(title=f"{group}: {what}", title_justify="left", expand=False)
            for column in ("name", "provider", "target", "status"):
                table.add_column(column)
            mine = [row for row in rows if row["group"] == group]
            for row in mine:
                ok = row["status"] == "ok"
                cells = (row["name"], row["provider"], row["target"], row["status"][:6])
                table.add_row(*cells, style=None if ok else "red")
            if not mine:
                table.add_row("(none)", "", "", "")
            out.print(table)
            for row in mine:  # the reason on its own line: a cell would be too wide
                if row["status"] != "ok":
                    click.echo(f"{group}:{row['name']} ({row['provider']}): {row['status']}")
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
    callback=bounded(0, MAX_VISIBILITY_TIMEOUT, reason="the SQS limit, 12 hours"),
    help="Seconds (SQS default 30).",
)
@click.option(
    "--retention",
    type=int,
    default=None,
    callback=bounded(
        MIN_RETENTION_SECONDS,
        MAX_RETENTION_SECONDS,
        reason="the SQS limits, 1 minute to 14 days",
    ),
    help="Message retention seconds.",
)
@click.option(
    "--delay",
    type=int,
    default=None,
    callback=bounded(0, MAX_DELAY_SECONDS, reason="the SQS limit"),
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
    """The oldest-age cell: ``42 s``, ``3 min``, ``-`` (no datapoint) or ``n/a`` (the
    reason goes on its own line below the table: :func:`stats_notes`)."""
    if error is not None:
        return "n/a"
    if age is None:
        return "-"
    if age < 120:
        return f"{age:.0f} s"
    if age < 7200:
        return f"{age / 60:.0f} min"
    return f"{age / 3600:.1f} h"


def stats_notes(rows: list[dict[str, Any]]) -> list[str]:
    """One line per reason an oldest age is n/a, naming its queues (once if shared)."""
    by_reason: dict[str, list[str]] = {}
    for row in rows:
        if row["oldest_age_error"] is not None:
            by_reason.setdefault(row["oldest_age_error"], []).append(row["queue"])
    return [
        f"oldest age n/a ({', '.join(queues)}): {reason}" for reason, queues in by_reason.items()
    ]


def stats_table(rows: list[dict[str, Any]]) -> Table:
    """The ``sqsw queue stats`` table: one row a queue, short cells only."""
    table = Table()
    for column in ("queue", "depth", "in flight", "delayed", "oldest age", "redrive", "DLQ depth"):
        table.add_column(column, overflow="fold")
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
    return table


@queue_group.command("stats")
@click.argument("names", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@env_options
@click.pass_context
def queue_stats_command(
    ctx: click.Context, /, names: tuple[str, ...], as_json: bool, **flags: Any
) -> None:
    """Depth, in flight, delayed, oldest message age (CloudWatch), redrive policy and
    dead-letter depth of queues NAMES.

    The table fits the terminal (80 columns when piped); why an oldest age is n/a
    (no CloudWatch there, no permission) follows it, one line per reason.
    """
    env = env_for(ctx, **flags)
    rows = [queue_stats(env, name) for name in names]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    console().print(stats_table(rows))
    for note in stats_notes(rows):
        click.echo(note)


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


def _job_kwargs(args: tuple[str, ...], json_args: str | None) -> dict[str, Any]:
    """The job's keyword arguments: ``--json`` first, then each ``--arg`` (later wins)."""
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
    return kwargs


def check_job(env: SQSEnv, app: str, queue: str, job: str, kwargs: dict[str, Any]) -> None:
    """Refuse (exit 2) a job the app does not register on ``queue``, or arguments that
    do not bind to its function's signature."""
    known = env.queues.get(queue)
    jobs: dict[str, Any] = {}
    if isinstance(known, JobQueue):
        jobs = {**known.bulk_processors, **known.processors}
    if job not in jobs:
        if jobs:
            close = difflib.get_close_matches(job, list(jobs), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            where = f"its jobs on queue {queue!r}: {', '.join(sorted(jobs))}{hint}"
        else:
            with_jobs = sorted(
                name for name, q in env.queues.items() if isinstance(q, JobQueue) and q.processors
            )
            where = (
                f"no job on queue {queue!r} (queues with jobs: {', '.join(with_jobs) or 'none'})"
            )
        raise CliError(f"job {job!r}: app {app!r} has {where}", EXIT_USAGE)
    processor = jobs[job]
    if isinstance(processor, BulkProcessor) or not isinstance(known, JobQueue):
        return  # a bulk job's function takes a list of jobs: nothing to bind
    task = AsyncTask(known, job, processor.fn, processor.pass_context, processor.context_var)
    try:
        task.job_kwargs((), kwargs)
    except TypeError as exc:
        fn = processor.fn
        code = getattr(fn, "__code__", None)
        where = f" ({code.co_filename}, line {code.co_firstlineno})" if code else ""
        raise CliError(
            f"--arg/--json do not fit job {job!r} of app {app!r}{where}: {exc}", EXIT_USAGE
        ) from None


def _check_fifo_flags(
    target: JobQueue, job: str, delay: int | None, deduplication_id: str | None
) -> None:
    """The flags a FIFO queue needs or refuses, named as flags (exit 2)."""
    if not target.is_fifo:
        return
    cannot = f"cannot send {job!r} to queue {target.name!r}"
    if delay:
        raise CliError(
            f"{cannot}: it is FIFO: SQS allows no per-message delay there; drop "
            "--delay (or give the queue a delay: sqsw queue create NAME --delay SECONDS)",
            EXIT_USAGE,
        )
    if deduplication_id is None and target.attributes.get("ContentBasedDeduplication") != "true":
        raise CliError(
            f"{cannot}: it is FIFO without content-based deduplication: give "
            f"--deduplication-id ID (or create the queue with: sqsw queue create "
            f"{target.name} --content-based-dedup)",
            EXIT_USAGE,
        )


def _sending_env(ctx: click.Context, app: str | None, flags: dict[str, Any]) -> tuple[SQSEnv, str]:
    """The app's env (``--app`` or the configured app) and its name, else a plain env."""
    settings = settings_for(ctx, app=app, **flags)
    spec = settings.get("app")
    if spec:
        return load_app(settings), str(spec)
    return SQSEnv(**settings.env_options()), ""


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
@click.option(
    "--app",
    default=None,
    help="module:attr of the app's SQSEnv (config app, SQSW_APP): the job and its "
    "arguments are checked against it before sending.",
)
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
    app: str | None,
    **flags: Any,
) -> None:
    """Send job JOB to QUEUE; prints the message id.

    With an app (--app, config app or SQSW_APP), JOB must be one of its jobs on
    QUEUE and the arguments must fit its function, else nothing is sent (exit 2).
    """
    kwargs = _job_kwargs(args, json_args)
    env, app_name = _sending_env(ctx, app, flags)
    if app_name:
        check_job(env, app_name, queue, job, kwargs)
    target = env.queue(queue)
    if not isinstance(target, JobQueue):
        raise CliError(f"queue {queue!r} is not a job queue", EXIT_USAGE)
    _check_fifo_flags(target, job, delay, deduplication_id)
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
    except ValueError as exc:  # too large, ...
        raise CliError(f"cannot send {job!r} to queue {queue!r}: {exc}", EXIT_USAGE) from None
    click.echo(message_id)
