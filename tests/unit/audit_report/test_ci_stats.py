"""Confidence intervals over seeds and curve building: checked against explicit references (coverage is
checked by simulation in ``test_coverage.py``)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from mlac.audit.curves import ACCURACY_BOUNDS, CurvePoint, SeedPoint, build_curves, models_of, series
from mlac.audit.stats import bootstrap_ci, cluster_bootstrap_ci, cluster_t_interval, t_interval
from mlac.errors import ConfigError, DataError

SAMPLES = [
    [0.61, 0.72, 0.65, 0.70, 0.58, 0.69],
    [0.50, 0.90],
    [-1.0, 2.5, 0.25, 7.0, 3.0],
    list(np.linspace(0.4, 0.6, 15)),
]


def _reference_bootstrap(values: list[float], confidence: float, n_resamples: int, seed: int) -> tuple[float, float]:
    """The textbook percentile bootstrap, written out with a loop over resamples."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(values), size=(n_resamples, len(values)))
    means = []
    for row in draws:
        total = 0.0
        for i in row:
            total += values[int(i)]
        means.append(total / len(values))
    alpha = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(means, [alpha, 100 - alpha])
    return float(lo), float(hi)


@pytest.mark.parametrize("values", SAMPLES)
@pytest.mark.parametrize(("confidence", "seed"), [(0.95, 0), (0.9, 7)])
def test_bootstrap_equals_explicit_reference(values: list[float], confidence: float, seed: int) -> None:
    got = bootstrap_ci(values, confidence, 1000, seed)
    ref = _reference_bootstrap(values, confidence, 1000, seed)
    assert got == pytest.approx(ref, abs=1e-12)
    assert got[0] <= float(np.mean(values)) <= got[1]


def test_bootstrap_is_seeded_insufficient_for_one_value_and_clipped() -> None:
    assert bootstrap_ci(SAMPLES[0], seed=3) == bootstrap_ci(SAMPLES[0], seed=3)
    assert bootstrap_ci(SAMPLES[0], seed=3) != bootstrap_ci(SAMPLES[0], seed=4)
    assert bootstrap_ci([0.7]) is None
    assert bootstrap_ci([0.4, 0.4, 0.4]) == pytest.approx((0.4, 0.4))
    assert bootstrap_ci(SAMPLES[2]) == pytest.approx((0.05, 4.85))
    assert bootstrap_ci(SAMPLES[2], bounds=(0.1, 4.0)) == pytest.approx((0.1, 4.0))
    assert bootstrap_ci(SAMPLES[2], bounds=(0.0, 0.01)) == (0.01, 0.01)  # clipped ends never cross


@pytest.mark.parametrize("values", SAMPLES)
@pytest.mark.parametrize("confidence", [0.95, 0.8])
def test_t_interval_equals_scipy(values: list[float], confidence: float) -> None:
    ref = sps.t.interval(confidence, len(values) - 1, loc=np.mean(values), scale=sps.sem(values))
    assert t_interval(values, confidence) == pytest.approx(ref, abs=1e-12)


def test_t_interval_insufficient_degenerate_and_known_value() -> None:
    assert t_interval([0.5]) is None
    assert t_interval([0.3, 0.3]) == (0.3, 0.3)
    # [0, 1]: mean 0.5, sem 0.5, t_{0.975, 1} = 12.7062...
    lo, hi = t_interval([0.0, 1.0])
    assert hi - 0.5 == pytest.approx(0.5 * 12.706204736174707, rel=1e-9) and lo == pytest.approx(1.0 - hi)


def test_t_interval_is_clipped_to_bounds() -> None:
    lo, hi = t_interval([0.97, 1.0, 0.99])  # type: ignore[misc]
    assert hi > 1.0 and t_interval([0.97, 1.0, 0.99], bounds=ACCURACY_BOUNDS) == (lo, 1.0)
    assert t_interval([0.0, 0.01], bounds=ACCURACY_BOUNDS)[0] == 0.0  # type: ignore[index]
    assert t_interval([1.0, 1.0], bounds=ACCURACY_BOUNDS) == (1.0, 1.0)


def test_cluster_t_interval_is_the_t_interval_over_cluster_means() -> None:
    groups = [[0.6, 0.62, 0.64], [0.5, 0.53], [0.7, 0.71, 0.69, 0.72]]
    means = [float(np.mean(g)) for g in groups]
    assert cluster_t_interval(groups) == pytest.approx(t_interval(means), abs=1e-12)
    ref = sps.t.interval(0.9, 2, loc=np.mean(means), scale=sps.sem(means))
    assert cluster_t_interval(groups, 0.9) == pytest.approx(ref, abs=1e-12)
    assert cluster_t_interval([[0.2, 0.9, 0.5]]) is None  # one cluster: no between-cluster spread
    assert cluster_t_interval([[0.4, 0.6], [0.5, 0.5]]) == (0.5, 0.5)
    assert cluster_t_interval([[0.99, 1.0], [0.9, 0.92]], bounds=ACCURACY_BOUNDS)[1] == 1.0  # type: ignore[index]


def _reference_cluster_bootstrap(groups: list[list[float]], confidence: float, n_resamples: int,
                                 seed: int) -> tuple[float, float]:
    """The two-level bootstrap written out with loops, on the same random stream."""
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, len(groups), size=(n_resamples, len(groups)))
    u = rng.random((n_resamples, len(groups), max(len(g) for g in groups)))
    means = []
    for r in range(n_resamples):
        cluster_means = []
        for j, c in enumerate(drawn[r]):
            g = groups[int(c)]
            cluster_means.append(sum(g[int(u[r, j, t] * len(g))] for t in range(len(g))) / len(g))
        means.append(sum(cluster_means) / len(cluster_means))
    alpha = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(means, [alpha, 100 - alpha])
    return float(lo), float(hi)


@pytest.mark.parametrize("groups", [[[0.6, 0.62, 0.64], [0.5, 0.53], [0.7, 0.71, 0.69, 0.72]],
                                    [[0.1, 0.2], [0.3, 0.8], [0.5, 0.5], [0.9, 0.4]]])
def test_cluster_bootstrap_equals_explicit_reference(groups: list[list[float]]) -> None:
    got = cluster_bootstrap_ci(groups, 0.9, 300, seed=5)
    assert got == pytest.approx(_reference_cluster_bootstrap(groups, 0.9, 300, 5), abs=1e-12)
    assert got == cluster_bootstrap_ci(groups, 0.9, 300, seed=5) != cluster_bootstrap_ci(groups, 0.9, 300, seed=6)


def test_cluster_bootstrap_of_singletons_is_the_plain_bootstrap_and_needs_two_clusters() -> None:
    values = SAMPLES[0]
    assert cluster_bootstrap_ci([[v] for v in values], seed=3) == bootstrap_ci(values, seed=3)
    assert cluster_bootstrap_ci([[0.5, 0.6, 0.7]]) is None
    assert cluster_bootstrap_ci([[1.0, 1.0], [0.98, 1.0]], bounds=(0.0, 0.99))[1] == 0.99  # type: ignore[index]


@pytest.mark.parametrize("bad", [{"values": []}, {"values": [0.5, float("nan")]}, {"values": [0.5], "confidence": 1.0},
                                 {"values": [0.5], "confidence": 0.0}])
def test_interval_input_errors(bad: dict) -> None:
    with pytest.raises(ConfigError):
        bootstrap_ci(**bad)
    with pytest.raises(ConfigError):
        t_interval(**bad)
    groups = {"groups": [bad["values"], [0.5, 0.6]], **{k: v for k, v in bad.items() if k != "values"}}
    with pytest.raises(ConfigError):
        cluster_t_interval(**groups)
    with pytest.raises(ConfigError):
        cluster_bootstrap_ci(**groups)


def test_resample_count_and_cluster_list_are_checked() -> None:
    with pytest.raises(ConfigError, match="n_resamples"):
        bootstrap_ci([0.5, 0.6], n_resamples=0)
    with pytest.raises(ConfigError, match="n_resamples"):
        cluster_bootstrap_ci([[0.5], [0.6]], n_resamples=0)
    with pytest.raises(ConfigError, match="cluster"):
        cluster_t_interval([])


def _point(model: str, task: str, n: int, seed: int, acc: float, **kw: object) -> SeedPoint:
    return SeedPoint(model, task, n, seed, acc, acc + 0.1, [acc, acc], {"lr": 0.001 * (seed + 1)}, **kw)  # type: ignore[arg-type]


def test_build_curves_groups_and_summarises() -> None:
    points = [_point("m", "harmful", 100, s, a, trials_run=5, failed_trials=1, attacker_wall_s=2.0, attacker_flops=1e9)
              for s, a in ((2, 0.7), (0, 0.6), (1, 0.65))]
    points += [_point("m", "harmful", 20, 0, 0.55), _point("random", "harmful", 20, 0, 0.5)]
    curves = build_curves(points)
    assert [(c.model, c.n) for c in curves] == [("m", 20), ("m", 100), ("random", 20)]
    c = curves[1]
    assert c.seeds == [0, 1, 2] and c.per_seed == [0.6, 0.65, 0.7] and c.mean == pytest.approx(0.65)
    assert c.ci_bootstrap == bootstrap_ci([0.6, 0.65, 0.7], bounds=ACCURACY_BOUNDS)
    assert c.ci_t == t_interval([0.6, 0.65, 0.7], bounds=ACCURACY_BOUNDS)
    assert curves[0].ci_t is None and curves[0].ci_bootstrap is None  # one seed: insufficient
    assert c.best_params == [{"lr": 0.001}, {"lr": 0.002}, {"lr": 0.003}]
    assert (c.trials_run, c.failed_trials, c.attacker_wall_s, c.attacker_flops) == (15, 3, 6.0, 3e9)
    assert c.selection_mean == pytest.approx(0.75)
    assert [p.n for p in series(curves, "m", "harmful")] == [20, 100]
    assert models_of(curves) == ["m", "random"]


def test_build_curves_rejects_a_repeated_seed() -> None:
    with pytest.raises(DataError, match="repeated"):
        build_curves([_point("m", "harmful", 20, 0, 0.5), _point("m", "harmful", 20, 0, 0.6)])


def test_records_round_trip_and_validate() -> None:
    p = _point("m", "harmful", 20, 0, 0.5, trial_history=[{"trial": 1, "wall_s_cum": 1.0}])
    assert SeedPoint.from_dict(p.to_dict()) == p
    c = build_curves([p, _point("m", "harmful", 20, 1, 0.6)])[0]
    assert CurvePoint.from_dict(c.to_dict()) == c
    assert SeedPoint.from_dict({**p.to_dict(), "added_later": 1}) == p  # additive fields are ignored
    for broken in ({k: v for k, v in p.to_dict().items() if k != "seed"}, {**p.to_dict(), "n": "20"},
                   {**p.to_dict(), "report_accuracy": float("nan")}, [1, 2]):
        with pytest.raises(DataError):
            SeedPoint.from_dict(broken)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="ci_t"):
        CurvePoint.from_dict({**c.to_dict(), "ci_t": [0.1]})


def test_bootstrap_agrees_with_scipy_percentile_within_monte_carlo_error() -> None:
    sample = SAMPLES[0]
    ref = sps.bootstrap((np.asarray(sample),), np.mean, n_resamples=20000, method="percentile", confidence_level=0.95,
                        rng=np.random.default_rng(1)).confidence_interval
    lo, hi = bootstrap_ci(sample, 0.95, 20000, seed=2)  # type: ignore[misc]
    assert lo == pytest.approx(ref.low, abs=0.004) and hi == pytest.approx(ref.high, abs=0.004)
    assert lo < float(np.mean(sample)) < hi
