"""Confidence intervals of a mean over attacker seeds.

Two intervals are reported for every curve point, as in the paper's protocol: the percentile bootstrap
of the mean (the reference's choice; ``n_resamples`` seeded resamples with replacement) and Student's
t-interval (``scipy.stats.t``). Both are degenerate (lo == hi == the value) for a single value or for
values without spread: no spread can be estimated from one seed, and reporting a zero-width interval is
more honest than inventing one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

from mlac.errors import ConfigError


def _check(values: Sequence[float], confidence: float) -> np.ndarray:
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}; use e.g. 0.95")
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ConfigError("a confidence interval needs a non-empty flat list of values (one per seed)")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"a confidence interval needs finite values, got {arr.tolist()}")
    return arr


def bootstrap_ci(values: Sequence[float], confidence: float = 0.95, n_resamples: int = 1000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean.

    Draws ``n_resamples`` resamples of ``len(values)`` indices with replacement from
    ``numpy.random.default_rng(seed)`` (one ``integers`` call, shape ``(n_resamples, len(values))``),
    takes each resample's mean, and returns the ``(1-confidence)/2`` and ``(1+confidence)/2`` quantiles
    (numpy's default linear interpolation). Same inputs and seed give the same interval.
    """
    arr = _check(values, confidence)
    if n_resamples < 1:
        raise ConfigError(f"n_resamples must be >= 1, got {n_resamples}")
    if arr.size == 1:
        return float(arr[0]), float(arr[0])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.size, size=(n_resamples, arr.size))
    means = arr[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Student's t-interval of the mean (``scipy.stats.t.interval`` with n-1 degrees of freedom and the
    standard error of the mean). With one value, or values all equal, the interval is degenerate:
    ``(mean, mean)``."""
    arr = _check(values, confidence)
    mean = float(arr.mean())
    if arr.size == 1 or float(arr.std(ddof=1)) == 0.0:
        return mean, mean
    lo, hi = sps.t.interval(confidence, arr.size - 1, loc=mean, scale=sps.sem(arr))
    return float(lo), float(hi)
