"""Attack-budget curves: the attacker's best-so-far accuracy against trials searched and against
compute spent (wall seconds and estimated FLOPs), averaged over seeds.

Each seed's ``trial_history`` is a step function of its own budget. Across seeds:
- by trials: at trial t, each seed contributes its best so far at min(t, its last trial) (a search
  that stopped early on patience keeps what it found);
- by compute: on the union of the seeds' cumulative-compute values, each seed contributes its best so
  far at that budget; a budget is plotted only once every seed has a completed trial within it (a mean
  over a changing subset of seeds would jump for no reason).
Report-split values are what the curves show; the selection-split best so far (what the attacker could
see) is kept beside it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from mlac.audit.curves import SeedPoint

_METRICS = ("best_report_acc_so_far", "best_selection_acc_so_far")


def _value(row: dict[str, Any], key: str) -> float | None:
    v = row.get(key)
    return None if v is None else float(v)


def _summary(values: list[float | None]) -> dict[str, float] | None:
    """Mean and min/max over seeds, or None when a seed has no value yet."""
    if not values or any(v is None for v in values):
        return None
    arr = np.asarray(values, dtype=float)
    return {"mean": float(arr.mean()), "min": float(arr.min()), "max": float(arr.max())}


def _at_budget(history: list[dict[str, Any]], axis: str, budget: float) -> dict[str, Any] | None:
    """The last history row whose cumulative ``axis`` is within ``budget`` (None before the first)."""
    last = None
    for row in history:
        if float(row.get(axis, 0.0)) <= budget:
            last = row
        else:
            break
    return last


def _rows(histories: list[list[dict[str, Any]]], x_key: str, xs: list[float],
          pick: Any) -> list[dict[str, Any]]:
    out = []
    for x in xs:
        rows = [pick(h, x) for h in histories]
        entry: dict[str, Any] = {x_key: x}
        for key in _METRICS:
            entry[key.replace("best_", "").replace("_acc_so_far", "")] = _summary(
                [None if r is None else _value(r, key) for r in rows])
        if entry["report"] is not None:
            # flat aliases of the plotted series: x, and the report summary as mean / lo / hi
            entry.update(x=x, mean=entry["report"]["mean"], lo=entry["report"]["min"], hi=entry["report"]["max"])
            out.append(entry)
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
        length = max(len(h) for h in histories)
        entry: dict[str, Any] = {"model": model, "task": task, "n": n, "seeds": len(histories), "metric": "report"}
        entry["by_trials"] = _rows(histories, "trials", list(range(1, length + 1)),
                                   lambda h, t: h[min(int(t), len(h)) - 1])
        for axis, name in (("wall_s_cum", "wall_s"), ("flops_cum", "flops")):
            grid = sorted({float(r.get(axis, 0.0)) for h in histories for r in h})
            entry[f"by_{name}"] = _rows(histories, name, grid,
                                        lambda h, x, axis=axis: _at_budget(h, axis, x))
        out.append(entry)
    return out
