"""Attack-budget curves: the attacker's best-so-far accuracy against trials searched and against
compute spent (wall seconds and estimated FLOPs), averaged over seeds.

Each seed's ``trial_history`` is a step function of its own budget. Across seeds:
- by trials: at trial t, each seed contributes its best so far at min(t, its last trial) (a search
  that stopped early on patience keeps what it found);
- by compute: on the union of the seeds' cumulative-compute values, each seed contributes its best so
  far at that budget; a budget is plotted only once every seed has a completed trial within it (a mean
  over a changing subset of seeds would jump for no reason), and only where the summary changes (plus
  the final budget): the step curve is the same, the stored rows far fewer.
Report-split values are what the curves show; the selection-split best so far (what the attacker could
see) is kept beside it.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from typing import Any

from mlac.audit.curves import SeedPoint

_METRICS = ("best_report_acc_so_far", "best_selection_acc_so_far")


def _value(row: dict[str, Any], key: str) -> float | None:
    v = row.get(key)
    return None if v is None else float(v)


def _summary(values: list[float | None]) -> dict[str, float] | None:
    """Mean and min/max over seeds, or None when a seed has no value yet."""
    present = [v for v in values if v is not None]
    if not values or len(present) < len(values):
        return None
    return {"mean": math.fsum(present) / len(present), "min": min(present), "max": max(present)}


def _summaries(rows: list[dict[str, Any] | None]) -> dict[str, dict[str, float] | None]:
    return {key.replace("best_", "").replace("_acc_so_far", ""): _summary(
        [None if r is None else _value(r, key) for r in rows]) for key in _METRICS}


def _row(x_key: str, x: float, summaries: dict[str, dict[str, float] | None]) -> dict[str, Any]:
    report = summaries["report"]
    assert report is not None
    # flat aliases of the plotted series: x, and the report summary as mean / lo / hi
    return {x_key: x, **summaries, "x": x, "mean": report["mean"], "lo": report["min"], "hi": report["max"]}


def _by_trials(histories: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    out = []
    for t in range(1, max(len(h) for h in histories) + 1):
        summaries = _summaries([h[min(t, len(h)) - 1] for h in histories])
        if summaries["report"] is not None:
            out.append(_row("trials", t, summaries))
    return out


def _by_compute(histories: list[list[dict[str, Any]]], axis: str, x_key: str) -> list[dict[str, Any]]:
    """Step function on the union of the seeds' budgets; only the budgets where a summary changes (and
    the last one) are kept, which keeps ``result.json`` small and the post-step plot exact."""
    cums = [[float(r.get(axis, 0.0)) for r in h] for h in histories]
    grid = sorted({x for c in cums for x in c})
    out: list[dict[str, Any]] = []
    last: dict[str, Any] | None = None
    for i, x in enumerate(grid):
        picks = [bisect.bisect_right(c, x) for c in cums]
        summaries = _summaries([h[j - 1] if j else None for h, j in zip(histories, picks, strict=True)])
        if summaries["report"] is None:
            continue
        if summaries != last or i == len(grid) - 1:
            out.append(_row(x_key, x, summaries))
            last = summaries
    return out


def budget_curves(points: list[SeedPoint]) -> list[dict[str, Any]]:
    """Per (model, task, n): ``by_trials``, ``by_wall_s`` and ``by_flops`` lists of rows with the budget
    (under its name and as ``x``), ``report`` / ``selection`` summaries ({mean, min, max} over seeds) and
    the plotted report series flat as ``mean``, ``lo`` (min) and ``hi`` (max). ``metric`` names it."""
    groups: dict[tuple[str, str, int], list[SeedPoint]] = defaultdict(list)
    for p in points:
        groups[(p.model, p.task, p.n)].append(p)
    out = []
    for (model, task, n), group in sorted(groups.items()):
        histories = [sorted(p.trial_history, key=lambda r: int(r.get("trial", 0)))
                     for p in sorted(group, key=lambda p: p.seed) if p.trial_history]
        if not histories:
            continue
        entry: dict[str, Any] = {"model": model, "task": task, "n": n, "seeds": len(histories), "metric": "report",
                                 "by_trials": _by_trials(histories),
                                 "by_wall_s": _by_compute(histories, "wall_s_cum", "wall_s"),
                                 "by_flops": _by_compute(histories, "flops_cum", "flops")}
        out.append(entry)
    return out
