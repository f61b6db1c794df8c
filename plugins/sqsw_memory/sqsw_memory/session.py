"""MemorySession: a drop-in for ``boto3.Session`` that makes in-memory SQS clients."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Literal, overload

from botocore.exceptions import UnknownServiceError

from sqsw_memory.client import MemorySQSClient
from sqsw_memory.cloudwatch import MemoryCloudWatchClient
from sqsw_memory.ids import IdFactory
from sqsw_memory.registry import Registry

__all__ = ["MemorySession"]


class MemorySession:
    """An in-memory SQS "account": ``MemorySession().client("sqs")`` works like boto3's.

    All clients of one session share its queues (per region, as on AWS); two
    sessions never see each other's. ``clock`` (monotonic seconds) drives delays,
    visibility timeouts, retention and long polls; ``wall_clock`` (epoch seconds)
    gives timestamps. Inject fakes to make time-dependent tests exact: a long poll
    waits until the injected clock reaches its end, bounded by real
    ``WaitTimeSeconds`` so a frozen fake clock cannot hang it.
    """

    #: The queues live in this process: worker processes forked from it would
    #: each get a copy, so sqsw refuses ``workers=N`` on this session.
    process_local = True

    def __init__(
        self,
        region_name: str = "us-east-1",
        account_id: str = "000000000000",
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.region_name = region_name
        self.account_id = account_id
        self.clock = clock
        self.wall_clock = wall_clock
        self._message_ids = IdFactory()
        self._request_ids = IdFactory()
        self._lock = threading.Lock()
        self._registries: dict[str, Registry] = {}

    def registry(self, region_name: str | None = None) -> Registry:
        """The queues of one region of this session's account."""
        region = region_name or self.region_name
        registry = self._registries.get(region)
        if registry is None:
            with self._lock:
                registry = self._registries.get(region)
                if registry is None:
                    registry = Registry(
                        region, self.account_id, self.clock, self.wall_clock, self._message_ids
                    )
                    self._registries[region] = registry
        return registry

    @overload
    def client(
        self, service_name: Literal["sqs"] = ..., region_name: str | None = ..., **kwargs: Any
    ) -> MemorySQSClient: ...

    @overload
    def client(
        self, service_name: Literal["cloudwatch"], region_name: str | None = ..., **kwargs: Any
    ) -> MemoryCloudWatchClient: ...

    @overload
    def client(self, service_name: str, region_name: str | None = ..., **kwargs: Any) -> Any: ...

    def client(
        self, service_name: str = "sqs", region_name: str | None = None, **kwargs: Any
    ) -> Any:
        """An SQS client (or a CloudWatch one for the queues' metrics).

        boto3's other arguments (endpoint, credentials, config) are ignored.
        """
        if service_name == "sqs":
            return MemorySQSClient(self, self.registry(region_name))
        if service_name == "cloudwatch":
            return MemoryCloudWatchClient(self.registry(region_name))
        raise UnknownServiceError(
            service_name=service_name, known_service_names=", ".join(self.SERVICES)
        )

    #: What :meth:`client` makes clients for.
    SERVICES = ("cloudwatch", "sqs")

    def get_available_services(self) -> list[str]:
        """Like ``boto3.Session``: the services this session can make clients for."""
        return list(self.SERVICES)

    def __repr__(self) -> str:
        return f"MemorySession(region_name={self.region_name!r}, account_id={self.account_id!r})"
