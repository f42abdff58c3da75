"""Progress of a job: the sink protocol callers implement, and the event log a job driver keeps.

A job driver (a Ray actor) appends plain events to an :class:`EventLog`; whoever watches the job polls
``since(index)`` and forwards each event to its :class:`ProgressSink` (the service's job store, the
CLI's progress bar). Events are flat dicts of JSON scalars so they cross process boundaries and go
into a database column unchanged.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from mlac.contracts import JobOutcome
from mlac.job_failure import JobFailure

#: Job end states reported to :meth:`ProgressSink.finished`.
SUCCEEDED, FAILED, CANCELLED = "SUCCEEDED", "FAILED", "CANCELLED"


class ProgressSink(Protocol):
    """Where job progress goes (the service's job store implements this)."""

    def event(self, job_id: str, event: dict[str, Any]) -> None:
        """A progress event (stage, trials done/total, best so far, ...)."""

    def finished(self, job_id: str, outcome: JobOutcome) -> None:
        """The job ended: SUCCEEDED (with where the result is and the audit's verdict), FAILED (with a one-line
        cause and the traceback) or CANCELLED."""


class CallbackSink:
    """A sink from two callables (the CLI's progress bar); ``on_finished`` gets the outcome's parts
    ``(job_id, state, result_path, failure)``."""

    def __init__(self, on_event: Callable[[str, dict[str, Any]], None],
                 on_finished: Callable[[str, str, str | None, JobFailure | None], None]) -> None:
        self.on_event, self.on_finished = on_event, on_finished

    def event(self, job_id: str, event: dict[str, Any]) -> None:
        """Forward a progress event."""
        self.on_event(job_id, event)

    def finished(self, job_id: str, outcome: JobOutcome) -> None:
        """Forward the end of the job."""
        self.on_finished(job_id, outcome.state, outcome.result_path, outcome.failure)


def plain_event(event: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """``event`` reduced to JSON scalars (non-finite floats become None), stamped with ``t``."""
    clean: dict[str, Any] = {}
    for key, value in event.items():
        if isinstance(value, float) and not math.isfinite(value):
            clean[key] = None
        elif isinstance(value, (int, float, str, bool, type(None))):
            clean[key] = value
    clean["t"] = time.time() if now is None else now
    return clean


class EventLog:
    """Thread-safe, append-only list of plain events plus the best harmful accuracy seen so far."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self.best_harmful: float | None = None

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        """Record ``event`` (made plain); a finished harmful search updates ``best_harmful`` and the event
        carries it as ``best_harmful_so_far``."""
        clean = plain_event(event)
        best = clean.get("best_so_far")
        with self._lock:
            if clean.get("task") == "harmful" and isinstance(best, (int, float)):
                self.best_harmful = float(best) if self.best_harmful is None else max(self.best_harmful, float(best))
            if self.best_harmful is not None:
                clean["best_harmful_so_far"] = self.best_harmful
            self._events.append(clean)
        return clean

    def since(self, index: int) -> list[dict[str, Any]]:
        """Events from position ``index`` on (a watcher keeps its own cursor)."""
        with self._lock:
            return list(self._events[index:])

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)
