"""Typed data that crosses layers (core -> workers -> service): one definition of each, with its plain form.

Every layer passes these objects; only a process boundary (a Ray actor's return value, a JSON column, an
HTTP body) turns them into plain dicts, with :meth:`to_dict` on one side and :meth:`from_dict` on the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from mlac.job_failure import JobFailure, one_line

JobState = Literal["SUCCEEDED", "FAILED", "CANCELLED"]
JOB_END_STATES: tuple[JobState, ...] = ("SUCCEEDED", "FAILED", "CANCELLED")


@dataclass(frozen=True)
class JobOutcome:
    """How a job ended: its state, where its result lies, the audit's verdict (None for a job without one) and,
    for a failed or cancelled job, why (a one-line cause and the traceback apart)."""

    state: JobState
    result_path: str | None = None
    verdict: str | None = None
    failure: JobFailure | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain form (what a Ray driver actor returns); the failure's keys are ``error`` and ``error_detail``."""
        failure = self.failure.to_dict() if self.failure is not None else {"error": None, "error_detail": None}
        return {"state": self.state, "result_path": self.result_path, "verdict": self.verdict, **failure}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobOutcome:
        """Inverse of :meth:`to_dict` (an unknown state is a ValueError: that is a bug, not user input)."""
        state = data.get("state")
        if state not in JOB_END_STATES:
            raise ValueError(f"not a job end state: {state!r}")
        verdict = data.get("verdict")
        return cls(state=state, result_path=data.get("result_path"),
                   verdict=one_line(str(verdict)) if verdict else None, failure=JobFailure.from_outcome(data))
