"""``sqsw run``: import the app, apply the configuration, run the workers, show progress."""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.logging import RichHandler
from rich.text import Text

from sqsw_core.cli.common import (
    EXIT_CODES_HELP,
    EXIT_ERROR,
    CliError,
    console,
    import_app,
    settings_for,
)
from sqsw_core.env import SQSEnv

logger = logging.getLogger("sqsw.cli")

#: Settings that become keyword arguments of the engine.
ENGINE_KEYS = ("concurrency", "prefetch", "pollers", "grace_period", "max_job_duration")


class StatsReporter:
    """Shows the engines' live counters: a rich Live line on a terminal, else log lines."""

    def __init__(
        self, env: SQSEnv, queue_names: list[str], out: Console, interval: float, live: bool
    ) -> None:
        self.env = env
        self.queue_names = queue_names
        self.out = out
        self.interval = interval
        self.live = live
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sqsw-stats", daemon=True)
        self._last: tuple[float, int] = (time.monotonic(), 0)

    def line(self) -> str:
        """One line for all queues: throughput, in flight, failed, retried, redelivered."""
        done = failed = retried = redelivered = in_flight = released = 0
        running = 0
        for name in self.queue_names:
            queue = self.env.queues.get(name)
            engine = queue.engine if queue is not None else None
            if engine is None:
                continue
            running += 1
            stats = engine.stats
            settled = stats.succeeded + stats.failed + stats.retried
            done += settled
            failed += stats.failed
            retried += stats.retried
            redelivered += stats.redelivered
            # Received and not settled yet (stats.in_flight also counts receives under way).
            in_flight += max(0, stats.received - settled - stats.released)
            released += stats.released
        now = time.monotonic()
        since, before = self._last
        rate = (done - before) / max(1e-9, now - since)
        self._last = (now, done)
        if not running:
            return f"{', '.join(self.queue_names)}: starting"
        return (
            f"{', '.join(self.queue_names)}: {done} jobs done ({rate:.1f}/s) | in flight "
            f"{in_flight} | failed {failed} | retried {retried} | redelivered {redelivered} "
            f"| released {released}"
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
@click.option("--log-level", default="INFO", show_default=True, help="Logging level.")
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
    env = import_app(settings.get("app"), settings.source("app"))
    env.reconfigure(**settings.env_options())
    policy_maker = settings.shutdown_policy_maker()
    names = list(queues)
    for name in names:
        env.queue(name).url  # noqa: B018 - fail now (exit 5) if a queue is missing
    engine_options: dict[str, Any] = {
        key: settings.get(key) for key in ENGINE_KEYS if settings.get(key) is not None
    }
    n_workers = int(settings.get("workers", 1))
    wait = float(settings.get("wait_seconds", 10))
    if n_workers < 1:
        raise click.BadParameter(f"must be >= 1, got {n_workers}", param_hint="--workers")
    logger.info(
        "sqsw run %s: %s, processor %s, %d worker process(es)",
        " ".join(names),
        env,
        env.processor_class.__name__,
        n_workers,
    )
    # With worker processes the engines run in the children, which log their own counters.
    reporter = StatsReporter(env, names, err, stats_interval, err.is_terminal)
    crashed = 0
    with reporter if n_workers == 1 else contextlib.nullcontext():
        if len(names) == 1:
            stats = env.queue(names[0]).process_queue(
                policy_maker(), wait, workers=n_workers, **engine_options
            )
            if stats is not None:
                logger.info("Stopped %s: %s", names[0], stats)
        else:

            def run_all() -> None:
                concurrency = engine_options.pop("concurrency", 16)
                result = env.process_queues(
                    names,
                    policy_maker,
                    wait,
                    concurrency=concurrency,
                    priority=str(settings.get("priority", "strict")),
                    **engine_options,
                )
                for name, stats in result.items():
                    logger.info("Stopped %s: %s", name, stats)

            if n_workers == 1:
                run_all()
            else:
                from sqsw_core.supervisor import Supervisor

                crashed = Supervisor(run_all, n_workers, name="+".join(names)).run()
    if crashed:
        raise CliError(f"{crashed} worker process(es) crashed", EXIT_ERROR)
