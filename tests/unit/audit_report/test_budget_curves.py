"""Attack-budget curves: best-so-far accuracy vs trials and compute, aggregated over seeds."""

from __future__ import annotations

import pytest

from mlac.audit.budget import budget_curves
from mlac.audit.curves import SeedPoint


def _row(trial: int, wall: float, flops: float, rep: float | None, sel: float | None) -> dict:
    return {"trial": trial, "wall_s_cum": wall, "flops_cum": flops, "best_report_acc_so_far": rep,
            "best_selection_acc_so_far": sel}


SEED0 = [_row(3, 4.0, 40.0, 0.7, 0.8), _row(1, 1.0, 10.0, None, None), _row(2, 2.0, 20.0, 0.6, 0.7)]
SEED1 = [_row(1, 1.5, 15.0, 0.5, 0.55), _row(2, 3.0, 30.0, 0.8, 0.85)]


def _curves() -> list[dict]:
    pts = [SeedPoint("m", "harmful", 20, 0, 0.7, 0.8, trial_history=SEED0),
           SeedPoint("m", "harmful", 20, 1, 0.8, 0.85, trial_history=SEED1),
           SeedPoint("m", "beneficial", 20, 0, 0.7, 0.8)]  # no history: no budget curve
    return budget_curves(pts)


def test_one_entry_per_group_with_history() -> None:
    curves = _curves()
    assert [(c["model"], c["task"], c["n"], c["seeds"], c["metric"]) for c in curves] == [("m", "harmful", 20, 2, "report")]


def test_by_trials_carries_a_finished_search_forward() -> None:
    rows = _curves()[0]["by_trials"]
    # trial 1: seed 0 has no completed trial yet -> no point; trial 3: seed 1 stopped after 2, keeps 0.8
    assert [r["trials"] for r in rows] == [2, 3]
    assert [r["report"]["mean"] for r in rows] == [pytest.approx(0.7), pytest.approx(0.75)]
    assert (rows[0]["report"]["min"], rows[0]["report"]["max"]) == (0.6, 0.8)
    assert rows[1]["selection"]["mean"] == pytest.approx(0.825)
    assert (rows[0]["x"], rows[0]["mean"], rows[0]["lo"], rows[0]["hi"]) == (2, rows[0]["report"]["mean"], 0.6, 0.8)


@pytest.mark.parametrize(("key", "x_key", "scale"), [("by_wall_s", "wall_s", 1.0), ("by_flops", "flops", 10.0)])
def test_by_compute_starts_once_every_seed_has_a_result(key: str, x_key: str, scale: float) -> None:
    rows = _curves()[0][key]
    assert [r[x_key] for r in rows] == [2.0 * scale, 3.0 * scale, 4.0 * scale]
    assert [r["report"]["mean"] for r in rows] == [pytest.approx(0.55), pytest.approx(0.7), pytest.approx(0.75)]
    assert rows[0]["selection"]["mean"] == pytest.approx(0.625)


def test_compute_rows_are_kept_only_where_the_step_changes() -> None:
    flat = [_row(1, 1.0, 10.0, 0.6, 0.7), _row(2, 2.0, 20.0, 0.6, 0.7), _row(3, 3.0, 30.0, 0.6, 0.7),
            _row(4, 4.0, 40.0, 0.65, 0.75), _row(5, 5.0, 50.0, 0.65, 0.75)]
    entry = budget_curves([SeedPoint("m", "harmful", 20, 0, 0.65, 0.75, trial_history=flat)])[0]
    assert [r["wall_s"] for r in entry["by_wall_s"]] == [1.0, 4.0, 5.0]  # first, the improvement, the end
    assert [r["trials"] for r in entry["by_trials"]] == [1, 2, 3, 4, 5]  # the trial axis keeps every trial


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
