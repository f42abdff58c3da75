"""Confidence intervals: the bootstrap against explicit numpy references and scipy, the t-interval against scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from mlac.audit.curves import SeedPoint, build_curves
from mlac.audit.stats import bootstrap_ci, t_interval
from mlac.errors import ConfigError, DataError

SAMPLE = [0.61, 0.72, 0.65, 0.70, 0.58, 0.69]


def _loop_reference(values: list[float], confidence: float, n_resamples: int, seed: int) -> tuple[float, float]:
    """Textbook percentile bootstrap, one resample at a time."""
    rng = np.random.default_rng(seed)
    arr = np.asarray(values)
    means = [float(arr[rng.integers(0, arr.size, size=arr.size)].mean()) for _ in range(n_resamples)]
    alpha = (1 - confidence) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


@pytest.mark.parametrize("confidence", [0.9, 0.95])
@pytest.mark.parametrize("seed", [0, 7])
def test_bootstrap_equals_explicit_reference(confidence: float, seed: int) -> None:
    assert bootstrap_ci(SAMPLE, confidence, 1000, seed) == pytest.approx(_loop_reference(SAMPLE, confidence, 1000, seed), abs=1e-12)


def test_bootstrap_agrees_with_scipy_percentile_within_monte_carlo_error() -> None:
    ref = sps.bootstrap((np.asarray(SAMPLE),), np.mean, n_resamples=20000, method="percentile", confidence_level=0.95,
                        rng=np.random.default_rng(1)).confidence_interval
    lo, hi = bootstrap_ci(SAMPLE, 0.95, 20000, seed=2)
    assert lo == pytest.approx(ref.low, abs=0.004) and hi == pytest.approx(ref.high, abs=0.004)
    assert lo < float(np.mean(SAMPLE)) < hi


def test_bootstrap_is_seeded_and_degenerate_for_one_value() -> None:
    assert bootstrap_ci(SAMPLE, seed=3) == bootstrap_ci(SAMPLE, seed=3)
    assert bootstrap_ci(SAMPLE, seed=3) != bootstrap_ci(SAMPLE, seed=4)
    assert bootstrap_ci([0.7]) == (0.7, 0.7)
    assert bootstrap_ci([0.5, 0.5, 0.5]) == (0.5, 0.5)


@pytest.mark.parametrize("values", [SAMPLE, [0.1, 0.9], [0.5, 0.52, 0.49, 0.61, 0.55, 0.5, 0.58, 0.47, 0.53, 0.6]])
@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_t_interval_equals_scipy(values: list[float], confidence: float) -> None:
    ref = sps.t.interval(confidence, len(values) - 1, loc=np.mean(values), scale=sps.sem(values))
    assert t_interval(values, confidence) == pytest.approx(ref, abs=1e-12)


def test_t_interval_degenerate_cases() -> None:
    assert t_interval([0.5]) == (0.5, 0.5)
    assert t_interval([0.4, 0.4, 0.4]) == pytest.approx((0.4, 0.4))


@pytest.mark.parametrize("call", [
    lambda: bootstrap_ci([]), lambda: t_interval([]), lambda: bootstrap_ci(SAMPLE, 1.0), lambda: t_interval(SAMPLE, 0.0),
    lambda: bootstrap_ci([0.5, float("nan")]), lambda: bootstrap_ci(SAMPLE, n_resamples=0),
])
def test_bad_input_is_a_clear_error(call) -> None:
    with pytest.raises((ConfigError, DataError)):
        call()


def test_build_curves_groups_seeds() -> None:
    pts = [SeedPoint("m", "harmful", n, s, acc, acc, trials_run=3, attacker_wall_s=1.5, best_params={"lr": s})
           for n, accs in ((20, [0.6, 0.7, 0.65]), (100, [0.8, 0.9, 0.85])) for s, acc in enumerate(accs)]
    curves = build_curves(list(reversed(pts)))
    assert [(c.n, c.seeds) for c in curves] == [(20, [0, 1, 2]), (100, [0, 1, 2])]
    c = curves[0]
    assert c.mean == pytest.approx(0.65) and c.per_seed == [0.6, 0.7, 0.65]
    assert c.ci_bootstrap == bootstrap_ci([0.6, 0.7, 0.65]) and c.ci_t == t_interval([0.6, 0.7, 0.65])
    assert c.best_params == [{"lr": 0}, {"lr": 1}, {"lr": 2}] and c.trials_run == 9 and c.attacker_wall_s == 4.5
    with pytest.raises(DataError, match="repeated"):
        build_curves([pts[0], pts[0]])
