"""``PrometheusExporter``: what ``sqsw run --metrics-port`` drives (see
:mod:`sqsw_core.metrics` for the order of the calls)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqsw_core.sqs_api import ACTIVITY

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from sqsw_core.env import SQSEnv
    from sqsw_prometheus.instruments import Instruments

__all__ = ["MULTIPROC_VARIABLE", "PrometheusExporter"]

#: The variable that puts prometheus_client in multiprocess mode (a directory).
MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


class PrometheusExporter:
    """Serves ``/metrics`` on ``0.0.0.0:port``.

    One worker process: the default registry, so metrics the app defines with
    prometheus_client are served too, with the process and Python collectors.
    ``workers > 1``: prometheus_client's multiprocess mode in a fresh directory
    (``PROMETHEUS_MULTIPROC_DIR``, set before the app is imported, so the app's
    own metrics are summed over the processes too); the supervisor serves the
    sum over every worker process, those that ended included (in-flight gauges:
    live processes only).
    """

    def __init__(self, port: int, workers: int = 1, addr: str = "0.0.0.0") -> None:
        self.port = port
        self.workers = workers
        self.addr = addr
        self.directory: str | None = None
        self.instruments: Instruments | None = None
        self._server: Any = None
        self._previous_variable: str | None = None
        self._listener: Any = None
        self._pid = os.getpid()

    def _registry(self) -> CollectorRegistry:
        """The registry to serve; sets up the multiprocess mode first when needed."""
        if self.workers <= 1:
            from prometheus_client import REGISTRY

            return REGISTRY
        self.directory = tempfile.mkdtemp(prefix="sqsw-prometheus-")
        self._previous_variable = os.environ.get(MULTIPROC_VARIABLE)
        os.environ[MULTIPROC_VARIABLE] = self.directory
        from prometheus_client import CollectorRegistry, multiprocess, values

        # Already imported by someone: metrics made from now on use the files.
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.directory)  # type: ignore[no-untyped-call]
        return registry

    def start(self) -> None:
        from prometheus_client import start_http_server

        from sqsw_prometheus.instruments import Instruments

        self._pid = os.getpid()
        registry = self._registry()
        try:
            self._server, _thread = start_http_server(self.port, addr=self.addr, registry=registry)
            # The worker processes count into the default registry (files in multiprocess mode).
            self.instruments = Instruments()
        except BaseException:
            self.close()
            raise

    def instrument(self, env: SQSEnv) -> None:
        """Put :class:`~sqsw_prometheus.processor.MetricsProcessor` outermost around
        ``env``'s processors; count failed SQS calls."""
        from sqsw_prometheus.processor import MetricsProcessor

        assert self.instruments is not None, "start() first"
        classes = [c for c in env.processor_hooks.classes if not issubclass(c, MetricsProcessor)]
        env.reconfigure(processor=[MetricsProcessor.using(self.instruments), *classes])
        if self._listener is None:
            self._listener = self.instruments.sqs_error
            ACTIVITY.error_listeners.append(self._listener)

    @contextmanager
    def running(self, env: SQSEnv, queue_names: Sequence[str]) -> Iterator[None]:
        from sqsw_prometheus.sampler import StatsSampler

        assert self.instruments is not None, "start() first"
        if self._server is not None and os.getpid() != self._pid:
            # A forked worker process: close its copy of the supervisor's listening
            # socket (a worker left behind must not keep the port); the supervisor serves.
            self._server.server_close()
            self._server = None
        with StatsSampler(self.instruments, env, queue_names):
            yield

    def worker_exited(self, pid: int) -> None:
        if self.directory is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid, self.directory)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        if os.getpid() != self._pid:
            return  # a forked worker process: the supervisor owns the server and files
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._listener is not None:
            try:
                ACTIVITY.error_listeners.remove(self._listener)
            except ValueError:
                pass
            self._listener = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            if self._previous_variable is None:
                os.environ.pop(MULTIPROC_VARIABLE, None)
            else:
                os.environ[MULTIPROC_VARIABLE] = self._previous_variable
            self.directory = None
