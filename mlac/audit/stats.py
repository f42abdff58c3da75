"""Confidence intervals of a mean over seeds, and paired tests between models.

Every curve point reports two intervals: Student's t-interval (the one decisions use) and the
reference's percentile bootstrap (kept for comparison). Measured coverage of a nominal 95% interval
(20 000 simulated data sets each, Monte-Carlo SE 0.002-0.003; ``tests/unit/audit_report/test_coverage.py``
checks the main ones):

==========================================  =========  =========
interval, data                              3 seeds    6 seeds
==========================================  =========  =========
t, normal                                   0.951      0.949
t, Beta(8, 3) (skewed, accuracy-like)       0.941      0.941
t, 0.5 + 0.05 lognormal(0, 1) (heavy skew)  0.836      0.821
percentile bootstrap, normal                0.753      0.856
percentile bootstrap, Beta(8, 3)            0.747      0.854
==========================================  =========  =========

Pooled designs (k MLAC training seeds x 3 attacker seeds; between-training-seed SD 0.04, within SD
0.02; 10 000 data sets): the t-interval over the k cluster means (:func:`cluster_t_interval`) covers
0.948 (k = 3) and 0.949 (k = 6); a t-interval over the pooled values, treating them as independent,
0.719 and 0.750; the two-level bootstrap (:func:`cluster_bootstrap_ci`) 0.770 and 0.883. When the
attacker seeds are crossed with a shared effect of their own (the same data draw for every training
seed; SDs 0.04 training, 0.015 attacker, 0.013 residual) the cluster t-interval cannot see that
effect and covers 0.945 (k = 3) and 0.925 (k = 6).

With fewer than 2 values (clusters) no spread can be estimated and every interval is None
("insufficient"); values without spread give the degenerate ``(mean, mean)``. ``bounds`` clips an
interval to the range its quantity lives in (accuracies: [0, 1]).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from mlac.errors import ConfigError

#: Differences of two accuracies live in [-1, 1].
DIFFERENCE_BOUNDS = (-1.0, 1.0)
#: Paired differences spread by less than this (relative to the values' scale) are float rounding.
NO_SPREAD_RTOL = 1e-12


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}; use e.g. 0.95")


def _check(values: Sequence[float], confidence: float) -> np.ndarray:
    _check_confidence(confidence)
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ConfigError("a confidence interval needs a non-empty flat list of values (one per seed)")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"a confidence interval needs finite values, got {arr.tolist()}")
    return arr


def _check_groups(groups: Sequence[Sequence[float]], confidence: float) -> list[np.ndarray]:
    _check_confidence(confidence)
    if len(groups) == 0:
        raise ConfigError("a clustered interval needs at least one cluster of values")
    return [_check(g, confidence) for g in groups]


def _check_resamples(n_resamples: int) -> None:
    if n_resamples < 1:
        raise ConfigError(f"n_resamples must be >= 1, got {n_resamples}")


def _clip(lo: float, hi: float, bounds: tuple[float, float] | None) -> tuple[float, float]:
    """``(lo, hi)`` as floats, clipped to ``bounds`` when given (both ends, so lo <= hi stays true)."""
    if bounds is not None:
        lo, hi = min(max(lo, bounds[0]), bounds[1]), max(min(hi, bounds[1]), bounds[0])
    return float(lo), float(hi)


@functools.lru_cache(maxsize=256)
def _t_quantile(confidence: float, dof: int) -> float:
    """Upper ``(1+confidence)/2`` quantile of Student's t (cached: scipy's call dominates the interval's cost)."""
    return float(sps.t.ppf((1.0 + confidence) / 2.0, dof))


def _t(arr: np.ndarray, confidence: float, bounds: tuple[float, float] | None) -> tuple[float, float]:
    """t-interval of the mean of ``arr`` (at least 2 values): mean -+ t quantile x standard error."""
    mean = float(arr.mean())
    sd = float(arr.std(ddof=1))
    if sd == 0.0:
        return _clip(mean, mean, bounds)
    half = _t_quantile(confidence, arr.size - 1) * sd / math.sqrt(arr.size)
    return _clip(mean - half, mean + half, bounds)


def _percentile(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(samples, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def t_interval(values: Sequence[float], confidence: float = 0.95, *,
               bounds: tuple[float, float] | None = None) -> tuple[float, float] | None:
    """Student's t-interval of the mean (as ``scipy.stats.t.interval``): n-1 degrees of freedom and the
    standard error of the mean. It covers near its nominal rate with 3 or 6 seeds of normal or moderately
    skewed values (not under heavy skew; module docstring).

    None for a single value; ``(mean, mean)`` when all values are equal; clipped to ``bounds``."""
    arr = _check(values, confidence)
    return None if arr.size < 2 else _t(arr, confidence, bounds)


def bootstrap_ci(values: Sequence[float], confidence: float = 0.95, n_resamples: int = 1000,
                 seed: int = 0, *, bounds: tuple[float, float] | None = None) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean, kept for comparison with the reference: it under-covers
    with few seeds (nominal 95% covers 0.75 with 3 seeds, 0.86 with 6; module docstring).

    Draws ``n_resamples`` resamples of ``len(values)`` indices with replacement from
    ``numpy.random.default_rng(seed)`` (one ``integers`` call, shape ``(n_resamples, len(values))``),
    takes each resample's mean, and returns the ``(1-confidence)/2`` and ``(1+confidence)/2`` quantiles
    (numpy's default linear interpolation), clipped to ``bounds``. Same inputs and seed give the same
    interval. None for a single value."""
    arr = _check(values, confidence)
    _check_resamples(n_resamples)
    if arr.size < 2:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.size, size=(n_resamples, arr.size))
    return _clip(*_percentile(arr[idx].mean(axis=1), confidence), bounds)


def cluster_t_interval(groups: Sequence[Sequence[float]], confidence: float = 0.95, *,
                       bounds: tuple[float, float] | None = None) -> tuple[float, float] | None:
    """t-interval of the grand mean for clustered values (e.g. 3 MLAC training seeds, each attacked with 3
    attacker seeds): the t-interval over the cluster means, clusters-1 degrees of freedom. The default for
    pooled designs: values within a cluster share their cluster's effect, so pooling them as independent
    under-covers (0.72 with 3 x 3 values in the module docstring's design; this interval 0.95).

    Each cluster counts once (the centre is the mean of the cluster means; the grand mean when the design
    is balanced). None with fewer than 2 clusters; clipped to ``bounds``."""
    arrays = _check_groups(groups, confidence)
    if len(arrays) < 2:
        return None
    return _t(np.asarray([a.mean() for a in arrays]), confidence, bounds)


def cluster_bootstrap_ci(groups: Sequence[Sequence[float]], confidence: float = 0.95, n_resamples: int = 1000,
                         seed: int = 0, *, bounds: tuple[float, float] | None = None) -> tuple[float, float] | None:
    """Two-level percentile bootstrap of the grand mean of clustered values: each resample draws clusters
    with replacement, then values with replacement within each drawn cluster, and averages the drawn
    clusters' means. It under-covers with few clusters (nominal 95% covers 0.77 with 3 clusters, 0.88
    with 6, in the module docstring's design): it sees no more spread than the few clusters show, which
    is why :func:`cluster_t_interval` is the default.

    ``numpy.random.default_rng(seed)`` draws the clusters (one ``integers`` call, shape
    ``(n_resamples, clusters)``), then the within-cluster picks (one ``random`` call, shape
    ``(n_resamples, clusters, largest cluster)``, scaled to each drawn cluster's size). Quantiles and
    clipping as :func:`bootstrap_ci`; None with fewer than 2 clusters."""
    arrays = _check_groups(groups, confidence)
    _check_resamples(n_resamples)
    if len(arrays) < 2:
        return None
    sizes = np.asarray([a.size for a in arrays])
    padded = np.zeros((len(arrays), int(sizes.max())))
    for i, a in enumerate(arrays):
        padded[i, : a.size] = a
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, len(arrays), size=(n_resamples, len(arrays)))
    m = sizes[drawn]  # (R, k): size of each drawn cluster
    inner = np.floor(rng.random((n_resamples, len(arrays), padded.shape[1])) * m[..., None]).astype(int)
    valid = np.arange(padded.shape[1]) < m[..., None]
    picked = np.where(valid, padded[drawn[..., None], inner], 0.0)
    means = (picked.sum(axis=2) / m).mean(axis=1)
    return _clip(*_percentile(means, confidence), bounds)


@dataclass(frozen=True)
class PairedDifference:
    """A paired comparison of two sets of values matched by position (by seed): ``mean_difference`` = mean
    of a - b, ``ci`` its t-interval clipped to [-1, 1] (differences of accuracies), ``p_value`` the
    two-sided paired t-test. ``ci`` and ``p_value`` are None with fewer than 2 pairs."""

    mean_difference: float
    ci: tuple[float, float] | None
    p_value: float | None
    n_pairs: int


def paired_test(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> PairedDifference:
    """Paired t-test of ``a`` against ``b`` (``scipy.stats.ttest_rel``, two-sided) and the t-interval of
    the mean difference a - b.

    Differences without spread (equal up to float rounding, :data:`NO_SPREAD_RTOL`: ``0.7 - 0.6`` and
    ``0.8 - 0.7`` differ in the last bits) have no t-statistic: all 0 give p = 1.0; identical nonzero
    differences give the exact two-sided sign test's p = 2^(1-n) (every sign agrees), not the t-test's
    limit of 0, which would claim certainty from two pairs. The interval is then the degenerate
    ``(d, d)``. Unequal lengths or no pair at all are a ConfigError."""
    x, y = _check(a, confidence), _check(b, confidence)
    if x.size != y.size:
        raise ConfigError(f"a paired test needs one value per pair on each side, got {x.size} and {y.size}")
    d = x - y
    mean = float(d.mean())
    if d.size < 2:
        return PairedDifference(mean, None, None, int(d.size))
    tol = NO_SPREAD_RTOL * max(1.0, float(np.abs(x).max()), float(np.abs(y).max()))
    if float(np.ptp(d)) > tol:
        ci = t_interval(d.tolist(), confidence, bounds=DIFFERENCE_BOUNDS)
        return PairedDifference(mean, ci, float(sps.ttest_rel(x, y).pvalue), int(d.size))
    p = 1.0 if abs(mean) <= tol else min(1.0, 2.0 * 0.5 ** d.size)
    return PairedDifference(mean, _clip(mean, mean, DIFFERENCE_BOUNDS), p, int(d.size))


def holm_adjust(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm step-down adjusted p-values (family-wise error control over the non-None entries): the i-th
    smallest of m p-values becomes ``max_{j<=i} min(1, (m - j + 1) p_(j))``, so the adjusted values keep
    the raw order and never exceed 1. None entries are passed through and not counted in m."""
    present = [(i, p) for i, p in enumerate(p_values) if p is not None]
    for _, p in present:
        if not (math.isfinite(p) and 0.0 <= p <= 1.0):
            raise ConfigError(f"p-values must be in [0, 1], got {p}")
    out: list[float | None] = [None] * len(p_values)
    m, running = len(present), 0.0
    for rank, (i, p) in enumerate(sorted(present, key=lambda ip: ip[1])):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out
