"""Do the 95% intervals cover 95% of the time? Simulated seed values with a known mean, each interval
computed by the audit's own functions, and the share of intervals containing the true mean.

Each check uses enough seeded data sets that its threshold lies several Monte-Carlo standard errors from
the coverage measured with 20 000 data sets (``mlac.audit.stats``'s docstring), so a correct interval
passes for any seed and a wrong one (a z quantile, a doubled width, pooled clusters) fails.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from mlac.audit.stats import bootstrap_ci, cluster_bootstrap_ci, cluster_t_interval, t_interval

Interval = tuple[float, float] | None
BETA_MEAN = 8.0 / 11.0  # mean of Beta(8, 3): a skewed, accuracy-like distribution on [0, 1]


def _coverage(interval: Callable[[Sequence], Interval], datasets: np.ndarray, truth: float) -> tuple[float, float]:
    """(share of ``datasets`` whose interval contains ``truth``, its Monte-Carlo standard error)."""
    hits = 0
    for data in datasets.tolist():
        ci = interval(data)
        assert ci is not None
        hits += ci[0] <= truth <= ci[1]
    share = hits / len(datasets)
    return share, math.sqrt(share * (1.0 - share) / len(datasets))


def _draw(kind: str, seeds: int, count: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    if kind == "normal":
        return rng.normal(0.6, 0.05, size=(count, seeds)), 0.6
    return rng.beta(8.0, 3.0, size=(count, seeds)), BETA_MEAN


@pytest.mark.parametrize("kind", ["normal", "beta"])
@pytest.mark.parametrize("seeds", [3, 6])
def test_t_interval_covers_at_its_nominal_rate(kind: str, seeds: int) -> None:
    # Measured (20 000 sets): 0.951 / 0.949 normal, 0.941 / 0.941 Beta(8, 3); SE here ~0.0024, so 0.93 is
    # >= 4 SE below and 0.97 (a too-wide interval) >= 8 SE above. A z interval would cover ~0.81 at 3 seeds.
    datasets, truth = _draw(kind, seeds, 10_000, np.random.default_rng(100 + seeds))
    share, se = _coverage(t_interval, datasets, truth)
    assert se < 0.003
    assert 0.93 <= share <= 0.97, (kind, seeds, share)


def test_percentile_bootstrap_under_covers_with_three_seeds() -> None:
    # Negative control: the reference's interval covers ~0.75 with 3 seeds (SE here ~0.007).
    datasets, truth = _draw("normal", 3, 4_000, np.random.default_rng(7))
    share, _ = _coverage(bootstrap_ci, datasets, truth)
    assert share < 0.85, share


def _clustered(clusters: int, per_cluster: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` data sets of ``clusters`` training seeds x ``per_cluster`` attacker seeds around 0.6: a
    between-training-seed SD of 0.04 and a within SD of 0.02."""
    between = rng.normal(0.0, 0.04, size=(count, clusters, 1))
    return 0.6 + between + rng.normal(0.0, 0.02, size=(count, clusters, per_cluster))


def test_cluster_t_interval_covers_where_pooling_the_values_does_not() -> None:
    # Measured (10 000 sets, 3 x 3): cluster t 0.948, t over the 9 pooled values 0.719, two-level bootstrap
    # 0.770. SE here ~0.0035 (cluster t) and ~0.007 (the others): every threshold is > 7 SE away.
    datasets = _clustered(3, 3, 4_000, np.random.default_rng(11))
    cluster, se = _coverage(cluster_t_interval, datasets, 0.6)
    assert se < 0.004 and cluster >= 0.93, cluster
    pooled, _ = _coverage(lambda g: t_interval([v for c in g for v in c]), datasets, 0.6)
    assert pooled < 0.80, pooled
    boot, _ = _coverage(cluster_bootstrap_ci, datasets[:2_000], 0.6)
    assert boot < 0.85, boot  # documented: the two-level bootstrap under-covers with 3 clusters
