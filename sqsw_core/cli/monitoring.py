"""``sqsw run --health-port`` and ``--metrics-port``: health checks and a metrics exporter.

Both listen on all interfaces (``0.0.0.0``), as Kubernetes probes and
Prometheus need. The health server is the core's own (:mod:`sqsw_core.health`);
the metrics exporter is the ``sqsw.metrics`` plugin ``prometheus``
(:mod:`sqsw_core.metrics`), loaded only when a metrics port is given. Both bind
before the app is imported, so a port in use fails at once.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from sqsw_core import plugins
from sqsw_core.cli.common import EXIT_PLUGIN, CliError
from sqsw_core.exceptions import PluginError
from sqsw_core.health import HealthServer, Report, process_report, sqs_window, workers_report
from sqsw_core.metrics import METRICS_PLUGIN, MetricsExporter, is_metrics_exporter

if TYPE_CHECKING:
    from sqsw_core.cli.run import RunPlan
    from sqsw_core.config import Settings
    from sqsw_core.supervisor import Supervisor

logger = logging.getLogger("sqsw.cli")

__all__ = ["Monitoring"]


def _listen_error(what: str, port: int, exc: OSError) -> CliError:
    return CliError(
        f"{what} {port}: cannot listen on 0.0.0.0:{port}: {exc.strerror or exc}; "
        "choose a free port",
        EXIT_PLUGIN,
    )


def load_exporter(settings: Settings, port: int, workers: int) -> MetricsExporter:
    """The ``sqsw.metrics`` plugin's exporter for ``port`` (exit 4 if not installed)."""
    source = settings.source("metrics_port")
    try:
        factory = plugins.load(plugins.METRICS, METRICS_PLUGIN)
    except PluginError as exc:
        raise CliError(f"{source}: serving metrics needs a plugin. {exc}", EXIT_PLUGIN) from None
    exporter: MetricsExporter = factory(port=port, workers=workers)
    if not is_metrics_exporter(exporter):
        raise CliError(
            f"{source}: {exporter!r} (from the {plugins.METRICS} plugin "
            f"{METRICS_PLUGIN!r}) is not a metrics exporter",
            EXIT_PLUGIN,
        )
    return exporter


class Monitoring:
    """The health server and metrics exporter of one ``sqsw run`` (either may be absent)."""

    def __init__(self, settings: Settings) -> None:
        self.health: HealthServer | None = None
        self.metrics: MetricsExporter | None = None
        self.started = time.monotonic()
        workers = int(settings.get("workers", 1))
        health_port = settings.get("health_port")
        metrics_port = settings.get("metrics_port")
        if health_port is not None and health_port == metrics_port:
            raise CliError(
                f"{settings.source('metrics_port')}: the metrics port {metrics_port} is also "
                f"the health port ({settings.source('health_port')}); give two ports",
                EXIT_PLUGIN,
            )
        if metrics_port is not None:
            self.metrics = load_exporter(settings, metrics_port, workers)
        try:
            if health_port is not None:
                try:
                    self.health = HealthServer(health_port).start()
                except OSError as exc:
                    raise _listen_error(settings.source("health_port"), health_port, exc) from None
            if self.metrics is not None:
                try:
                    self.metrics.start()
                except OSError as exc:
                    raise _listen_error(
                        settings.source("metrics_port"), metrics_port, exc
                    ) from None
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.health is not None:
            self.health.close()
        if self.metrics is not None:
            self.metrics.close()

    def __enter__(self) -> Monitoring:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def instrument(self, plan: RunPlan) -> None:
        """The app is loaded: measure its jobs and SQS calls."""
        if self.metrics is not None:
            self.metrics.instrument(plan.env)

    def _process_probe(self, plan: RunPlan) -> Callable[[], Report]:
        queues = [plan.env.queue(name) for name in plan.names]
        window = sqs_window(plan.wait)
        return lambda: process_report(queues, window, self.started)

    def serve_process(self, plan: RunPlan) -> None:
        """One process runs the engines: report on them."""
        if self.health is not None:
            self.health.probe = self._process_probe(plan)

    def serve_supervisor(self, supervisor: Supervisor) -> None:
        """Worker processes run the engines: report on them through the supervisor."""
        if self.health is not None:
            self.health.probe = lambda: workers_report(supervisor.reports(), supervisor.stopping)

    def supervisor_options(self, plan: RunPlan) -> dict[str, Any]:
        """``report`` and ``on_exit`` for the supervisor of ``plan``'s worker processes."""
        options: dict[str, Any] = {}
        if self.health is not None:
            options["report"] = self._process_probe(plan)
        if self.metrics is not None:
            options["on_exit"] = self.metrics.worker_exited
        return options

    def running(self, plan: RunPlan) -> AbstractContextManager[object]:
        """Around the run of ``plan``'s queues in a worker process."""
        if self.metrics is None:
            return contextlib.nullcontext()
        return self.metrics.running(plan.env, plan.names)

    @contextlib.contextmanager
    def worker(self, plan: RunPlan) -> Iterator[None]:
        """In a forked worker process: its own clock for the SQS window, and not the
        supervisor's listening socket (a worker left behind must not keep the port)."""
        self.started = time.monotonic()
        if self.health is not None:
            self.health.close()  # this process's copy; the supervisor's serves on
        with self.running(plan):
            yield
