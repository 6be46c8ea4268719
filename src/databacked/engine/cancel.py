"""Stopping a run on SIGINT or SIGTERM: finish what runs, record it, release leases, exit.

The first signal asks the dispatcher to stop: queued calls are cancelled, running ones get a
grace period (``--grace``, default 10 s), finished calls are committed and leases released,
then :class:`RunCancelled` ends the run (exit 130 for SIGINT, 143 for SIGTERM). A second
signal raises ``KeyboardInterrupt`` at once. A rerun computes only what had not finished.

Handlers are installed only from the main thread and only where nobody installed their own
(a watcher keeps its own handling), and the previous handlers come back afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from typing import Any

GRACE = 10.0
"""Seconds running calls get to finish after the first signal."""
log = logging.getLogger("databacked.engine.cancel")


class RunCancelled(KeyboardInterrupt):
    """A run stopped on a signal after recording what had finished."""

    def __init__(self, signum: int, finished: int, cancelled: int) -> None:
        self.signum, self.finished, self.cancelled = signum, finished, cancelled
        self.exit_code = 128 + signum
        name = signal.Signals(signum).name
        self.summary = (
            f"Stopped on {name}: {finished} call(s) finished and recorded, {cancelled} not run; "
            "run again to compute the rest."
        )
        super().__init__(self.summary)


class Stop:
    """A stop request, set by a signal handler (or by any thread calling :meth:`request`)."""

    def __init__(self, grace: float = GRACE) -> None:
        self.grace = float(grace)
        self.signum: int | None = None
        self._event = threading.Event()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def request(self, signum: int = signal.SIGINT) -> None:
        if self.signum is None:
            self.signum = signum
        self._event.set()


@contextlib.contextmanager
def on_signals(stop: Stop) -> Iterator[Stop]:
    """SIGINT/SIGTERM set ``stop`` while the block runs; a second signal interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    previous = {s: signal.getsignal(s) for s in defaults}
    mine = [s for s, h in previous.items() if h == defaults[s]]

    def handler(signum: int, _frame: Any) -> None:
        if stop.requested:
            raise KeyboardInterrupt  # the second signal: stop now
        log.warning(
            "%s: stopping after the running calls (up to %g s); again to stop at once",
            signal.Signals(signum).name,
            stop.grace,
        )
        stop.request(signum)

    for s in mine:
        signal.signal(s, handler)
    try:
        yield stop
    finally:
        for s in mine:
            signal.signal(s, previous[s])


__all__ = ["GRACE", "RunCancelled", "Stop", "on_signals"]
