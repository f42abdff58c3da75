"""Derived metrics on hand-made curves: data-cost multiplier, harmful AUC vs random, beneficial drop, budget curves."""

from __future__ import annotations

import math

import pytest

from mlac.audit.budget import budget_curves
from mlac.audit.curves import SeedPoint
from mlac.audit.derived import (
    auc_log_n,
    beneficial_drop_vs_base,
    data_cost_multiplier,
    examples_needed,
    harmful_auc_relative_to_random,
)


def test_data_cost_same_curve_is_one(make_curve) -> None:
    base = make_curve("base", "harmful", {20: 0.8, 100: 0.9})
    rows = data_cost_multiplier(make_curve("m", "harmful", {20: 0.8, 100: 0.9}), base)
    assert [(r["n"], r["multiplier"], r["reached"], r["bound"]) for r in rows] == [(20, 1.0, True, "exact"),
                                                                                  (100, 1.0, True, "exact")]


def test_data_cost_interpolates_in_log_n(make_curve) -> None:
    base = make_curve("base", "harmful", {20: 0.8, 100: 0.9})
    rows = data_cost_multiplier(make_curve("m", "harmful", {20: 0.6, 100: 0.7, 400: 0.9}), base)
    # 0.8 lies half-way between 0.7 (n=100) and 0.9 (n=400): log-n midpoint sqrt(100 * 400) = 200 -> 200 / 20
    assert rows[0]["examples_needed"] == pytest.approx(200.0) and rows[0]["multiplier"] == pytest.approx(10.0)
    assert rows[1]["examples_needed"] == pytest.approx(400.0) and rows[1]["multiplier"] == pytest.approx(4.0)


def test_data_cost_never_reached_is_a_lower_bound(make_curve) -> None:
    base = make_curve("base", "harmful", {20: 0.8, 100: 0.9})
    rows = data_cost_multiplier(make_curve("m", "harmful", {20: 0.5, 100: 0.55}), base)
    assert all(r["reached"] is False and r["multiplier"] is None and r["bound"] == "lower" for r in rows)
    assert [r["lower_bound"] for r in rows] == pytest.approx([5.0, 1.0])
    assert rows[0]["display"].startswith("> 100")


def test_data_cost_non_monotone_uses_the_running_max(make_curve) -> None:
    curve = make_curve("m", "harmful", {20: 0.85, 50: 0.7, 100: 0.95})
    # the dip at n=50 does not un-reach 0.85: 0.9 is half-way between 0.85 (n=50 on the envelope) and 0.95
    assert examples_needed(curve, 0.9) == pytest.approx(math.sqrt(50 * 100))
    assert examples_needed(curve, 0.8) == 20.0
    assert examples_needed(curve, 0.99) is None


def test_data_cost_reached_at_smallest_size_is_an_upper_bound(make_curve) -> None:
    rows = data_cost_multiplier(make_curve("m", "harmful", {20: 0.95, 100: 0.96}),
                                make_curve("base", "harmful", {100: 0.9}))
    assert rows[0]["bound"] == "upper" and rows[0]["multiplier"] == pytest.approx(0.2) and "<=" in rows[0]["display"]
    assert data_cost_multiplier([], make_curve("base", "harmful", {20: 0.9})) == []


def test_auc_relative_to_random_by_hand(make_curve) -> None:
    rel = harmful_auc_relative_to_random(make_curve("m", "harmful", {20: 0.5, 100: 0.7}),
                                         make_curve("random", "harmful", {20: 0.5, 100: 0.5}),
                                         make_curve("base", "harmful", {20: 0.9, 100: 0.9}))
    assert rel["auc"] == pytest.approx(0.6) and rel["auc_random"] == pytest.approx(0.5)
    assert rel["ratio_to_random"] == pytest.approx(1.2) and rel["normalised"] == pytest.approx(0.25)
    same = harmful_auc_relative_to_random(make_curve("m", "harmful", {20: 0.5, 100: 0.5}),
                                          make_curve("random", "harmful", {20: 0.5, 100: 0.5}))
    assert same["ratio_to_random"] == pytest.approx(1.0) and same["normalised"] is None


def test_auc_uses_log_n_and_shared_sizes(make_curve) -> None:
    curve = make_curve("m", "harmful", {20: 0.5, 50: 0.6, 200: 0.8})
    expected = (0.55 * math.log(2.5) + 0.7 * math.log(4)) / math.log(10)
    assert auc_log_n(curve) == pytest.approx(expected)
    rel = harmful_auc_relative_to_random(curve, make_curve("random", "harmful", {20: 0.5, 200: 0.5}))
    assert rel["sizes"] == [20, 200] and rel["auc"] == pytest.approx(0.65)


def test_beneficial_drop(make_curve) -> None:
    rows = beneficial_drop_vs_base(make_curve("m", "beneficial", {20: 0.7, 100: 0.85}),
                                   make_curve("base", "beneficial", {20: 0.8, 50: 0.8, 100: 0.84}))
    assert [(r["n"], round(r["drop"], 9)) for r in rows] == [(20, 0.1), (100, -0.01)]


def test_compute_derived_on_a_result(make_result) -> None:
    derived = make_result().derived
    assert derived["audited"] == ["censored"]
    entry = derived["models"]["censored"]
    assert {"data_cost_multiplier", "beneficial_drop_vs_base", "harmful_auc"} <= set(entry)
    assert entry["data_cost_multiplier"][0]["reached"] is False  # censored never reaches base's 0.9
    assert len(derived["budget_curves"]) == 3 * 2 * 2


def _hist(reports: list[float | None], walls: list[float]) -> list[dict]:
    return [{"trial": i + 1, "wall_s_cum": w, "flops_cum": 10.0 * w, "best_report_acc_so_far": r,
             "best_selection_acc_so_far": r} for i, (r, w) in enumerate(zip(reports, walls, strict=True))]


def test_budget_curves_aggregate_seeds() -> None:
    a = SeedPoint("m", "harmful", 20, 0, 0.7, 0.7, trial_history=_hist([None, 0.6, 0.7], [1.0, 2.0, 3.0]))
    b = SeedPoint("m", "harmful", 20, 1, 0.8, 0.8, trial_history=_hist([0.5, 0.8], [2.0, 4.0]))  # stopped early
    (entry,) = budget_curves([a, b])
    assert entry["seeds"] == 2
    # trial 1: seed 0 has no completed trial yet -> not plotted; seed 1 keeps 0.8 after its last trial
    assert [(r["trials"], r["report"]["mean"]) for r in entry["by_trials"]] == [(2, pytest.approx(0.7)),
                                                                               (3, pytest.approx(0.75))]
    assert [(r["wall_s"], r["report"]["mean"]) for r in entry["by_wall_s"]] == [
        (2.0, pytest.approx(0.55)), (3.0, pytest.approx(0.6)), (4.0, pytest.approx(0.75))]
    assert entry["by_wall_s"][-1]["report"]["min"] == pytest.approx(0.7)
    assert [r["flops"] for r in entry["by_flops"]] == [20.0, 30.0, 40.0]
