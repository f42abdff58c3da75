"""The ETAs the CLI shows for ``base``, ``censor`` and ``audit``: pure estimators fed ``(time, event)`` pairs.

One function or class per job, so that the commands display exactly what ``benchmarks/bench_eta.py`` measures
(issue 19: within 2x of the truth from 10% of the work on ``quick``); rich only renders them
(:func:`eta_column`). Times are seconds on any one clock (the commands use :func:`time.monotonic`).

* ``base``: :func:`eta_at`, the remaining steps at the rate of the latter half of the run so far.
* ``censor``: :class:`CensorEta`, the same for the outer steps, plus the validations still to come at the
  measured cost of one (they pause the steps every ``val_every`` steps; a rate over steps alone misses them).
* ``audit``: :class:`AuditEta`, the searches still to come at the measured cost of a finished search. The
  trial budget is only an upper bound (patience stops searches early, and each search ends with its reruns,
  which count no trial), so the trial rate times the trials left overestimated the rest several times over.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any


def eta_at(seen: Sequence[tuple[float, int]], total: int) -> float:
    """Seconds left for ``total`` steps given ``(time, step)`` samples: the remaining steps at the rate since the
    last sample at or before half the elapsed time (the first steps, slowed by start-up work, stop weighing on it
    as the run goes on; a rate that changed shows within half the elapsed time). One usable sample: the mean rate
    since time 0."""
    now, step = seen[-1]
    earlier = [(t, k) for t, k in seen[:-1] if t <= now / 2] or list(seen[:1])
    t0, k0 = earlier[-1]
    if k0 >= step or now <= t0:
        return now * (total - step) / max(step, 1)
    return (total - step) * (now - t0) / (step - k0)


def format_duration(seconds: float) -> str:
    """``42s``, ``3m07s``, ``1h02m``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def count_down(estimate: float | None, made_at: float, now: float, floor: float = 0.0) -> float | None:
    """An estimate made at ``made_at``, read at ``now``: less the time since, never below ``floor``."""
    if estimate is None:
        return None
    return max(floor, estimate - max(0.0, now - made_at))


class CensorEta:
    """ETA of an MLAC run from its ``step`` and ``validation`` records (:func:`mlac.censor.train.train_mlac`).

    The steps' rate is :func:`eta_at`'s over step time only (the validations' time cut out of the clock); each
    validation still to come (every ``val_every`` steps and at the last) costs the mean of those measured, the
    time from a validated step's record to its validation record. Before the first validation its cost is not
    known and counts 0 (the estimate is then low by at most the validations' share)."""

    def __init__(self, total_steps: int, val_every: int, start: float = 0.0) -> None:
        self.total, self.val_every = total_steps, max(1, val_every)
        self._steps: list[tuple[float, int]] = []  # (step time since start, step)
        self._start, self._paused = start, 0.0
        self._val_costs: list[float] = []
        self._last: tuple[float, int] | None = None  # (time, step) of the last step record
        self._validated: set[int] = set()
        self._made_at = start

    def observe(self, t: float, record: Mapping[str, Any]) -> None:
        """Feed one record (``event`` = ``step`` with ``step``, or ``validation`` with ``step``) seen at ``t``."""
        step = record.get("step")
        if not isinstance(step, int):
            return
        if record.get("event") == "validation":
            if self._last is not None and self._last[1] == step:
                cost = max(0.0, t - self._last[0])
                self._val_costs.append(cost)
                self._paused += cost
            self._validated.add(step)
            self._made_at = t
        elif record.get("event") == "step":
            if not self._steps:  # at the start the run stood at the step before (a resumed run: not 0)
                self._steps.append((0.0, step - 1))
            self._last = (t, step)
            self._steps.append((t - self._start - self._paused, step))
            self._made_at = t

    def _validations_left(self, step: int) -> int:
        due = {k for k in range(self.val_every, self.total + 1, self.val_every)} | {self.total}
        return len({k for k in due if k >= step} - self._validated)

    def estimate(self) -> float | None:
        """Seconds left as of the last record (None before the first step)."""
        if self._last is None:
            return None
        step = self._last[1]
        steps_left = eta_at(self._steps, self.total) if step < self.total else 0.0
        val_cost = sum(self._val_costs) / len(self._val_costs) if self._val_costs else 0.0
        return steps_left + val_cost * self._validations_left(step)

    def remaining(self, now: float) -> float | None:
        """Seconds left at ``now``: :meth:`estimate` counted down since the last record."""
        if self._last is None:
            return None
        return count_down(self.estimate(), self._made_at, now)


class AuditEta:
    """ETA of an audit's searches from its progress events (:func:`mlac.audit.runner.run_audit`).

    The searches still to come, at the mean wall time per finished search (the search stage's time so far over
    the searches done, so that searches run side by side on Ray count once; searches a resumed audit finds
    finished, which announce only replayed trials, count as free), counted down since the last finished one but
    never below the cost of the searches not yet started. Before the first search finished: the trial rate times
    the trials the searches may still take (an upper bound, as the trial budget is). None before the search
    stage."""

    def __init__(self, studies_total: int, max_trials_per_study: int) -> None:
        self.studies_total, self.max_trials = studies_total, max_trials_per_study
        self._search_start: float | None = None
        self._before_search: float | None = None  # the last event before the search stage
        self._done = 0
        self._done_at: float | None = None
        self._trials = 0
        self._trial_at: float | None = None
        self._worked: set[Any] = set()  # searches that ran a trial here (not only replayed ones from a resume)
        self._free = 0  # searches finished without running one: resumed, they cost nothing

    def observe(self, t: float, event: Mapping[str, Any]) -> None:
        """Feed one progress event seen at ``t``."""
        if event.get("stage") != "search":
            if self._search_start is None:
                self._before_search = t
            return
        if self._search_start is None:
            self._search_start = self._before_search if self._before_search is not None else t
        trials, done = event.get("trials_done"), event.get("studies_done")
        if event.get("trial") is not None and not event.get("replayed"):
            self._worked.add(event.get("study"))
        if isinstance(trials, int) and trials > self._trials and not event.get("replayed"):
            self._trials, self._trial_at = trials, t
        if isinstance(done, int) and done > self._done:
            if event.get("point") is not None and event.get("study") not in self._worked:
                self._free += done - self._done
            self._done, self._done_at = done, t

    def remaining(self, now: float) -> float | None:
        """Seconds left in the search stage at ``now`` (None when nothing is known yet)."""
        if self._search_start is None:
            return None
        left = self.studies_total - self._done
        if left <= 0:
            return 0.0
        worked = self._done - self._free
        if worked > 0 and self._done_at is not None:
            per_study = (self._done_at - self._search_start) / worked
            return count_down(left * per_study, self._done_at, now, floor=(left - 1) * per_study)
        if self._trials > 0 and self._trial_at is not None:
            per_trial = (self._trial_at - self._search_start) / self._trials
            return count_down(per_trial * (left * self.max_trials - self._trials), self._trial_at, now)
        return None


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
