"""Paired statistics: the paired t-test and Holm against references, per-n paired comparisons on seed
points, and the seed-resampling bootstrap of the data-cost multiplier."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from mlac.audit.curves import SeedPoint, build_curves, series
from mlac.audit.derived import data_cost_multiplier
from mlac.audit.paired import DataCostInterval, PairedComparison, data_cost_intervals, paired_comparisons
from mlac.audit.stats import holm_adjust, paired_test, t_interval
from mlac.errors import ConfigError, DataError

A = [0.62, 0.58, 0.66, 0.61, 0.70]
B = [0.80, 0.79, 0.83, 0.74, 0.86]


def test_paired_test_equals_scipy_ttest_rel() -> None:
    got = paired_test(A, B, 0.9)
    ref = sps.ttest_rel(A, B)
    diffs = [a - b for a, b in zip(A, B, strict=True)]
    assert got.n_pairs == 5 and got.mean_difference == pytest.approx(float(np.mean(diffs)), abs=1e-12)
    assert got.p_value == pytest.approx(float(ref.pvalue), rel=1e-10)
    assert got.ci == pytest.approx(t_interval(diffs, 0.9), abs=1e-12)
    low = sps.t.interval(0.9, 4, loc=np.mean(diffs), scale=sps.sem(diffs))
    assert got.ci == pytest.approx(low, abs=1e-12)
    assert paired_test(B, A).p_value == pytest.approx(got.p_value)  # two-sided


def test_paired_test_without_spread_or_with_one_pair() -> None:
    same = paired_test([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert (same.mean_difference, same.ci, same.p_value) == (0.0, (0.0, 0.0), 1.0)
    shifted = paired_test([0.6, 0.7, 0.8], [0.5, 0.6, 0.7])  # identical nonzero differences: sign test
    assert shifted.mean_difference == pytest.approx(0.1) and shifted.p_value == pytest.approx(0.25)
    assert shifted.ci == pytest.approx((0.1, 0.1))
    one = paired_test([0.9], [0.4])
    assert (one.mean_difference, one.ci, one.p_value, one.n_pairs) == (pytest.approx(0.5), None, None, 1)
    assert paired_test([1.0, 0.98, 1.0], [0.0, 0.05, 0.0]).ci[1] == 1.0  # type: ignore[index]  # clipped
    with pytest.raises(ConfigError, match="one value per pair"):
        paired_test([0.5, 0.6], [0.5])


def test_holm_adjust_by_hand() -> None:
    # sorted: 0.005 x4 = 0.02; 0.01 x3 = 0.03; 0.03 x2 = 0.06; 0.04 x1 = 0.04 -> kept monotone at 0.06
    assert holm_adjust([0.01, None, 0.04, 0.03, 0.005]) == pytest.approx([0.03, None, 0.06, 0.06, 0.02])
    assert holm_adjust([0.5, 0.6]) == [1.0, 1.0]  # capped at 1
    assert holm_adjust([0.2]) == [0.2] and holm_adjust([None]) == [None] and holm_adjust([]) == []
    with pytest.raises(ConfigError):
        holm_adjust([0.1, 1.5])


def _sp(model: str, n: int, seed: int, acc: float, task: str = "harmful") -> SeedPoint:
    return SeedPoint(model, task, n, seed, acc, acc)


def test_paired_comparisons_pair_by_seed_and_apply_holm() -> None:
    points = [_sp("m", 20, s, a) for s, a in ((0, 0.55), (1, 0.60), (2, 0.52))]
    points += [_sp("base", 20, s, a) for s, a in ((0, 0.80), (1, 0.82), (2, 0.78), (3, 0.99))]  # seed 3: base only
    points += [_sp("m", 100, s, a) for s, a in ((0, 0.70), (1, 0.74), (2, 0.69), (4, 0.10))]  # seed 4: m only
    points += [_sp("base", 100, s, a) for s, a in ((0, 0.90), (1, 0.91), (2, 0.93))]
    points += [_sp("m", 50, 0, 0.6), _sp("base", 50, 0, 0.85), _sp("m", 200, 0, 0.8)]  # 50: one pair; 200: m only
    points += [_sp("m", 20, 0, 0.0, task="beneficial"), _sp("random", 20, 0, 0.5)]  # other task / model: ignored
    rows = paired_comparisons(points, "m", "base", "harmful")
    assert [(r.n, r.seeds) for r in rows] == [(20, [0, 1, 2]), (50, [0]), (100, [0, 1, 2])]
    first = rows[0]
    assert first.mean_difference == pytest.approx(np.mean([0.55 - 0.80, 0.60 - 0.82, 0.52 - 0.78]))
    assert first.p_value == pytest.approx(float(sps.ttest_rel([0.55, 0.60, 0.52], [0.80, 0.82, 0.78]).pvalue))
    assert rows[1].mean_difference == pytest.approx(-0.25) and rows[1].p_value is None and rows[1].p_holm is None
    # Holm over the two n with a p-value (the single pair at n=50 is not counted): the smaller p doubles,
    # the larger stays unless the doubled smaller one exceeds it.
    p20, p100 = rows[0].p_value, rows[2].p_value
    assert p20 is not None and p100 is not None
    small, large = sorted((p20, p100))
    expected = {small: min(1.0, 2 * small), large: max(min(1.0, 2 * small), large)}
    assert (rows[0].p_holm, rows[2].p_holm) == pytest.approx((expected[p20], expected[p100]))
    assert all((r.model, r.reference, r.task) == ("m", "base", "harmful") for r in rows)
    assert paired_comparisons(points, "m", "nobody", "harmful") == []
    with pytest.raises(ConfigError):
        paired_comparisons(points, "m", "nobody", "harmful", confidence=1.5)


def test_paired_comparison_round_trip_and_validation() -> None:
    row = paired_comparisons([_sp("m", 20, s, 0.5 + 0.01 * s) for s in range(3)]
                             + [_sp("base", 20, s, 0.8 - 0.02 * s) for s in range(3)], "m", "base", "harmful")[0]
    assert PairedComparison.from_dict(row.to_dict()) == row and isinstance(row.to_dict()["ci"], list)
    assert PairedComparison.from_dict({**row.to_dict(), "added_later": 1}) == row
    good = row.to_dict()
    for broken in ({k: v for k, v in good.items() if k != "seeds"}, {**good, "n": "20"}, {**good, "ci": [0.1]},
                   {**good, "p_value": True}, {**good, "seeds": [0, "1"]}, {**good, "mean_difference": None}, [1]):
        with pytest.raises(DataError):
            PairedComparison.from_dict(broken)
    with pytest.raises(DataError, match="repeated"):
        paired_comparisons([_sp("m", 20, 0, 0.5), _sp("m", 20, 0, 0.6)], "m", "base", "harmful")


BASE = {20: 0.70, 50: 0.78, 100: 0.85, 200: 0.90}
MODEL = {20: 0.55, 50: 0.62, 100: 0.72, 200: 0.80}
OFFSETS = [0.03, -0.02, 0.0, 0.015, -0.025]  # per seed: a seed is one data draw, shared by both models


def _curves_points(model_at_200: list[float] | None = None, seeds: int = 5) -> list[SeedPoint]:
    points = []
    for s in range(seeds):
        for n in BASE:
            points.append(_sp("base", n, s, round(BASE[n] + 0.5 * OFFSETS[s], 6)))
            offset = model_at_200[s] if model_at_200 is not None and n == 200 else OFFSETS[s]
            points.append(_sp("m", n, s, round(MODEL[n] + offset, 6)))
    return points


def _reference_intervals(points: list[SeedPoint], seeds: list[int], n_resamples: int,
                         seed: int) -> dict[int, list[float]]:
    """Each resample rebuilt as seed points and passed through build_curves and data_cost_multiplier."""
    idx = np.random.default_rng(seed).integers(0, len(seeds), size=(n_resamples, len(seeds)))
    samples: dict[int, list[float]] = {}
    for row in idx:
        drawn = [SeedPoint(p.model, p.task, p.n, k, p.report_accuracy, 0.0)
                 for k, i in enumerate(row) for p in points if p.seed == seeds[int(i)]]
        curves = build_curves(drawn, n_resamples=1)
        for r in data_cost_multiplier(series(curves, "m", "harmful"), series(curves, "base", "harmful")):
            samples.setdefault(r["n"], []).append(math.inf if r["multiplier"] is None else r["multiplier"])
    return samples


def test_data_cost_intervals_equal_a_resampled_reference_and_bracket_the_point_value() -> None:
    points = _curves_points()
    got = data_cost_intervals(points, "m", n_resamples=200, seed=3)
    assert [i.n for i in got] == [20, 50, 100, 200] and all(i.seeds == [0, 1, 2, 3, 4] for i in got)
    ref = _reference_intervals(points, [0, 1, 2, 3, 4], 200, 3)
    point = {r["n"]: r for r in data_cost_multiplier(*(series(build_curves(points), m, "harmful") for m in ("m", "base")))}
    for interval in got[:2]:  # reached in every resample: plain numpy percentiles
        assert interval.reached_share == 1.0
        assert (interval.lo, interval.hi) == pytest.approx(tuple(np.quantile(ref[interval.n], [0.025, 0.975])))
        assert point[interval.n]["bound"] == "exact"
        assert interval.lo < point[interval.n]["multiplier"] < interval.hi  # type: ignore[operator]
    for interval in got[2:]:  # never reached: both ends infinite
        assert (interval.lo, interval.hi, interval.reached_share) == (None, None, 0.0)
        assert point[interval.n]["bound"] == "lower"
    assert got == data_cost_intervals(points, "m", n_resamples=200, seed=3)
    assert got[0].to_dict() == {"n": 20, "lo": got[0].lo, "hi": got[0].hi, "reached_share": 1.0,
                                "seeds": [0, 1, 2, 3, 4], "confidence": 0.95}


def test_data_cost_upper_end_is_not_reached_when_some_resamples_never_reach() -> None:
    # At n=200 the model ends at 0.80 +- 0.06: some seed draws stay below base's n=50 accuracy (0.78 +- 0.01).
    points = _curves_points(model_at_200=[0.06, -0.06, -0.01, 0.05, -0.05])
    at_50 = data_cost_intervals(points, "m", n_resamples=400)[1]
    assert at_50.n == 50 and 0.1 < at_50.reached_share < 0.975
    assert at_50.hi is None and at_50.lo is not None and at_50.lo > 1.0
    ref = sorted(_reference_intervals(points, [0, 1, 2, 3, 4], 400, 0)[50])
    assert at_50.reached_share == pytest.approx(np.mean(np.isfinite(ref)))
    assert at_50.lo == pytest.approx(float(np.quantile(ref, 0.025)))


def test_data_cost_intervals_use_only_complete_seeds_and_need_two() -> None:
    points = _curves_points(seeds=5)
    partial = [p for p in points if not (p.seed == 4 and p.model == "base" and p.n == 100)]
    assert all(i.seeds == [0, 1, 2, 3] for i in data_cost_intervals(partial, "m", n_resamples=50))
    one = [p for p in points if p.seed == 0]
    assert data_cost_intervals(one, "m") == []  # insufficient: one seed has no spread to resample
    assert data_cost_intervals(points, "m", base="nobody") == []
    with pytest.raises(ConfigError):
        data_cost_intervals(points, "m", confidence=1.0)
    with pytest.raises(ConfigError):
        data_cost_intervals(points, "m", n_resamples=0)
    assert isinstance(data_cost_intervals(points, "m", n_resamples=10)[0], DataCostInterval)
