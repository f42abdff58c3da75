"""Seed points (one search's outcome) and curve points (mean and CIs over seeds per model, task, n)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from mlac.audit.stats import bootstrap_ci, t_interval
from mlac.errors import DataError


def _from(cls: Any, data: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in known})
    except TypeError as exc:
        raise DataError(f"malformed {cls.__name__} record: {exc}") from exc


@dataclass(frozen=True)
class SeedPoint:
    """The winning configuration's report-split accuracy for one (model, task, n, seed) search."""

    model: str
    task: str
    n: int
    seed: int
    report_accuracy: float
    selection_accuracy: float
    rerun_accuracies: list[float] = field(default_factory=list)
    best_params: dict[str, Any] = field(default_factory=dict)
    trials_run: int = 0
    failed_trials: int = 0
    attacker_wall_s: float = 0.0
    attacker_flops: float = 0.0
    trial_history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SeedPoint:
        """Inverse of :meth:`to_dict`."""
        point: SeedPoint = _from(cls, data)
        return point


@dataclass(frozen=True)
class CurvePoint:
    """Mean over seeds with a 95% bootstrap CI and t-interval, for one (model, task, n)."""

    model: str
    task: str
    n: int
    mean: float
    ci_bootstrap: tuple[float, float]
    ci_t: tuple[float, float]
    per_seed: list[float]
    seeds: list[int]
    best_params: list[dict[str, Any]] = field(default_factory=list)
    trials_run: int = 0
    attacker_wall_s: float = 0.0
    attacker_flops: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (tuples become lists)."""
        d = asdict(self)
        d["ci_bootstrap"], d["ci_t"] = list(self.ci_bootstrap), list(self.ci_t)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CurvePoint:
        """Inverse of :meth:`to_dict`."""
        d = dict(data)
        for key in ("ci_bootstrap", "ci_t"):
            if key in d:
                d[key] = tuple(d[key])
        point: CurvePoint = _from(cls, d)
        return point


def build_curves(points: list[SeedPoint], *, confidence: float = 0.95, n_resamples: int = 1000, seed: int = 0) -> list[CurvePoint]:
    """Group seed points by (model, task, n); mean, bootstrap CI and t-interval over seeds."""
    groups: dict[tuple[str, str, int], list[SeedPoint]] = defaultdict(list)
    for p in points:
        groups[(p.model, p.task, int(p.n))].append(p)
    curves = []
    for (model, task, n), group in sorted(groups.items()):
        group.sort(key=lambda p: p.seed)
        values = [float(p.report_accuracy) for p in group]
        curves.append(CurvePoint(
            model=model, task=task, n=n, mean=float(np.mean(values)),
            ci_bootstrap=bootstrap_ci(values, confidence, n_resamples, seed), ci_t=t_interval(values, confidence),
            per_seed=values, seeds=[int(p.seed) for p in group], best_params=[dict(p.best_params) for p in group],
            trials_run=sum(int(p.trials_run) for p in group),
            attacker_wall_s=float(sum(p.attacker_wall_s for p in group)),
            attacker_flops=float(sum(p.attacker_flops for p in group)),
        ))
    return curves


def series(curves: list[CurvePoint], model: str, task: str) -> list[CurvePoint]:
    """One model's curve on one task, sorted by n."""
    return sorted((c for c in curves if c.model == model and c.task == task), key=lambda c: c.n)
