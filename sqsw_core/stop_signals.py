"""Stop signals: how a worker process reads SIGTERM, SIGINT, SIGHUP and SIGQUIT.

- The first SIGTERM, SIGINT or SIGHUP asks for a **warm stop** (no new
  receives, running jobs finish, the rest is released once).
- A repeat that arrives within :data:`REPEAT_WINDOW` seconds of the first is
  the same stop seen twice, and is ignored: a terminal's Ctrl+C, systemd's
  ``KillMode=control-group`` and a supervisor forwarding the signal all reach
  every process of the group at once, and one event must not become a cold stop.
- A later one, or SIGQUIT at any time, asks for a **cold stop** (running jobs
  are abandoned and their messages released at once).

One :class:`StopSignals` serves the engine, ``process_queues`` and the
supervisor of worker processes, so they all read signals the same way.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

logger = logging.getLogger("sqsw.signals")

#: Seconds after the first stop signal during which repeats are ignored.
REPEAT_WINDOW = 1.0
#: Signals that ask for a stop (warm first, cold when repeated later).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: The signal that always asks for a cold stop.
COLD_SIGNAL = signal.SIGQUIT


class StopSignals:
    """Installs stop-signal handlers that call ``on_stop(cold)``; a context manager.

    Handlers are installed only from the main thread (Python delivers signals
    there); elsewhere this does nothing and the caller stops by other means.
    """

    def __init__(
        self,
        on_stop: Callable[[bool], None],
        what: str,
        *,
        repeat_window: float = REPEAT_WINDOW,
    ) -> None:
        self.on_stop = on_stop
        self.what = what
        self.repeat_window = repeat_window
        self.first_at: float | None = None
        self.cold = False
        self._previous: dict[int, Any] = {}

    def install(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum in (*STOP_SIGNALS, COLD_SIGNAL):
            self._previous[signum] = signal.signal(signum, self.handle)
        return self

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def __enter__(self) -> StopSignals:
        return self.install()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.restore()

    def handle(self, signum: int, frame: FrameType | None = None) -> None:
        """What a signal means now: warm stop, ignored repeat or cold stop."""
        name = signal.Signals(signum).name
        now = time.monotonic()
        if signum == COLD_SIGNAL:
            cold = True
        elif self.first_at is None:
            self.first_at = now
            cold = False
        elif now - self.first_at < self.repeat_window:
            logger.info(
                "%s received %.2f s after the first stop signal: the same stop, ignored "
                "(send it again after %.0f s for a cold stop)",
                name,
                now - self.first_at,
                self.repeat_window,
            )
            return
        else:
            cold = True
        if self.first_at is None:
            self.first_at = now
        if cold and self.cold:
            return  # already stopping cold
        self.cold = self.cold or cold
        logger.warning("%s received: %s stop of %s", name, "cold" if cold else "warm", self.what)
        self.on_stop(cold)
