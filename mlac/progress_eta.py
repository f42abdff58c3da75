"""ETAs of ``base``, ``censor`` and ``audit``: pure estimators fed ``(time, event)`` pairs.

One function or class per job, so that what the CLI shows, what the audit runner puts in its progress events
(``eta_s``, which the service's job store, ``watch`` and the web view pass on) and what
``benchmarks/bench_eta.py`` measures are one computation (issue 19: within 2x of the truth from 10% of the work
on ``quick``); the CLI's rich column only renders them (:func:`mlac.cli.eta.eta_column`).
Times are seconds on any one clock (the commands use :func:`time.monotonic`).

* ``base``: :func:`eta_at`, the remaining steps at the rate of the latter half of the run so far, printed
  in lines that come sooner while the run is young (:func:`line_due`).
* ``censor``: :class:`CensorEta`, the same for the outer steps, plus the validations still to come at the
  measured cost of one (they pause the steps every ``val_every`` steps; a rate over steps alone misses them).
* ``audit``: :class:`AuditEta`, the trials (and reruns) each running search may still take, patience counted,
  at the cost per trial of the last lockstep round, or of the current one while it runs longer. Trial counts
  alone mislead: the grid's first rounds
  (probes) finish in seconds in one burst, the full fine-tune rounds after them take minutes each, and the
  reruns count no trial; rich's rate over bursts said "0 s" for most of a 10-minute audit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
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


def line_due(now: float, printed: float, every_s: float) -> bool:
    """Whether a progress line printed at ``printed`` is due again at ``now``: every ``every_s`` seconds, but
    sooner (after half the elapsed time) early on, while the estimate still moves (the first step's line is
    made from one slow start-up step: measured on ``base``, it overestimated the rest 4x and stood until 5 s)."""
    return now - printed >= min(every_s, now / 2)


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

    The searches advance in lockstep rounds (each search still running takes one trial per round, the trials of
    a round run together and their events arrive in a burst), and rounds differ widely in cost: the grid's
    probe rounds take a fraction of a second, its full fine-tune rounds minutes. So the estimate prices the
    trials left at the cost per trial of the last finished round (its time over the trials it ran), or of the
    round running now where that is already longer (a round slower than the last shows while it runs).

    Trials left are counted per search still running, so rounds get cheaper as searches finish: the trials it
    may still take plus its reruns (which count no trial). With ``patience`` known, a search that has gone
    ``since`` trials without improving (pruned trials do not count, as in the study driver) takes at most
    ``patience - since`` more once its ``grid_trials`` start-up grid has run, unless it improves again; without
    it, every search may run to its trial budget. Before the first round finished: the trial rate times the
    trial budget left (an upper bound), None once that has run out. None before the search stage."""

    def __init__(self, studies_total: int, max_trials_per_study: int, reruns: int = 0, *,
                 patience: int | None = None, grid_trials: int = 0) -> None:
        self.studies_total, self.max_trials, self.reruns = studies_total, max_trials_per_study, reruns
        self.patience, self.grid_trials = patience, grid_trials
        self._search_start: float | None = None
        self._before_search: float | None = None  # the last event before the search stage
        self._trials: dict[int, int] = {}  # trials seen per running search
        self._since: dict[int, int] = {}  # trials since the search last improved
        self._best: dict[int, float] = {}
        self._finished: set[int] = set()
        self._round, self._round_at, self._trial_cost = 0, 0.0, 0.0
        self._round_trials = 0  # trials seen when the last round finished
        self._trials_done, self._trial_at = 0, 0.0

    def _saw_trial(self, study: int, event: Mapping[str, Any]) -> None:
        self._trials[study] = self._trials.get(study, 0) + 1
        if event.get("pruned"):
            return
        value = event.get("value")
        if event.get("ok") is not False and isinstance(value, int | float) and value > self._best.get(study, -math.inf):
            self._best[study], self._since[study] = float(value), 0
        else:
            self._since[study] = self._since.get(study, 0) + 1

    def observe(self, t: float, event: Mapping[str, Any]) -> None:
        """Feed one progress event seen at ``t``."""
        if event.get("stage") != "search":
            if self._search_start is None:
                self._before_search = t
            return
        if self._search_start is None:
            self._search_start = self._before_search if self._before_search is not None else t
            self._round_at = self._search_start
        study, done = event.get("study"), event.get("trials_done")
        if not isinstance(study, int):
            return
        if isinstance(done, int) and done > self._trials_done:
            self._trials_done, self._trial_at = done, t
        if event.get("point") is not None:
            self._finished.add(study)
        elif event.get("trial") is not None:
            self._saw_trial(study, event)
        running = [self._trials.get(s, 0) for s in range(self.studies_total) if s not in self._finished]
        reached = min(running) if running else self._round
        if reached > self._round:
            seen = sum(self._trials.values())
            self._trial_cost = (t - self._round_at) / max(seen - self._round_trials, 1)
            self._round, self._round_at, self._round_trials = reached, t, seen

    def _trials_left(self, study: int) -> int:
        """Trials search ``study`` may still take (see the class docstring), plus its reruns."""
        k = self._trials.get(study, 0)
        left = self.max_trials - min(k, self.max_trials)
        if self.patience is not None:
            grid_left = max(0, self.grid_trials - k)
            since = self._since.get(study, 0) + grid_left  # the grid's own trials may not improve either
            left = min(left, grid_left + max(0, self.patience - since))
        return left + self.reruns

    def remaining(self, now: float) -> float | None:
        """Seconds left in the search stage at ``now`` (None when nothing is known yet)."""
        if self._search_start is None:
            return None
        running = [s for s in range(self.studies_total) if s not in self._finished]
        if not running:
            return 0.0
        if self._round > 0:
            current = max(0.0, now - self._round_at)
            cost = max(self._trial_cost, current / len(running))  # this round has run longer than the last
            work = sum(self._trials_left(s) for s in running)
            return max(0.0, work * cost - current)
        if self._trials_done > 0:
            per_trial = (self._trial_at - self._search_start) / self._trials_done
            budget = self.studies_total * self.max_trials - self._trials_done
            bound = count_down(per_trial * budget, self._trial_at, now)
            return bound if bound else None  # run out before the next trial: unknown, not "0s"
        return None
