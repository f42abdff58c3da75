"""Derived metrics on hand-made curves: data-cost multiplier, AUC vs random, beneficial drop."""

from __future__ import annotations

import math

import pytest

from mlac.audit.curves import CurvePoint, SeedPoint, build_curves
from mlac.audit.derived import (
    auc_log_n,
    beneficial_drop_vs_base,
    compute_derived,
    data_cost_multiplier,
    examples_needed,
    harmful_auc_relative_to_random,
)


def _curve(model: str, task: str, pts: dict[int, float]) -> list[CurvePoint]:
    return [CurvePoint(model, task, n, acc, (acc - 0.02, acc + 0.02), (acc - 0.03, acc + 0.03), [acc], [0])
            for n, acc in pts.items()]


BASE = _curve("base", "harmful", {20: 0.8, 100: 0.9})


def test_same_curve_costs_one() -> None:
    rows = data_cost_multiplier(_curve("m", "harmful", {20: 0.8, 100: 0.9}), BASE)
    assert [(r["n"], r["multiplier"], r["bound"], r["reached"]) for r in rows] == [(20, 1.0, "exact", True), (100, 1.0, "exact", True)]


def test_interpolated_in_log_n() -> None:
    # 0.8 lies half-way between 0.7 (n=100) and 0.9 (n=400): sqrt(100 * 400) = 200 examples = 10x base's 20
    rows = data_cost_multiplier(_curve("m", "harmful", {20: 0.6, 100: 0.7, 400: 0.9}), BASE)
    assert rows[0]["examples_needed"] == pytest.approx(200.0) and rows[0]["multiplier"] == pytest.approx(10.0)
    assert rows[0]["value"] == pytest.approx(10.0) and rows[0]["bound"] == "exact" and rows[0]["display"].startswith("10x")
    assert rows[1]["multiplier"] == pytest.approx(4.0)  # 0.9 first reached exactly at n=400
    assert rows[0]["base_accuracy"] == 0.8


def test_never_reached_is_a_lower_bound() -> None:
    rows = data_cost_multiplier(_curve("m", "harmful", {20: 0.5, 100: 0.55}), BASE)
    assert [r["reached"] for r in rows] == [False, False]
    assert [r["multiplier"] for r in rows] == [None, None] and [r["value"] for r in rows] == [None, None]
    assert [r["lower_bound"] for r in rows] == [pytest.approx(5.0), pytest.approx(1.0)]
    assert all(r["bound"] == "lower" and r["display"].startswith("> 100 examples") for r in rows)


def test_non_monotone_curve_uses_its_running_max() -> None:
    audited = _curve("m", "harmful", {20: 0.85, 50: 0.7, 100: 0.95})
    # envelope: 0.85, 0.85, 0.95 -> 0.9 half-way between n=50 and n=100 in log n
    assert examples_needed(audited, 0.9) == pytest.approx(math.sqrt(50 * 100))
    assert examples_needed(audited, 0.85) == 20.0  # the dip at n=50 does not un-reach 0.85
    assert examples_needed(audited, 0.99) is None
    # unsorted input gives the same answer
    assert examples_needed(list(reversed(audited)), 0.9) == pytest.approx(math.sqrt(5000))


def test_reached_at_the_smallest_size_is_an_upper_bound() -> None:
    rows = data_cost_multiplier(_curve("m", "harmful", {20: 0.95, 100: 0.97}), _curve("base", "harmful", {20: 0.8}))
    assert rows[0]["bound"] == "upper" and rows[0]["value"] is None and rows[0]["upper_bound"] == pytest.approx(1.0)
    assert rows[0]["display"].startswith("<= 1x")
    assert data_cost_multiplier([], BASE) == []


def test_auc_in_log_n() -> None:
    assert auc_log_n(_curve("m", "harmful", {20: 0.5, 100: 0.7})) == pytest.approx(0.6)
    assert auc_log_n(_curve("m", "harmful", {1000: 0.9, 10: 0.5, 100: 0.7})) == pytest.approx(0.7)
    assert auc_log_n(_curve("m", "harmful", {20: 0.4})) == pytest.approx(0.4) and auc_log_n([]) is None


def test_auc_relative_to_random_on_shared_sizes() -> None:
    rel = harmful_auc_relative_to_random(_curve("m", "harmful", {20: 0.6, 100: 0.6}),
                                         _curve("random", "harmful", {20: 0.5, 100: 0.5, 400: 0.9}),
                                         _curve("base", "harmful", {20: 0.9, 100: 0.9}))
    assert rel["sizes"] == [20, 100]  # random's n=400 is outside the shared range and ignored
    assert rel["ratio_to_random"] == pytest.approx(1.2) and rel["normalised"] == pytest.approx(0.25)
    no_base = harmful_auc_relative_to_random(_curve("m", "harmful", {20: 0.5}), _curve("random", "harmful", {20: 0.5}))
    assert no_base["ratio_to_random"] == pytest.approx(1.0) and no_base["normalised"] is None


def test_beneficial_drop_on_shared_sizes() -> None:
    drops = beneficial_drop_vs_base(_curve("m", "beneficial", {20: 0.7, 100: 0.8, 400: 0.9}),
                                    _curve("base", "beneficial", {20: 0.8, 100: 0.82}))
    assert [d["n"] for d in drops] == [20, 100]
    assert [d["drop"] for d in drops] == [pytest.approx(0.1), pytest.approx(0.02)]


def _points(models: dict[str, float]) -> list[SeedPoint]:
    return [SeedPoint(m, task, n, s, acc + 0.01 * s, acc) for m, acc in models.items()
            for task in ("harmful", "beneficial") for n in (20, 100) for s in (0, 1)]


def test_compute_derived_covers_audited_models_and_needs_baselines() -> None:
    pts = _points({"mine": 0.55, "ac": 0.6, "random": 0.5, "base": 0.9})
    d = compute_derived(build_curves(pts), pts)
    assert d["audited"] == ["mine"] and sorted(d["models"]) == ["ac", "mine"]
    assert {"data_cost_multiplier", "beneficial_drop_vs_base", "harmful_auc", "paired"} <= set(d["models"]["mine"])
    paired = d["models"]["mine"]["paired"]
    assert {(p["reference"], p["task"], p["n"]) for p in paired} == {(r, t, n) for r in ("base", "random")
                                                                     for t in ("harmful", "beneficial") for n in (20, 100)}
    assert all(row["ci"] is not None for row in d["models"]["mine"]["data_cost_multiplier"])  # 2 seeds: an interval
    assert d["budget_curves"] == []  # no trial histories given
    only_random = _points({"mine": 0.55, "random": 0.5})
    d2 = compute_derived(build_curves(only_random), only_random)
    assert set(d2["models"]["mine"]) == {"harmful_auc", "paired"}
    assert {p["reference"] for p in d2["models"]["mine"]["paired"]} == {"random"}


def test_compute_derived_on_a_result(make_result) -> None:
    derived = make_result().derived
    assert derived["audited"] == ["censored"]
    entry = derived["models"]["censored"]
    assert {"data_cost_multiplier", "beneficial_drop_vs_base", "harmful_auc"} <= set(entry)
    assert entry["data_cost_multiplier"][0]["reached"] is False  # censored never reaches base's 0.9
    assert len(derived["budget_curves"]) == 3 * 2 * 2
