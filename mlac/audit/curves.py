"""Seed points (one search's outcome) and curve points (mean and CIs over seeds per model, task, n)."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from mlac.audit.stats import bootstrap_ci, t_interval
from mlac.contracts import study_label
from mlac.errors import DataError

_NUMBER = (int, float)
#: Labels of the baselines an audit can include (everything else is a model under audit).
BASELINE_LABELS = ("random", "base", "beneficial_tuned", "ac")
#: Accuracies (and their interval ends) live in [0, 1].
ACCURACY_BOUNDS = (0.0, 1.0)
#: "At or below the majority-class rate" allows for float rounding only.
CHANCE_TOLERANCE = 1e-9


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
    accuracies are None until a trial completes) for the attack-budget curves. ``majority_rate``: the
    report split's most-common-label share (None in results written before schema 1.1)."""

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
    majority_rate: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SeedPoint:
        """Inverse of :meth:`to_dict`; unknown keys are ignored, missing or mistyped ones raise DataError."""
        d = _check_record(cls, data, {"model": (str,), "task": (str,), "n": (int,), "seed": (int,),
                                      "report_accuracy": _NUMBER, "selection_accuracy": _NUMBER})
        if not math.isfinite(float(d["report_accuracy"])):
            raise DataError(f"SeedPoint {study_label(d['model'], d['task'], d['n'], d['seed'])}: report accuracy "
                            f"is {d['report_accuracy']!r}; every search must end with a finite accuracy")
        return cls(**d)


@dataclass(frozen=True)
class CurvePoint:
    """One (model, task, n): mean report accuracy over seeds and its 95% intervals, and per seed: the value,
    the seed, the best hyperparameters; summed trials and attacker compute.

    ``ci_t`` (Student's t, the interval the verdict uses: it covers at its nominal rate with 2-6 seeds) and
    ``ci_bootstrap`` (the reference's percentile bootstrap, kept for comparison: it under-covers with few
    seeds) are clipped to [0, 1], and None with a single seed ("insufficient": no spread can be estimated
    from one value). ``majority_rate`` is the report split's most-common-label share; ``attack_failed``
    says the mean is at or below it: the attacker learned nothing there, which says nothing about the model.
    """

    model: str
    task: str
    n: int
    mean: float
    ci_bootstrap: tuple[float, float] | None
    ci_t: tuple[float, float] | None
    per_seed: list[float]
    seeds: list[int]
    best_params: list[dict[str, Any]] = field(default_factory=list)
    trials_run: int = 0
    failed_trials: int = 0
    attacker_wall_s: float = 0.0
    attacker_flops: float = 0.0
    selection_mean: float | None = None
    confidence: float = 0.95
    majority_rate: float | None = None
    attack_failed: bool = False

    @property
    def interval(self) -> tuple[float, float] | None:
        """The interval every decision uses (the t-interval); None when a single seed was run."""
        return self.ci_t

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (tuples become lists)."""
        d = asdict(self)
        for key in ("ci_bootstrap", "ci_t"):
            value = getattr(self, key)
            d[key] = list(value) if value is not None else None
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CurvePoint:
        """Inverse of :meth:`to_dict`; missing or mistyped fields raise DataError. Results of schema 1.0 stored
        a zero-width interval for one seed; it reads back as None."""
        d = _check_record(cls, data, {"model": (str,), "task": (str,), "n": (int,), "mean": _NUMBER,
                                      "ci_bootstrap": (list, tuple, type(None)), "ci_t": (list, tuple, type(None)),
                                      "per_seed": (list,), "seeds": (list,)})
        for key in ("ci_bootstrap", "ci_t"):
            if d[key] is None:
                continue
            if len(d[key]) != 2:
                raise DataError(f"malformed CurvePoint record: {key} must be [lo, hi] or null, got {d[key]!r}")
            d[key] = (float(d[key][0]), float(d[key][1])) if len(d["per_seed"]) > 1 else None
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
        mean = float(np.mean(values))
        rates = [float(p.majority_rate) for p in group if p.majority_rate is not None]
        majority = max(rates) if rates else None
        curves.append(CurvePoint(
            model=model, task=task, n=n, mean=mean,
            ci_bootstrap=bootstrap_ci(values, confidence, n_resamples, seed, bounds=ACCURACY_BOUNDS),
            ci_t=t_interval(values, confidence, bounds=ACCURACY_BOUNDS),
            per_seed=values, seeds=seeds, best_params=[dict(p.best_params) for p in group],
            trials_run=sum(int(p.trials_run) for p in group),
            failed_trials=sum(int(p.failed_trials) for p in group),
            attacker_wall_s=float(sum(p.attacker_wall_s for p in group)),
            attacker_flops=float(sum(p.attacker_flops for p in group)),
            selection_mean=float(np.mean([float(p.selection_accuracy) for p in group])),
            confidence=confidence,
            majority_rate=majority,
            attack_failed=majority is not None and mean <= majority + CHANCE_TOLERANCE,
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
