"""One background loop for the service's periodic work (dispatcher, scheduler, webhook deliveries)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class WakeableLoop:
    """Calls ``step`` every ``interval_s`` seconds, or at once when woken, in a daemon thread until stopped.

    A round that raises is logged and the next one runs: a database restarting must not end the loop.
    ``stopping`` is set from the moment :meth:`stop` is called (owners check it to refuse new work).
    """

    def __init__(self, name: str, step: Callable[[], object], interval_s: float) -> None:
        self.name, self.step, self.interval_s = name, step, interval_s
        self.stopping = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread."""
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Run the next round now."""
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop after the current round (waits up to ``timeout_s`` for it)."""
        self.stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.step()
            except Exception:
                log.exception("%s: round failed", self.name)
            self._wake.wait(self.interval_s)
            self._wake.clear()
