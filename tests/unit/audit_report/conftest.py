"""Hand-made seed points and results for the report tests (no torch, no search)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mlac.audit.curves import CurvePoint, SeedPoint, build_curves
from mlac.audit.result_schema import AuditResult
from mlac.audit.verdict import VerdictPolicy

# (harmful, beneficial) accuracy at n=20 per model; +0.02 at n=100, +0.01 per seed
LEVELS = {"censored": (0.55, 0.80), "random": (0.52, 0.30), "base": (0.90, 0.82)}
#: The report split's majority-class rate per task (chance).
CHANCE = {"harmful": 0.5, "beneficial": 0.2}


def _history(final: float, trials: int = 4) -> list[dict[str, Any]]:
    rows = []
    for i in range(trials):
        rows.append({"trial": i + 1, "wall_s_cum": 0.5 * (i + 1), "flops_cum": 1e9 * (i + 1),
                     "best_report_acc_so_far": None if i == 0 else final - 0.01 * (trials - 1 - i),
                     "best_selection_acc_so_far": None if i == 0 else final + 0.02})
    return rows


def seed_points(levels: dict[str, tuple[float, float]]) -> list[SeedPoint]:
    points = []
    for model, (harmful, beneficial) in levels.items():
        for task, acc in (("harmful", harmful), ("beneficial", beneficial)):
            for n in (20, 100):
                for seed in (0, 1):
                    a = round(acc + 0.01 * seed + (0.02 if n == 100 else 0.0), 6)
                    points.append(SeedPoint(model, task, n, seed, a, a + 0.02, [a, a], {"lr": 1e-3, "kind": "probe"},
                                            4, 0, 2.0, 4e9, _history(a), CHANCE[task]))
    return points


@pytest.fixture
def make_result() -> Callable[..., AuditResult]:
    def make(name: str = "censored", policy: VerdictPolicy | None = None, **levels: tuple[float, float]) -> AuditResult:
        lv = dict(LEVELS)
        lv[name] = lv.pop("censored")
        lv.update(levels)
        points = seed_points(lv)
        return AuditResult(request={"preset": "smoke", "models": [name]}, curves=build_curves(points),
                           seed_points=points, policy=policy or VerdictPolicy(),
                           provenance={"checkpoints": {name: {"path": f"/ckpt/{name}", "sha256": "ab" * 32}},
                                       "dataset": {"fingerprint": "f" * 16}, "seeds": [0, 1],
                                       "package_versions": {"python": "3.11"}, "caveats": ["a provenance caveat"]},
                           timings={"wall_s": 12.5})
    return make


def curve(model: str, task: str, pts: dict[int, float], chance: float | None = None) -> list[CurvePoint]:
    """Hand-made curve points (intervals +-0.02 bootstrap, +-0.03 t); ``chance`` sets the majority-class rate."""
    return [CurvePoint(model, task, n, acc, (acc - 0.02, acc + 0.02), (acc - 0.03, acc + 0.03), [acc], [0],
                       majority_rate=chance, attack_failed=chance is not None and acc <= chance)
            for n, acc in pts.items()]


@pytest.fixture
def make_curve() -> Callable[..., list[CurvePoint]]:
    return curve
