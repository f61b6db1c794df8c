"""``sqsw run``: import the app, apply the configuration, run the workers, show progress."""

from __future__ import annotations

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

from sqsw_core.cli.common import (
    EXIT_CODES_HELP,
    EXIT_ERROR,
    EXIT_PLUGIN,
    CliError,
    console,
    load_app,
    settings_for,
)
from sqsw_core.config import Settings
from sqsw_core.engine_options import check_option
from sqsw_core.env import SQSEnv
from sqsw_core.results import EngineStats
from sqsw_core.sessions import is_process_local
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


def setup_logging(out: Console, level: str) -> None:
    root = logging.getLogger()
    root.handlers.clear()
    if out.is_terminal:
        handler: logging.Handler = RichHandler(console=out, show_path=False)
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
@click.pass_context
def run(
    ctx: click.Context,
    queues: tuple[str, ...],
    app: str | None,
    processor: tuple[str, ...],
    codec: str | None,
    session: str | None,
    backoff_policy: str | None,
    queue_prefix: str | None,
    concurrency: int | None,
    workers: int | None,
    shutdown: str | None,
    wait_seconds: float | None,
    priority: str | None,
    stats_interval: float,
    log_level: str,
) -> None:
    """Run workers for QUEUE... with the app's job functions.

    The app (--app, else config app, else SQSW_APP) is imported first; plugins
    and options from the config file, SQSW_* variables and these flags (later
    wins) then replace the app environment's. One queue runs with
    process_queue, several share the job threads with process_queues.
    """
    check_option("stats_interval", stats_interval, "option --stats-interval")
    settings = settings_for(
        ctx,
        app=app,
        processor=list(processor) or None,
        codec=codec,
        session=session,
        backoff_policy=backoff_policy,
        queue_prefix=queue_prefix,
        concurrency=concurrency,
        workers=workers,
        shutdown=shutdown,
        wait_seconds=wait_seconds,
        priority=priority,
    )
    err = console(stderr=True)
    setup_logging(err, log_level)
    plan = plan_run(settings, queues)
    logger.info(
        "sqsw run %s: %s, processor %s, %d worker process(es)",
        " ".join(plan.names),
        plan.env,
        plan.env.processor_class.__name__,
        plan.workers,
    )
    if plan.workers == 1:
        with StatsReporter(plan.names, plan.engine_stats, err, stats_interval, err.is_terminal):
            plan.run_queues()
    else:
        run_worker_processes(plan, err, stats_interval)


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
        result = self.env.process_queues(
            self.names,
            self.policy_maker,
            self.wait,
            concurrency=options.pop("concurrency", 16),
            priority=self.priority,
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
    policy_maker = settings.shutdown_policy_maker()
    names = list(queues)
    for name in names:
        env.queue(name).url  # noqa: B018 - fail now (exit 5) if a queue is missing
    engine_options: dict[str, Any] = {
        key: settings.get(key) for key in ENGINE_KEYS if settings.get(key) is not None
    }
    workers = int(settings.get("workers", 1))
    if workers > 1:  # the worker processes stop together
        engine_options["shared_stop"] = True
    return RunPlan(
        env=env,
        names=names,
        policy_maker=policy_maker,
        wait=float(settings.get("wait_seconds", 10)),
        engine_options=engine_options,
        priority=str(settings.get("priority", "strict")),
        workers=workers,
    )


def run_worker_processes(plan: RunPlan, err: Console, stats_interval: float) -> None:
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
    supervisor = for_queues(
        env,
        [env.queue(name) for name in names],
        plan.run_queues,
        plan.workers,
        name="+".join(names),
        stats=plan.engine_stats,
        wait_seconds=plan.wait,
    )
    with StatsReporter(names, lambda: [supervisor.totals()], err, stats_interval, err.is_terminal):
        crashed = supervisor.run()
    logger.info(
        "Stopped %s (%d worker processes): %s", ", ".join(names), plan.workers, supervisor.totals()
    )
    if crashed:  # during the run, restarted or not, even if the stop was clean
        raise CliError(f"{crashed} worker process(es) crashed during the run", EXIT_ERROR)
