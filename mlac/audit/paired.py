"""Paired statistics between an audited model and a reference (base, random) on the same seeds.

An audit attacks every model with the same attacker seeds and the same data draw per seed, so the
seed-to-seed noise of the data draw is shared: comparing models seed by seed (paired) removes it, where
comparing two independent intervals would not. This module gives the per-n paired difference of report
accuracy (Holm-adjusted over the n of one comparison) and a bootstrap interval of the data-cost
multiplier that resamples whole curves by seed.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mlac.audit.curves import CurvePoint, SeedPoint
from mlac.audit.envelope import examples_needed
from mlac.audit.stats import holm_adjust, paired_test
from mlac.errors import ConfigError, DataError

__all__ = ["DataCostInterval", "PairedComparison", "data_cost_intervals", "paired_comparisons"]

_NUMBER = (int, float)


def _by_n_and_seed(points: list[SeedPoint], model: str, task: str) -> dict[int, dict[int, float]]:
    """``{n: {seed: report accuracy}}`` of one model on one task; a repeated seed is a DataError."""
    out: dict[int, dict[int, float]] = defaultdict(dict)
    for p in points:
        if p.model != model or p.task != task:
            continue
        n, seed = int(p.n), int(p.seed)
        if seed in out[n]:
            raise DataError(f"{model}/{task}/n={n}: seed {seed} repeated; each seed must be searched once")
        out[n][seed] = float(p.report_accuracy)
    return dict(out)


def _check_settings(confidence: float, n_resamples: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}; use e.g. 0.95")
    if n_resamples < 1:
        raise ConfigError(f"n_resamples must be >= 1, got {n_resamples}")


def _field(data: dict[str, Any], key: str, types: tuple[type, ...], optional: bool = False) -> Any:
    """``data[key]`` checked against ``types`` (bools are not numbers); DataError if absent or mistyped."""
    if key not in data:
        raise DataError(f"malformed paired record: missing field {key!r}")
    value = data[key]
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, types):
        raise DataError(f"malformed paired record: field {key!r} = {value!r} is not "
                        f"{' or '.join(t.__name__ for t in types)}{' or null' if optional else ''}")
    return value


def _interval(data: dict[str, Any], key: str) -> tuple[float, float] | None:
    value = _field(data, key, (list, tuple), optional=True)
    if value is None:
        return None
    if len(value) != 2 or any(isinstance(v, bool) or not isinstance(v, _NUMBER) for v in value):
        raise DataError(f"malformed paired record: {key} must be [lo, hi] or null, got {value!r}")
    return float(value[0]), float(value[1])


@dataclass(frozen=True)
class PairedComparison:
    """Report accuracy of ``model`` minus ``reference`` on ``task`` at one n, paired by seed.

    ``ci``: t-interval of the mean difference (clipped to [-1, 1]); ``p_value``: two-sided paired t-test
    (:func:`mlac.audit.stats.paired_test`); ``p_holm``: Holm-adjusted over the n of this
    (model, reference, task) comparison. All three are None with a single shared seed. ``seeds``: the
    seeds both models were attacked with at this n (the pairs used)."""

    model: str
    reference: str
    task: str
    n: int
    mean_difference: float
    ci: tuple[float, float] | None
    p_value: float | None
    p_holm: float | None
    seeds: list[int]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (the interval becomes a list)."""
        d = asdict(self)
        d["ci"] = list(self.ci) if self.ci is not None else None
        return d

    @classmethod
    def from_dict(cls, data: Any) -> PairedComparison:
        """Inverse of :meth:`to_dict`; unknown keys are ignored, missing or mistyped ones raise DataError."""
        if not isinstance(data, dict):
            raise DataError(f"malformed PairedComparison record: expected an object, got {type(data).__name__}")
        seeds = _field(data, "seeds", (list,))
        if any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
            raise DataError(f"malformed PairedComparison record: seeds must be integers, got {seeds!r}")
        p_value, p_holm = _field(data, "p_value", _NUMBER, True), _field(data, "p_holm", _NUMBER, True)
        return cls(model=_field(data, "model", (str,)), reference=_field(data, "reference", (str,)),
                   task=_field(data, "task", (str,)), n=_field(data, "n", (int,)),
                   mean_difference=float(_field(data, "mean_difference", _NUMBER)), ci=_interval(data, "ci"),
                   p_value=None if p_value is None else float(p_value),
                   p_holm=None if p_holm is None else float(p_holm), seeds=list(seeds))


def paired_comparisons(points: list[SeedPoint], model: str, reference: str, task: str,
                       confidence: float = 0.95) -> list[PairedComparison]:
    """Per n where both models have points: the paired difference ``model - reference`` over the seeds both
    were attacked with, sorted by n. Seeds only one side has are left out; an n without a shared seed is
    left out. The Holm adjustment runs over this comparison's n (one family per model, reference, task)."""
    _check_settings(confidence, 1)
    ours, theirs = _by_n_and_seed(points, model, task), _by_n_and_seed(points, reference, task)
    rows = []
    for n in sorted(set(ours) & set(theirs)):
        seeds = sorted(set(ours[n]) & set(theirs[n]))
        if seeds:
            test = paired_test([ours[n][s] for s in seeds], [theirs[n][s] for s in seeds], confidence)
            rows.append((n, seeds, test))
    adjusted = holm_adjust([t.p_value for _, _, t in rows])
    return [PairedComparison(model=model, reference=reference, task=task, n=n, mean_difference=t.mean_difference,
                             ci=t.ci, p_value=t.p_value, p_holm=p, seeds=seeds)
            for (n, seeds, t), p in zip(rows, adjusted, strict=True)]


@dataclass(frozen=True)
class DataCostInterval:
    """Bootstrap interval of the data-cost multiplier at one base-curve n (see :func:`data_cost_intervals`).

    ``lo``/``hi``: the percentile ends; None means that end is "not reached": in that share of resamples
    the audited model never reaches the base model's accuracy within its largest n, so the multiplier is
    beyond ``max n / n`` (an infinite end). ``reached_share``: the share of resamples that reach it.
    An end equal to the audited curve's smallest n over ``n`` is itself an upper bound (reached at once,
    as in :func:`mlac.audit.derived.data_cost_multiplier`). ``seeds``: the seeds resampled."""

    n: int
    lo: float | None
    hi: float | None
    reached_share: float
    seeds: list[int]
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        return asdict(self)


def _quantile(sorted_samples: np.ndarray, q: float) -> float:
    """numpy's default (linear) quantile of ascending samples that may end in +inf: an end interpolated
    towards an infinite sample is infinite (numpy would give nan there)."""
    h = (sorted_samples.size - 1) * q
    i = math.floor(h)
    frac = h - i
    lo = float(sorted_samples[i])
    if frac == 0.0:
        return lo
    hi = float(sorted_samples[i + 1])
    return math.inf if math.isinf(hi) else lo + (hi - lo) * frac


def _multiplier(model: str, task: str, model_ns: list[int], model_means: np.ndarray, n: int,
                target: float) -> float:
    """The multiplier exactly as ``data_cost_multiplier`` computes it; +inf when never reached."""
    curve = [CurvePoint(model, task, m, float(v), None, None, [], []) for m, v in zip(model_ns, model_means, strict=True)]
    needed = examples_needed(curve, target)
    return math.inf if needed is None else needed / n


def data_cost_intervals(points: list[SeedPoint], model: str, base: str = "base", task: str = "harmful",
                        confidence: float = 0.95, n_resamples: int = 1000, seed: int = 0) -> list[DataCostInterval]:
    """Percentile bootstrap of the data-cost multiplier of ``model`` against ``base``, one interval per n of
    the base curve, sorted by n.

    Whole curves are resampled by seed: each resample draws seed indices with replacement
    (``numpy.random.default_rng(seed)``, one ``integers`` call of shape ``(n_resamples, seeds)``), the same
    draw for the model and the base (a seed is one data draw both were attacked with), recomputes both
    curves' per-n means and the multiplier as :func:`mlac.audit.derived.data_cost_multiplier` does
    ("never reached" = +inf). Only seeds present at every n of both curves are used; with fewer than 2
    such seeds, or a missing curve, the result is empty ("insufficient")."""
    _check_settings(confidence, n_resamples)
    ours, theirs = _by_n_and_seed(points, model, task), _by_n_and_seed(points, base, task)
    if not ours or not theirs:
        return []
    seeds = sorted(set.intersection(*(set(by_seed) for by_seed in [*ours.values(), *theirs.values()])))
    if len(seeds) < 2:
        return []
    model_ns, base_ns = sorted(ours), sorted(theirs)
    values = np.asarray([[ours[n][s] for n in model_ns] for s in seeds])  # (seeds, model n)
    base_values = np.asarray([[theirs[n][s] for n in base_ns] for s in seeds])
    idx = np.random.default_rng(seed).integers(0, len(seeds), size=(n_resamples, len(seeds)))
    model_means, base_means = values[idx].mean(axis=1), base_values[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    out = []
    for j, n in enumerate(base_ns):
        samples = np.sort([_multiplier(model, task, model_ns, model_means[r], n, float(base_means[r, j]))
                           for r in range(n_resamples)])
        lo, hi = _quantile(samples, alpha), _quantile(samples, 1.0 - alpha)
        out.append(DataCostInterval(n=n, lo=None if math.isinf(lo) else lo, hi=None if math.isinf(hi) else hi,
                                    reached_share=float(np.mean(np.isfinite(samples))), seeds=seeds,
                                    confidence=confidence))
    return out
