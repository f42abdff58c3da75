"""The CLI's ETA estimators (mlac.cli.eta) on synthetic progress series, each against a naive estimator that the
same series puts more than 2x off (issue 19: within 2x of the truth from 10% of the work)."""

from __future__ import annotations

from typing import Any

import pytest

from mlac.cli.eta import AuditEta, CensorEta, count_down, eta_at, eta_column


def within_2x(eta: float | None, true: float) -> bool:
    return eta is not None and 0.5 <= eta / true <= 2.0


def mean_rate_eta(seen: list[tuple[float, int]], total: int) -> float:
    now, step = seen[-1]
    return now * (total - step) / step


def test_eta_at_discounts_a_slow_start_that_the_mean_rate_keeps() -> None:
    # 20 s of start-up before step 1, then 1 s a step, 100 steps: at step 10 (t = 29) 90 s are left.
    seen = [(20.0 + k - 1, k) for k in range(1, 11)]
    assert eta_at(seen, 100) == pytest.approx(90.0)
    assert not within_2x(mean_rate_eta(seen, 100), 90.0)  # negative control: 261 s, 2.9x


def censor_series(val_cost: float, until_step: int, *, total: int = 150, val_every: int = 50,
                  step_s: float = 1.0) -> list[tuple[float, dict[str, Any]]]:
    """Step records every ``step_s``, a validation record ``val_cost`` after each validated step."""
    t, out = 0.0, []
    for k in range(1, until_step + 1):
        t += step_s
        out.append((t, {"event": "step", "step": k}))
        if k % val_every == 0 or k == total:
            t += val_cost
            out.append((t, {"event": "validation", "step": k}))
    return out


def test_censor_eta_counts_the_validations_still_to_come() -> None:
    # 1 s a step, a 100 s validation every 50 of 150 steps: at step 60 there are 90 steps and 2 validations left.
    series = censor_series(100.0, 60)
    eta = CensorEta(150, 50)
    for t, rec in series:
        eta.observe(t, rec)
    now = series[-1][0]
    true = 90.0 + 2 * 100.0
    assert eta.remaining(now) == pytest.approx(true)
    wall_clock_steps = [(t, int(r["step"])) for t, r in series if r["event"] == "step"]
    assert not within_2x(eta_at(wall_clock_steps, 150), true)  # negative control: the step rate alone, 990 s
    assert eta.remaining(now + 10.0) == pytest.approx(true - 10.0)  # counts down between records


def test_censor_eta_is_zero_once_the_last_validation_is_in() -> None:
    eta = CensorEta(150, 50)
    for t, rec in censor_series(5.0, 150):
        eta.observe(t, rec)
    assert eta.remaining(1000.0) == 0.0


def test_censor_eta_of_a_resumed_run_starts_from_its_first_step() -> None:
    # Resumed at step 50: step 51 comes 2 s after the start, then 2 s a step; no validation cost known yet.
    eta = CensorEta(150, 50, start=100.0)
    for k in range(51, 56):
        eta.observe(100.0 + 2.0 * (k - 50), {"event": "step", "step": k})
    assert eta.remaining(110.0) == pytest.approx(2.0 * 95)  # not 55 steps in 10 s (a 0 start would say 17 s)


def audit_series(studies: int, *, per_study: float = 10.0, trials_per_study: int = 4, until: int,
                 start: float = 5.0, replayed: int = 0) -> list[tuple[float, dict[str, Any]]]:
    """A preparing/baselines stage until ``start``, then ``studies`` searches of ``trials_per_study`` trials in
    ``per_study`` s each, up to ``until`` finished; the first ``replayed`` are found finished (resume: no time)."""
    out: list[tuple[float, dict[str, Any]]] = [(0.0, {"stage": "prepare"}), (start, {"stage": "baselines"})]
    t, trials = start, 0
    for s in range(until):
        fresh = s >= replayed
        for trial in range(trials_per_study):
            t += per_study / trials_per_study if fresh else 0.0
            trials += 1
            out.append((t, {"stage": "search", "study": s, "studies_done": s, "trials_done": trials, "trial": trial,
                            "ok": True, "value": 0.5, "replayed": not fresh}))
        out.append((t, {"stage": "search", "study": s, "studies_done": s + 1, "trials_done": trials, "point": 0.5}))
    return out


def feed(eta: AuditEta, series: list[tuple[float, dict[str, Any]]]) -> float:
    for t, event in series:
        eta.observe(t, event)
    return series[-1][0]


def test_audit_eta_uses_the_cost_of_a_finished_search_not_the_trial_budget() -> None:
    # 20 searches of 10 s that stop (patience) after 4 of their 10 trials: after 2 searches 180 s are left.
    series = audit_series(20, until=2)
    eta = AuditEta(20, 10)
    now = feed(eta, series)
    assert eta.remaining(now) == pytest.approx(180.0)
    per_trial = (now - 5.0) / 8
    assert not within_2x(per_trial * (200 - 8), 180.0)  # negative control: the budget's 480 s, 2.7x
    assert eta.remaining(now + 5.0) == pytest.approx(175.0)  # counts down during the third search
    assert eta.remaining(now + 30.0) == pytest.approx(170.0)  # but not below the 17 searches not started


def test_audit_eta_before_the_search_and_before_a_search_finished() -> None:
    eta = AuditEta(20, 10)
    eta.observe(0.0, {"stage": "prepare"})
    assert eta.remaining(1.0) is None
    eta.observe(5.0, {"stage": "baselines"})
    eta.observe(7.5, {"stage": "search", "study": 0, "studies_done": 0, "trials_done": 1, "trial": 0})
    assert eta.remaining(7.5) == pytest.approx(2.5 * (200 - 1))  # the trial budget: an upper bound


def test_audit_eta_of_a_resumed_audit_does_not_count_the_searches_it_found_finished() -> None:
    # 6 searches found finished (replayed trials only, at no cost), then 2 fresh ones of 10 s each: 12 left.
    series = audit_series(20, until=8, replayed=6)
    eta = AuditEta(20, 10)
    now = feed(eta, series)
    assert eta.remaining(now) == pytest.approx(120.0)
    naive = (now - 5.0) / 8 * 12  # every finished search counted as work: 30 s
    assert not within_2x(naive, 120.0)


def test_count_down_floor() -> None:
    assert count_down(None, 0.0, 5.0) is None
    assert count_down(10.0, 0.0, 4.0) == 6.0
    assert count_down(10.0, 0.0, 40.0, floor=2.0) == 2.0


def test_eta_column_renders_only_the_tasks_that_ask_for_it() -> None:
    from rich.progress import Progress

    column = eta_column(lambda task: 187.0)
    progress = Progress(column, disable=True)
    shown = progress.add_task("searches", total=10, eta=True)
    hidden = progress.add_task("trials", total=10)
    by_id = {t.id: t for t in progress.tasks}
    assert column.render(by_id[shown]).plain == "ETA 3m07s"
    assert column.render(by_id[hidden]).plain == ""
