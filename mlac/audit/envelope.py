"""The attacker's best-so-far envelope of a curve and the examples it needs to reach a target accuracy:
shared by the point data-cost multiplier (:mod:`mlac.audit.derived`) and its bootstrap
(:mod:`mlac.audit.paired`)."""

from __future__ import annotations

import math

from mlac.audit.curves import CurvePoint

__all__ = ["examples_needed", "running_max"]


def running_max(curve: list[CurvePoint]) -> list[tuple[int, float]]:
    """(n, best mean accuracy at any n' <= n): an attacker with more data can always use fewer examples,
    so a dip in a noisy curve must not make a level 'un-reached'."""
    best, out = -math.inf, []
    for c in sorted(curve, key=lambda c: c.n):
        best = max(best, c.mean)
        out.append((c.n, best))
    return out


def examples_needed(curve: list[CurvePoint], target: float) -> float | None:
    """Examples the attacker needs on ``curve`` to reach ``target`` accuracy, or None if never reached.

    Linear interpolation of the running-max envelope in log n between the last point below the target
    and the first at or above it. When the first (smallest) n already reaches the target, that n is
    returned: it is then an upper bound (see :func:`data_cost_multiplier`)."""
    env = running_max(curve)
    for i, (n, acc) in enumerate(env):
        if acc >= target:
            if i == 0 or acc == target:
                return float(n)
            n0, a0 = env[i - 1]  # a0 < target <= acc, hence acc > a0
            frac = (target - a0) / (acc - a0)
            return float(math.exp(math.log(n0) + frac * (math.log(n) - math.log(n0))))
    return None
