"""Confidence intervals over seeds: percentile bootstrap of the mean, and Student's t-interval."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

from mlac.errors import ConfigError


def _check(values: Sequence[float], confidence: float) -> np.ndarray:
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        raise ConfigError("a confidence interval needs at least one value")
    return arr


def bootstrap_ci(values: Sequence[float], confidence: float = 0.95, n_resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean: ``n_resamples`` seeded resamples with replacement.

    With one value the interval is that value (no spread can be estimated).
    """
    arr = _check(values, confidence)
    if arr.size == 1:
        return float(arr[0]), float(arr[0])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.size, size=(n_resamples, arr.size))
    means = arr[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Student's t-interval of the mean; degenerate (the value itself) with one value or no spread."""
    arr = _check(values, confidence)
    mean = float(arr.mean())
    if arr.size == 1 or float(arr.std(ddof=1)) == 0.0:
        return mean, mean
    lo, hi = sps.t.interval(confidence, arr.size - 1, loc=mean, scale=sps.sem(arr))
    return float(lo), float(hi)
