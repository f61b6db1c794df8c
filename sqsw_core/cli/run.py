"""``sqsw run``: import the app, apply the configuration, run the workers, show progress."""

from __future__ import annotations

import inspect
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.logging import RichHandler
from rich.text import Text

from sqsw_core import plugins
from sqsw_core.cli.common import (
    EXIT_CODES_HELP,
    EXIT_ERROR,
    EXIT_PLUGIN,
    CliError,
    console,
    load_app,
    settings_for,
)
from sqsw_core.cli.log_format import JsonFormatter
from sqsw_core.cli.monitoring import Monitoring
from sqsw_core.config import Settings
from sqsw_core.engine_options import check_option, check_queues_options
from sqsw_core.env import SQSEnv
from sqsw_core.exceptions import ConfigurationError, PluginError
from sqsw_core.results import EngineStats
from sqsw_core.sessions import AWSSession, is_process_local
from sqsw_core.shutdown_policies import ShutdownPolicy
from sqsw_core.supervisor import for_queues

logger = logging.getLogger("sqsw.cli")

#: Settings that become keyword arguments of the engine.
ENGINE_KEYS = ("concurrency", "prefetch", "pollers", "grace_period", "max_job_duration")


class StatsReporter:
    """Shows live counters: a rich Live line on a terminal, else log lines.

    ``source`` returns the counters to show: the engines running in this
    process, or the totals a supervisor collects from its worker processes.
    """

    def __init__(
        self,
        queue_names: list[str],
        source: Callable[[], list[EngineStats]],
        out: Console,
        interval: float,
        live: bool,
    ) -> None:
        self.queue_names = queue_names
        self.source = source
        self.out = out
        self.interval = interval
        self.live = live
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sqsw-stats", daemon=True)
        self._last: tuple[float, int] = (time.monotonic(), 0)

    def line(self) -> str:
        """One line for all queues: throughput, in flight, failed, retried, redelivered."""
        parts = self.source()
        names = ", ".join(self.queue_names)
        if not parts:
            return f"{names}: starting"
        stats = EngineStats.total(parts)
        done = stats.succeeded + stats.failed + stats.retried
        # Received and not settled yet (stats.in_flight also counts receives under way).
        in_flight = max(0, stats.received - done - stats.released)
        now = time.monotonic()
        since, before = self._last
        rate = (done - before) / max(1e-9, now - since)
        self._last = (now, done)
        return (
            f"{names}: {done} jobs done ({rate:.1f}/s) | in flight {in_flight} | failed "
            f"{stats.failed} | retried {stats.retried} | redelivered {stats.redelivered} "
            f"| released {stats.released}"
        )

    def _loop(self) -> None:
        if self.live:
            with Live(Text(""), console=self.out, refresh_per_second=4, transient=True) as display:
                while not self._stop.wait(1.0):
                    display.update(Text(self.line(), style="bold"))
        else:
            while not self._stop.wait(self.interval):
                logger.info("%s", self.line())

    def __enter__(self) -> StatsReporter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def setup_logging(out: Console, level: str, log_format: str = "text") -> None:
    """Log to stderr at ``level``: ``json`` one object a line (see
    :mod:`sqsw_core.cli.log_format`), else text (rich on a terminal)."""
    root = logging.getLogger()
    root.handlers.clear()
    handler: logging.Handler
    if log_format == "json":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    elif out.is_terminal:
        handler = RichHandler(console=out, show_path=False)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("stevedore").setLevel(logging.ERROR)  # sqsw reports plugin errors


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("queues", nargs=-1, required=True)
@click.option("--app", default=None, help="module:attr of the app's SQSEnv (config app, SQSW_APP).")
@click.option(
    "--processor",
    multiple=True,
    help="Processor plugin name; repeat to compose (first = outermost). Rebuilds the app's.",
)
@click.option("--codec", default=None, help="Codec plugin name (overrides the app's).")
@click.option("--session", default=None, help="Session plugin name (overrides the app's).")
@click.option("--backoff-policy", default=None, help="Backoff plugin name (overrides the app's).")
@click.option("--queue-prefix", default=None, help="Prefix of the SQS queue names.")
@click.option("--concurrency", type=int, default=None, help="Job threads per process (16).")
@click.option("--workers", type=int, default=None, help="Worker processes (1).")
@click.option(
    "--shutdown",
    default=None,
    help="When to stop: never (default), idle=SECONDS, max-tasks=N.",
)
@click.option("--wait-seconds", type=float, default=None, help="Long-poll seconds (10).")
@click.option(
    "--priority",
    type=click.Choice(["strict", "weighted"]),
    default=None,
    help="Several queues: strict (default) or weighted sharing of the job threads.",
)
@click.option(
    "--weights",
    multiple=True,
    help="With --priority weighted: queue shares, NAME=W[,NAME=W...] or repeated (default 1).",
)
@click.option("--prefetch", type=int, default=None, help="Messages held beyond the job threads.")
@click.option("--pollers", type=int, default=None, help="Receiving threads per queue (automatic).")
@click.option(
    "--grace-period", type=float, default=None, help="Seconds a warm stop waits for jobs (30)."
)
@click.option(
    "--max-job-duration",
    type=float,
    default=None,
    help="Seconds a job's visibility is extended, at most (43200).",
)
@click.option(
    "--job-time-limit",
    type=float,
    default=None,
    help="Seconds an async job may run before it is cancelled and retried (no limit).",
)
@click.option(
    "--health-port",
    type=int,
    default=None,
    help="Serve /healthz and /readyz on this port, all interfaces (config health_port).",
)
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    help="Serve Prometheus /metrics on this port, all interfaces (needs sqsw-prometheus).",
)
@click.option(
    "--stats-interval",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds between stats lines when stderr is not a terminal.",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
    default="INFO",
    show_default=True,
    help="Logging level (DEBUG also shows the traceback of an app that fails to load).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="Log lines as text (default) or one JSON object per line (config log_format).",
)
@click.pass_context
def run(
    ctx: click.Context,
    /,
    queues: tuple[str, ...],
    stats_interval: float,
    log_level: str,
    **flags: Any,
) -> None:
    """Run workers for QUEUE... with the app's job functions.

    The app (--app, else config app, else SQSW_APP) is imported first; plugins
    and options from the config file, SQSW_* variables and these flags (later
    wins) then replace the app environment's. One queue runs with
    process_queue, several share the job threads with process_queues.
    """
    check_option("stats_interval", stats_interval, "option --stats-interval")
    settings = run_settings(ctx, flags)
    err = console(stderr=True)
    json_logs = settings.get("log_format") == "json"
    setup_logging(err, log_level, "json" if json_logs else "text")
    with Monitoring(settings) as monitoring:
        plan = plan_run(settings, queues)
        monitoring.instrument(plan)
        run_plan(plan, monitoring, err, stats_interval, json_logs)


def run_plan(
    plan: RunPlan, monitoring: Monitoring, err: Console, stats_interval: float, json_logs: bool
) -> None:
    """Run the planned queues in this process, or in worker processes."""
    logger.info(
        "sqsw run %s: %s, processor %s, %d worker process(es)",
        " ".join(plan.names),
        describe_env(plan.env),
        plan.env.processor_class.__name__,
        plan.workers,
    )
    live = err.is_terminal and not json_logs
    if plan.workers == 1:
        monitoring.serve_process(plan)
        with (
            StatsReporter(plan.names, plan.engine_stats, err, stats_interval, live),
            monitoring.running(plan),
        ):
            plan.run_queues()
    else:
        run_worker_processes(plan, err, stats_interval, live, monitoring)


#: Settings keys of ``sqsw run``'s own flags, applied after the shared ones; an error
#: names the flag (``option --max-job-duration``).
RUN_FLAGS = (
    "weights",
    "prefetch",
    "pollers",
    "grace_period",
    "max_job_duration",
    "job_time_limit",
    "log_format",
    "health_port",
    "metrics_port",
)


def run_settings(ctx: click.Context, flags: dict[str, Any]) -> Settings:
    """The merged settings of ``sqsw run``: config file, ``SQSW_*`` variables, then the
    flags (``--weights`` given several times adds up: ``a=3 --weights b=1``)."""
    flags = dict(flags)
    own = {key: flags.pop(key) for key in RUN_FLAGS}
    own["weights"] = ",".join(own["weights"]) or None
    flags["processor"] = list(flags["processor"]) or None
    settings = settings_for(ctx, **flags)
    settings.update(own, lambda key: f"option --{key.replace('_', '-')}")
    return settings


def describe_env(env: SQSEnv) -> str:
    """The env as the startup line shows it, with the region boto3 resolved (from
    ``AWS_DEFAULT_REGION`` or the profile) when no region was given to sqsw."""
    text = repr(env)
    session = env.session
    if isinstance(session, AWSSession) and session.region_name is None:
        try:
            import boto3

            region = boto3.Session(profile_name=session.profile_name).region_name
        except Exception as exc:  # a profile that does not exist: the run will say so
            region = f"unknown ({type(exc).__name__})"
        text = text.replace("region=default", f"region={region or 'none'}")
    return text


def shutdown_policy_maker(settings: Settings) -> Callable[[], ShutdownPolicy]:
    """The factory of the ``shutdown`` setting's policy; a policy given without the
    number it needs (``idle``) or with one it takes none of (``never=3``) is refused
    naming the form to write (``ConfigurationError``, exit 4)."""
    spec = str(settings.get("shutdown", "never"))
    written, sep, arg = spec.partition("=")
    name = written.strip().replace("-", "_")
    source = settings.source("shutdown")
    try:
        factory = plugins.load(plugins.SHUTDOWN, name)
        parameters = list(inspect.signature(factory).parameters.values())
    except (PluginError, TypeError, ValueError):
        return settings.shutdown_policy_maker()  # its own error names the plugin
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    if required and not arg.strip():
        value = required[0].name.upper()
        raise ConfigurationError(
            f"{source}: shutdown policy {written.strip()!r} needs a number: write "
            f"{written.strip()}={value} (like idle=300 or max-tasks=1000), got {spec!r}"
        )
    if sep and not positional and not any(p.kind is p.VAR_POSITIONAL for p in parameters):
        raise ConfigurationError(
            f"{source}: shutdown policy {written.strip()!r} takes no number: write "
            f"{written.strip()}, got {spec!r}"
        )
    return settings.shutdown_policy_maker()


@dataclass
class RunPlan:
    """What ``sqsw run`` runs: the configured app, its queues and the engine options."""

    env: SQSEnv
    names: list[str]
    policy_maker: Callable[[], ShutdownPolicy]
    wait: float
    engine_options: dict[str, Any]
    priority: str
    workers: int
    #: ``priority="weighted"``: each queue's share (``None``: 1 each).
    weights: dict[str, float] | None = None

    def engine_stats(self) -> list[EngineStats]:
        """The counters of the engines running in this process."""
        return [stats for name in self.names for stats in self.env.queue(name).engine_stats()]

    def run_queues(self) -> None:
        """Run the queues until they stop (one process): process_queue, else process_queues."""
        if len(self.names) == 1:
            stats = self.env.queue(self.names[0]).process_queue(
                self.policy_maker(), self.wait, **self.engine_options
            )
            logger.info("Stopped %s: %s", self.names[0], stats)
            return
        options = dict(self.engine_options)
        concurrency = options.pop("concurrency", 16)
        shares = ", ".join(f"{n}={(self.weights or {}).get(n, 1.0):g}" for n in self.names)
        logger.info(
            "Sharing %d job threads between %s: priority %s%s",
            concurrency,
            ", ".join(self.names),
            self.priority,
            f" ({shares})" if self.priority == "weighted" else "",
        )
        result = self.env.process_queues(
            self.names,
            self.policy_maker,
            self.wait,
            concurrency=concurrency,
            priority=self.priority,
            weights=self.weights,
            **options,
        )
        for name, stats in result.items():
            logger.info("Stopped %s: %s", name, stats)


def plan_run(settings: Settings, queues: tuple[str, ...]) -> RunPlan:
    """Import the app, apply ``settings`` to its env and check that every queue exists.

    Raises before any worker starts: the app cannot be imported (exit 3), a plugin
    or option is wrong (exit 4), a queue is missing or SQS refuses (exit 5).
    """
    env = load_app(settings)
    policy_maker = shutdown_policy_maker(settings)
    names = list(queues)
    for name in names:
        env.queue(name).url  # noqa: B018 - fail now (exit 5) if a queue is missing
    engine_options: dict[str, Any] = {
        key: settings.get(key) for key in ENGINE_KEYS if settings.get(key) is not None
    }
    priority = str(settings.get("priority", "strict"))
    weights = run_weights(settings, names, priority)
    workers = int(settings.get("workers", 1))
    if workers > 1:  # the worker processes stop together
        engine_options["shared_stop"] = True
    return RunPlan(
        env=env,
        names=names,
        policy_maker=policy_maker,
        wait=float(settings.get("wait_seconds", 10)),
        engine_options=engine_options,
        priority=priority,
        workers=workers,
        weights=weights,
    )


def run_weights(settings: Settings, names: list[str], priority: str) -> dict[str, float] | None:
    """The configured queue weights, checked against ``names`` (exit 4 naming the flag,
    variable or key): weights name queues being run, and only ``weighted`` uses them."""
    weights: dict[str, float] | None = settings.get("weights")
    if weights is None:
        return None
    if priority != "weighted":
        raise ConfigurationError(
            f"{settings.source('weights')}: weights apply only with priority 'weighted' "
            f"(--priority weighted, SQSW_PRIORITY or key 'priority'), not {priority!r}"
        )
    concurrency = settings.get("concurrency", 16)
    check_queues_options(
        names, concurrency=concurrency, priority=priority, weights=weights, source=settings.source
    )
    return weights


def run_worker_processes(
    plan: RunPlan,
    err: Console,
    stats_interval: float,
    live: bool = True,
    monitoring: Monitoring | None = None,
) -> None:
    """Run ``plan`` in ``plan.workers`` forked processes under a :class:`Supervisor`.

    The engines run in the children; the supervisor sums what they publish and
    releases what a child that died held. Exit 4 if the session cannot be shared
    by processes, exit 1 if a worker process crashed during the run.
    """
    env, names = plan.env, plan.names
    if is_process_local(env.session):
        raise CliError(
            f"--workers {plan.workers}: the session {env.session!r} keeps its queues in this "
            "process, so worker processes cannot share them; use --concurrency instead",
            EXIT_PLUGIN,
        )
    target: Callable[[], None] = plan.run_queues
    options: dict[str, Any] = {}
    if monitoring is not None:
        options = monitoring.supervisor_options(plan)
        watched = monitoring

        def in_worker() -> None:
            with watched.worker(plan):
                plan.run_queues()

        target = in_worker

    supervisor = for_queues(
        env,
        [env.queue(name) for name in names],
        target,
        plan.workers,
        name="+".join(names),
        stats=plan.engine_stats,
        wait_seconds=plan.wait,
        **options,
    )
    if monitoring is not None:
        monitoring.serve_supervisor(supervisor)
    live = live and err.is_terminal
    with StatsReporter(names, lambda: [supervisor.totals()], err, stats_interval, live):
        crashed = supervisor.run()
    logger.info(
        "Stopped %s (%d worker processes): %s", ", ".join(names), plan.workers, supervisor.totals()
    )
    if crashed:  # during the run, restarted or not, even if the stop was clean
        raise CliError(f"{crashed} worker process(es) crashed during the run", EXIT_ERROR)
