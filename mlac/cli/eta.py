"""The CLI's ETA column: renders an estimate of :mod:`mlac.progress_eta` (rich only displays it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlac.progress_eta import format_duration


def eta_column(remaining: Callable[[Any], float | None], label: str = "ETA") -> Any:
    """A rich progress column that renders ``label`` and ``remaining(task)`` (seconds, :func:`format_duration`)
    for the tasks whose field ``eta`` is true, nothing for the others; re-read at each refresh, so it counts down
    between events."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class EtaColumn(ProgressColumn):
        max_refresh = 0.5

        def render(self, task: Any) -> Text:
            if not task.fields.get("eta"):
                return Text("")
            left = remaining(task)
            return Text(f"{label} " + ("-" if left is None else format_duration(left)), style="progress.remaining")

    return EtaColumn()
