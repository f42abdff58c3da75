"""The CLI's ETA estimators (mlac.progress_eta) on synthetic progress series, each against a naive estimator that the
same series puts more than 2x off (issue 19: within 2x of the truth from 10% of the work)."""

from __future__ import annotations

from typing import Any

import pytest

from mlac.cli.eta import eta_column
from mlac.progress_eta import AuditEta, CensorEta, count_down, eta_at


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


def lockstep_series(studies: int, costs: list[float], *, start: float = 5.0) -> list[tuple[float, dict[str, Any]]]:
    """A preparing/baselines stage until ``start``, then lockstep rounds: round r takes ``costs[r]`` s and ends in a
    burst of one trial event per search (the runner's events: study, trials and searches done)."""
    out: list[tuple[float, dict[str, Any]]] = [(0.0, {"stage": "prepare"}), (start, {"stage": "baselines"})]
    t, trials = start, 0
    for r, cost in enumerate(costs):
        t += cost
        for s in range(studies):
            trials += 1
            out.append((t, {"stage": "search", "study": s, "studies_done": 0, "trials_done": trials, "trial": r,
                            "ok": True, "value": 0.5}))
    return out


def feed(eta: AuditEta, series: list[tuple[float, dict[str, Any]]]) -> float:
    for t, event in series:
        eta.observe(t, event)
    return series[-1][0]


def test_audit_eta_prices_the_rounds_left_at_the_round_running_now_not_at_the_cheap_probe_rounds() -> None:
    # 10 searches of at most 6 trials and 2 reruns: 3 probe rounds of 0.1 s in one burst, then rounds of 50 s.
    eta = AuditEta(10, 6, reruns=2)
    now = feed(eta, lockstep_series(10, [0.1, 0.1, 0.1]))
    true = 5 * 50.0 - 30.0  # 30 s into the first full round: 3 trial rounds and 2 rerun rounds left
    assert within_2x(eta.remaining(now + 30.0), true)  # 5 rounds at >= 30 s, less the 30 s: 120 s
    per_trial = (now - 5.0) / 30
    assert not within_2x(max(0.0, per_trial * 30 - 30.0), true)  # negative control: the trial rate, 0 s
    now = feed(eta, [(now + 50.0, e) for _, e in lockstep_series(10, [0.0], start=0.0)[2:]])
    assert eta.remaining(now) == pytest.approx(4 * 50.0)  # after a full round: its cost for each round left
    assert eta.remaining(now + 80.0) == pytest.approx(4 * 80.0 - 80.0)  # a slower round shows while it runs


def test_audit_eta_gets_cheaper_as_searches_finish() -> None:
    eta = AuditEta(3, 6, reruns=2)
    now = feed(eta, lockstep_series(3, [10.0, 10.0]))
    assert eta.remaining(now) == pytest.approx((4 + 2) * 10.0)  # 3 searches x 6 trials left at 10/3 s a trial
    eta.observe(now, {"stage": "search", "study": 0, "studies_done": 1, "trials_done": 6, "point": 0.5})
    eta.observe(now, {"stage": "search", "study": 1, "studies_done": 2, "trials_done": 6, "point": 0.5})
    # Patience stopped two: the third runs on alone, its rounds a third as long (the trials of a round run
    # together on the same cores). Pricing whole rounds at the last round's cost, as before, said 60 s.
    true = (4 + 2) * 10.0 / 3
    assert eta.remaining(now) == pytest.approx(true)
    assert not within_2x((4 + 2) * 10.0, true)  # negative control: the round-count estimate overshoots 3x
    eta.observe(now, {"stage": "search", "study": 2, "studies_done": 3, "trials_done": 6, "point": 0.5})
    assert eta.remaining(now) == 0.0


def test_audit_eta_counts_patience_after_the_grid() -> None:
    # 4 searches, budget 20 trials, patience 3, a 2-trial grid; every trial takes 1 s of a 4 s round.
    def rounds(values: list[float], start: float) -> list[tuple[float, dict[str, Any]]]:
        out, t = [], start
        for r, v in enumerate(values):
            t += 4.0
            out += [(t, {"stage": "search", "study": s, "studies_done": 0, "trials_done": 4 * r + s + 1, "trial": r,
                         "ok": True, "value": v}) for s in range(4)]
        return out

    eta = AuditEta(4, 20, reruns=1, patience=3, grid_trials=2)
    eta.observe(0.0, {"stage": "baselines"})
    now = feed(eta, rounds([0.5, 0.7], 0.0))  # the grid: the second trial improved
    assert eta.remaining(now) == pytest.approx(4 * (3 + 1) * 1.0)  # 3 more without improving, then 1 rerun
    now = feed(eta, rounds([0.6, 0.6], now))  # two trials without improvement: one left each
    assert eta.remaining(now) == pytest.approx(4 * (1 + 1) * 1.0)
    budget_only = AuditEta(4, 20, reruns=1)  # negative control: without patience, 16 trials left each
    feed(budget_only, rounds([0.5, 0.7, 0.6, 0.6], 0.0))
    assert not within_2x(budget_only.remaining(now), eta.remaining(now))
    now = feed(eta, rounds([0.9], now))  # an improvement gives each search its patience back
    assert eta.remaining(now) == pytest.approx(4 * (3 + 1) * 1.0)


def test_audit_eta_does_not_count_pruned_trials_against_patience() -> None:
    eta = AuditEta(1, 20, patience=3)
    eta.observe(0.0, {"stage": "baselines"})
    eta.observe(1.0, {"stage": "search", "study": 0, "trials_done": 1, "trial": 0, "ok": True, "value": 0.8})
    for k in range(1, 4):
        eta.observe(1.0 + k, {"stage": "search", "study": 0, "trials_done": k + 1, "trial": k, "ok": True,
                              "value": 0.1, "pruned": True})
    assert eta.remaining(4.0) == pytest.approx(3 * 1.0)  # still 3 left: pruning is not "no better"
    eta.observe(5.0, {"stage": "search", "study": 0, "trials_done": 5, "trial": 4, "ok": False})
    assert eta.remaining(5.0) == pytest.approx(2 * 1.0)  # a failed trial is no improvement


def test_audit_eta_before_the_search_and_before_a_round_finished() -> None:
    eta = AuditEta(20, 10)
    eta.observe(0.0, {"stage": "prepare"})
    assert eta.remaining(1.0) is None
    eta.observe(5.0, {"stage": "baselines"})
    eta.observe(7.5, {"stage": "search", "study": 0, "studies_done": 0, "trials_done": 1, "trial": 0})
    assert eta.remaining(7.5) == pytest.approx(2.5 * (200 - 1))  # the trial budget: an upper bound
    assert eta.remaining(7.5 + 2.5 * 199 + 1.0) is None  # run out with no further trial: unknown, not 0


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


def last_line_eta(seen: list[tuple[float, int]], total: int, at: float, due: Any) -> float:
    """The ETA of the last line printed at or before ``at`` (the first step's line always), less the time since."""
    printed, shown = -5.0, (0.0, 0.0)
    for i, (t, step) in enumerate(seen):
        if t > at:
            break
        if step == 1 or due(t, printed):
            printed, shown = t, (t, eta_at(seen[: i + 1], total))
    return shown[1] - (at - shown[0])


def test_base_lines_come_sooner_while_the_run_is_young() -> None:
    # 300 steps: 1 s of start-up in step 1, then 0.1 s a step (30.9 s in all); at 10% (3.09 s) 27.8 s are left.
    from mlac.progress_eta import line_due

    seen = [(1.0 + 0.1 * (k - 1), k) for k in range(1, 301)]
    at = 0.1 * seen[-1][0]
    true = seen[-1][0] - at
    assert within_2x(last_line_eta(seen, 300, at, lambda now, printed: line_due(now, printed, 5.0)), true)
    # negative control: a line every 5 s leaves the first step's line (299 s) standing at 10%
    assert not within_2x(last_line_eta(seen, 300, at, lambda now, printed: now - printed >= 5.0), true)
    assert not line_due(30.0, 26.0, 5.0) and line_due(30.0, 25.0, 5.0)  # later, every 5 s
