"""Seed points (one search's outcome) and curve points (mean and CIs over seeds per model, task, n)."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from mlac.audit.stats import bootstrap_ci, t_interval
from mlac.errors import DataError

_NUMBER = (int, float)
#: Labels of the baselines an audit can include (everything else is a model under audit).
BASELINE_LABELS = ("random", "base", "beneficial_tuned", "ac")


def _check_record(cls: Any, data: Any, required: dict[str, tuple[type, ...]]) -> dict[str, Any]:
    """Keep the dataclass's known fields; fail clearly on a non-dict, a missing field or a wrong type."""
    if not isinstance(data, dict):
        raise DataError(f"malformed {cls.__name__} record: expected an object, got {type(data).__name__}")
    missing = [k for k in required if k not in data]
    if missing:
        raise DataError(f"malformed {cls.__name__} record: missing field(s) {missing}")
    for key, types in required.items():
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, types):
            raise DataError(f"malformed {cls.__name__} record: field {key!r} = {value!r} is not "
                            f"{' or '.join(t.__name__ for t in types)}")
    known = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in known}


@dataclass(frozen=True)
class SeedPoint:
    """One (model, task, n, seed) search: the winning configuration's mean report-split accuracy over its
    re-runs, its selection-split accuracy, and what the attacker spent. ``trial_history`` rows hold
    ``trial, wall_s_cum, flops_cum, best_report_acc_so_far, best_selection_acc_so_far`` (the
    accuracies are None until a trial completes) for the attack-budget curves."""

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
        """Inverse of :meth:`to_dict`; unknown keys are ignored, missing or mistyped ones raise DataError."""
        d = _check_record(cls, data, {"model": (str,), "task": (str,), "n": (int,), "seed": (int,),
                                      "report_accuracy": _NUMBER, "selection_accuracy": _NUMBER})
        if not math.isfinite(float(d["report_accuracy"])):
            raise DataError(f"SeedPoint {d['model']}/{d['task']}/n={d['n']}/seed={d['seed']}: report accuracy "
                            f"is {d['report_accuracy']!r}; every search must end with a finite accuracy")
        return cls(**d)


@dataclass(frozen=True)
class CurvePoint:
    """One (model, task, n): mean report accuracy over seeds, its 95% bootstrap CI and t-interval, and
    per seed: the value, the seed, the best hyperparameters; summed trials and attacker compute."""

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
    failed_trials: int = 0
    attacker_wall_s: float = 0.0
    attacker_flops: float = 0.0
    selection_mean: float | None = None
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (tuples become lists)."""
        d = asdict(self)
        d["ci_bootstrap"], d["ci_t"] = list(self.ci_bootstrap), list(self.ci_t)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CurvePoint:
        """Inverse of :meth:`to_dict`; missing or mistyped fields raise DataError."""
        d = _check_record(cls, data, {"model": (str,), "task": (str,), "n": (int,), "mean": _NUMBER,
                                      "ci_bootstrap": (list, tuple), "ci_t": (list, tuple),
                                      "per_seed": (list,), "seeds": (list,)})
        for key in ("ci_bootstrap", "ci_t"):
            if len(d[key]) != 2:
                raise DataError(f"malformed CurvePoint record: {key} must be [lo, hi], got {d[key]!r}")
            d[key] = (float(d[key][0]), float(d[key][1]))
        return cls(**d)


def build_curves(points: list[SeedPoint], *, confidence: float = 0.95, n_resamples: int = 1000,
                 seed: int = 0) -> list[CurvePoint]:
    """Group seed points by (model, task, n) and summarise each group over its seeds.

    Sorted by (model, task, n), seeds ascending inside a point. The bootstrap uses ``seed`` for every
    group, so the curves are a deterministic function of the seed points. A repeated
    (model, task, n, seed) is a DataError (two searches claiming the same seed would bias the mean).
    """
    groups: dict[tuple[str, str, int], list[SeedPoint]] = defaultdict(list)
    for p in points:
        groups[(p.model, p.task, int(p.n))].append(p)
    curves = []
    for (model, task, n), group in sorted(groups.items()):
        group = sorted(group, key=lambda p: p.seed)
        seeds = [int(p.seed) for p in group]
        if len(set(seeds)) != len(seeds):
            raise DataError(f"{model}/{task}/n={n}: seed(s) repeated in {seeds}; each seed must be searched once")
        values = [float(p.report_accuracy) for p in group]
        curves.append(CurvePoint(
            model=model, task=task, n=n, mean=float(np.mean(values)),
            ci_bootstrap=bootstrap_ci(values, confidence, n_resamples, seed), ci_t=t_interval(values, confidence),
            per_seed=values, seeds=seeds, best_params=[dict(p.best_params) for p in group],
            trials_run=sum(int(p.trials_run) for p in group),
            failed_trials=sum(int(p.failed_trials) for p in group),
            attacker_wall_s=float(sum(p.attacker_wall_s for p in group)),
            attacker_flops=float(sum(p.attacker_flops for p in group)),
            selection_mean=float(np.mean([float(p.selection_accuracy) for p in group])),
            confidence=confidence,
        ))
    return curves


def models_of(curves: list[CurvePoint]) -> list[str]:
    """Model labels in a stable display order: models under audit (sorted) first, then the baselines in
    the order random, base, beneficial_tuned, ac."""
    labels = {c.model for c in curves}
    return sorted(labels - set(BASELINE_LABELS)) + [b for b in BASELINE_LABELS if b in labels]


def series(curves: list[CurvePoint], model: str, task: str) -> list[CurvePoint]:
    """One model's curve on one task, sorted by n."""
    return sorted((c for c in curves if c.model == model and c.task == task), key=lambda c: c.n)
