"""A schedule's history and its regression gate: each successful run compared with the previous successful one.

Scheduled audits exist to catch a model getting worse. When a scheduled audit succeeds, :func:`regression_check`
compares it with the previous successful run of the same schedule (:func:`mlac.audit.compare.compare`: same
protocol; the checkpoint may have changed): B = this run, A = the previous one. A run is *regressed* when B is
significantly easier to attack on the harmful task at some n. The dispatcher then sends ``audit.regressed`` and,
under a ``fail_on_regression`` policy, marks the run's verdict FAIL. :func:`run_history` gives the same reading
for every past run, plus the trend value (the audited model's harmful accuracy at the largest n).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from mlac.audit.compare import Comparison, compare
from mlac.audit.result_schema import AuditResult
from mlac.errors import MlacError
from service.store import JobStore
from service.store.records import Job, Schedule

log = logging.getLogger(__name__)
DEFAULT_ALPHA = 0.05
#: How many past runs a history (and a regression check's search for the previous success) looks at.
HISTORY_LIMIT = 200


@dataclass(frozen=True)
class RegressionPolicy:
    """What a regressed run does: always reported; with ``fail_on_regression`` its verdict becomes FAIL."""

    fail_on_regression: bool = False
    alpha: float = DEFAULT_ALPHA

    @classmethod
    def of(cls, schedule: Schedule) -> RegressionPolicy:
        """The schedule's stored policy (the defaults when it has none)."""
        data = schedule.regression or {}
        return cls(bool(data.get("fail_on_regression", False)), float(data.get("alpha", DEFAULT_ALPHA)))


@dataclass(frozen=True)
class RunReading:
    """One run of a schedule: its job, the trend value, and how it compares with the previous successful run."""

    slot: str
    job_id: str
    fired_at: float
    state: str
    verdict: str | None
    harmful: float | None
    previous_job_id: str | None = None
    comparison: Comparison | None = None
    not_comparable: str | None = None

    @property
    def regressed(self) -> bool:
        """Significantly easier to attack than the previous successful run."""
        return self.comparison is not None and self.comparison.regressed


def audit_result(job: Job, ending: str | None = None) -> AuditResult | None:
    """The job's audit result, None for a job without one (not finished, a censor job, a file gone). ``ending``: the
    result folder of a job that is succeeding right now (not yet recorded as SUCCEEDED)."""
    folder = ending if ending is not None else (job.result_path if job.state == "SUCCEEDED" else None)
    if not folder:
        return None
    path = Path(folder) / "result.json"
    if not path.is_file():
        return None
    try:
        return AuditResult.read(path)
    except MlacError:
        log.exception("unreadable result of job %s", job.id)
        return None


def trend_value(result: AuditResult) -> float | None:
    """The audited model's harmful accuracy (mean over seeds) at its largest n: what the trend plots."""
    audited = list((result.derived or {}).get("audited", []))
    curves = [c for c in result.curves if audited and c.model == audited[0] and c.task == "harmful"]
    return max(curves, key=lambda c: c.n).mean if curves else None


def _compare(previous: AuditResult, current: AuditResult, alpha: float) -> tuple[Comparison | None, str | None]:
    try:
        return compare(previous, current, alpha=alpha), None
    except MlacError as exc:  # not comparable (data or protocol changed), or no single audited model
        return None, str(exc)


def run_history(store: JobStore, schedule: Schedule, limit: int = HISTORY_LIMIT) -> list[RunReading]:
    """Every fired run of ``schedule``, oldest first, each compared with the previous successful run."""
    policy = RegressionPolicy.of(schedule)
    out: list[RunReading] = []
    previous: tuple[str, AuditResult] | None = None
    for run in reversed(store.schedule_runs(schedule.id, limit)):
        try:
            job = store.get_job(run.job_id, None)
        except MlacError:
            continue
        result = audit_result(job)
        reading = RunReading(run.slot, job.id, run.fired_at, job.state, job.verdict,
                             trend_value(result) if result is not None else None)
        if result is not None and previous is not None:
            comparison, why = _compare(previous[1], result, policy.alpha)
            reading = RunReading(**{**reading.__dict__, "previous_job_id": previous[0], "comparison": comparison,
                                    "not_comparable": why})
        if result is not None:
            previous = (job.id, result)
        out.append(reading)
    return out


def regression_check(store: JobStore, job: Job, result_path: str) -> tuple[RunReading, RegressionPolicy] | None:
    """How the scheduled ``job``, succeeding now with its result in ``result_path``, compares with its schedule's
    previous successful run; None when it is not a scheduled audit, has no result, or has no earlier success.
    Called before the job is recorded as ended, so that its verdict is final when it is seen ended. Reads two
    results: this one and the newest earlier success."""
    if job.schedule_id is None:
        return None
    try:
        schedule = store.get_schedule(job.schedule_id, None)
    except MlacError:
        return None
    runs = store.schedule_runs(schedule.id, HISTORY_LIMIT)  # newest first
    mine = next((i for i, r in enumerate(runs) if r.job_id == job.id), None)
    current = audit_result(job, result_path)
    if mine is None or current is None:
        return None
    for run in runs[mine + 1:]:
        try:
            earlier = store.get_job(run.job_id, None)
        except MlacError:
            continue
        previous = audit_result(earlier)
        if previous is None:
            continue
        policy = RegressionPolicy.of(schedule)
        comparison, why = _compare(previous, current, policy.alpha)
        reading = RunReading(runs[mine].slot, job.id, runs[mine].fired_at, "SUCCEEDED", job.verdict,
                             trend_value(current), earlier.id, comparison, why)
        return reading, policy
    return None
