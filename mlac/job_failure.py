"""Why a job failed, as a one-line cause and, apart from it, the traceback.

Runners (the service's in-process runner, the Ray job driver) report a failed or cancelled job with a
:class:`JobFailure`: ``cause`` is what a user reads (``CheckpointError [bad_tokenizer]: tokenizer.json: ...``;
for an unexpected exception the last line of its traceback, ``ValueError: ...``), ``detail`` the full
traceback for whoever debugs it. Server paths under the data directory are shortened to paths relative to it.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlac.errors import MlacError

#: Longest cause kept (a message that names a file or a tensor fits; a pasted blob does not).
MAX_CAUSE_CHARS = 500


@dataclass(frozen=True)
class JobFailure:
    """A failed or cancelled job's one-line ``cause`` and optional ``detail`` (the traceback)."""

    cause: str
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (what a Ray actor returns)."""
        return {"error": self.cause, "error_detail": self.detail}

    @classmethod
    def from_outcome(cls, outcome: dict[str, Any]) -> JobFailure | None:
        """The failure an outcome dict carries (``error``, ``error_detail``), None when it carries none."""
        cause = outcome.get("error")
        if not cause:
            return None
        detail = outcome.get("error_detail")
        return cls(one_line(str(cause)), str(detail) if detail else None)


def one_line(text: str) -> str:
    """``text`` as a single line of at most :data:`MAX_CAUSE_CHARS` characters (whitespace runs collapsed)."""
    line = " ".join(text.split())
    return line if len(line) <= MAX_CAUSE_CHARS else line[: MAX_CAUSE_CHARS - 3] + "..."


def strip_paths(text: str, roots: Iterable[str | Path]) -> str:
    """``text`` with each of ``roots`` (server directories) removed from the paths it names."""
    for root in sorted({str(Path(r).resolve()) for r in roots} | {str(r) for r in roots}, key=len, reverse=True):
        if root and root != "/":
            text = text.replace(root.rstrip("/") + "/", "").replace(root, ".")
    return text


def failure_of(exc: BaseException, roots: Iterable[str | Path] = ()) -> JobFailure:
    """The :class:`JobFailure` of an exception: an :class:`~mlac.errors.MlacError` by its type, code and message,
    anything else by the last line of its traceback (``ValueError: ...``); ``detail`` is the traceback."""
    roots = list(roots)
    if isinstance(exc, MlacError):
        cause = f"{type(exc).__name__} [{exc.code}]: {exc}"
    else:
        cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__  # the traceback's last line
    detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return JobFailure(one_line(strip_paths(cause, roots)), strip_paths(detail, roots))
