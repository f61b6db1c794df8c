"""Several queues in one process, sharing job threads: ``SQSEnv.process_queues``."""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sqsw_core.engine import QueueEngine
from sqsw_core.exceptions import ConfigurationError
from sqsw_core.shutdown_policies import NeverShutdown, ShutdownPolicy
from sqsw_core.slots import SlotAllocator
from sqsw_core.stop_signals import StopSignals

if TYPE_CHECKING:
    from sqsw_core.queue import GenericQueue
    from sqsw_core.results import EngineStats

logger = logging.getLogger("sqsw.multi_queue")


def is_shutdown_policy(obj: object) -> bool:
    """A policy object (not a class: a class is a maker of policies)."""
    return not isinstance(obj, type) and isinstance(obj, ShutdownPolicy)


def policy_maker(
    shutdown_policy_maker: Any, shutdown_policy: ShutdownPolicy | None
) -> Callable[[], ShutdownPolicy]:
    """The factory of each queue's shutdown policy, from either argument of ``process_queues``.

    A policy object counts or times what its queue did (``IdleShutdown``,
    ``MaxTasksShutdown``): shared, one busy queue would keep an idle one
    running, and the queues' tasks would add up. Each queue gets a copy
    instead, as ``process_queue(shutdown_policy=...)`` gives its one queue.
    A policy given in place of the maker (``process_queues(names, IdleShutdown(5))``)
    is taken the same way.
    """
    if shutdown_policy is None and is_shutdown_policy(shutdown_policy_maker):
        shutdown_policy_maker, shutdown_policy = NeverShutdown, shutdown_policy_maker
    if shutdown_policy is None:
        if not callable(shutdown_policy_maker):
            raise ConfigurationError(
                f"shutdown_policy_maker={shutdown_policy_maker!r} is not a callable returning "
                "a shutdown policy: pass e.g. lambda: IdleShutdown(5), or shutdown_policy="
            )
        return shutdown_policy_maker  # type: ignore[no-any-return]
    if shutdown_policy_maker is not NeverShutdown:
        raise ConfigurationError(
            "give either shutdown_policy= (copied for each queue) or shutdown_policy_maker=, "
            "not both"
        )
    if not is_shutdown_policy(shutdown_policy):
        raise ConfigurationError(
            f"shutdown_policy={shutdown_policy!r} is not a shutdown policy "
            "(update_state and need_shutdown methods), e.g. IdleShutdown(5)"
        )
    policy = shutdown_policy
    return lambda: copy.deepcopy(policy)


def process_queues(
    queues: list[GenericQueue],
    shutdown_policy_maker: Callable[[], ShutdownPolicy],
    wait_seconds: float,
    *,
    concurrency: int,
    priority: str,
    weights: Mapping[str, float] | None,
    **engine_options: Any,
) -> dict[str, EngineStats]:
    """Run an engine per queue, sharing ``concurrency`` job slots.

    See :meth:`sqsw_core.env.SQSEnv.process_queues`; returns each queue's counters.
    """
    names = [queue.name for queue in queues]
    slots = SlotAllocator(concurrency, names, priority, weights)
    engines = {
        queue.name: QueueEngine(
            queue,
            concurrency=concurrency,
            shutdown_policy=shutdown_policy_maker(),
            wait_seconds=wait_seconds,
            handle_signals=False,
            slots=slots,
            **engine_options,
        )
        for queue in queues
    }
    errors = _run_all(queues, engines)
    if errors:
        raise errors[0]
    return {name: engine.stats for name, engine in engines.items()}


def _run_all(
    queues: Iterable[GenericQueue], engines: dict[str, QueueEngine]
) -> list[BaseException]:
    """Run every engine in a thread of its own until all have stopped; their errors."""
    errors: list[BaseException] = []

    def run(queue: GenericQueue) -> None:
        try:
            queue.run_engine(engines[queue.name])
        except BaseException as exc:  # reported after every queue stopped
            logger.exception("The engine of queue %s stopped with an error", queue.name)
            errors.append(exc)
            for other in engines.values():
                other.request_stop()

    def on_stop(cold: bool) -> None:
        for engine in engines.values():
            engine.request_stop(cold=cold)

    threads = [
        threading.Thread(target=run, args=(queue,), name=f"sqsw-queue-{queue.name}")
        for queue in queues
    ]
    # One reader of stop signals for all the queues (installed from the main
    # thread only): the first is a warm stop of every queue, a later one cold.
    with StopSignals(on_stop, f"{len(engines)} queue(s)"):
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():  # a timed join lets signal handlers run
                thread.join(0.2)
    return errors
