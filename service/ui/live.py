"""What the job page shows live, folded from the job's progress events (the SSE log).

The page needs more than the last event: the best harmful accuracy over every finished harmful search so far
(the in-process runner's events do not carry ``best_harmful_so_far``), an ETA for the stage the job is in, and
the curve points of the searches that have finished. :class:`LiveFold` computes these on the server, where
they are unit-tested, so that the page's script only renders.

ETA: the censor stage reports its own; during the search it is the rate of trials since the search began
(baselines and censoring before it would make a since-start rate far too slow), times the trials left. The trial
total is an upper bound (a search may stop early on patience), so the ETA is one too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class CurvePoint:
    """One finished search: the attacked model's report accuracy at attacker data size ``n``."""

    model: str
    task: str
    n: int
    seed: int
    value: float


@dataclass
class LiveView:
    """The job page's live panel."""

    stage: str | None = None
    trials_done: int | None = None
    trials_total: int | None = None
    studies_done: int | None = None
    studies_total: int | None = None
    step: int | None = None
    outer_steps: int | None = None
    harmful_best: float | None = None
    eta_s: float | None = None
    points: list[CurvePoint] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON for the SSE ``data`` line."""
        return asdict(self)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class LiveFold:
    """Feed it the events in order (:meth:`apply`); :attr:`view` is what the page shows."""

    def __init__(self) -> None:
        self.view = LiveView()
        self._search_start: tuple[float, int] | None = None  # (time, trials done) at the first search event
        self._seen: set[tuple[str, str, int, int]] = set()

    def apply(self, event: dict[str, Any], t: float) -> None:
        """Fold one event (payload as stored, ``t``: when it was recorded)."""
        v = self.view
        stage = event.get("stage")
        if isinstance(stage, str):
            if stage != v.stage:
                v.eta_s = None
            v.stage = stage
        for name in ("trials_done", "trials_total", "studies_done", "studies_total", "step", "outer_steps"):
            value = _int(event.get(name))
            if value is not None:
                setattr(v, name, value)
        candidates = [_num(event.get("best_harmful_so_far"))]
        if event.get("task") == "harmful":
            candidates.append(_num(event.get("best_so_far")))
        for best in candidates:
            if best is not None:
                v.harmful_best = best if v.harmful_best is None else max(v.harmful_best, best)
        self._point(event)
        self._eta(stage, event, t)

    def _point(self, event: dict[str, Any]) -> None:
        value, n, seed = _num(event.get("point")), _int(event.get("n")), _int(event.get("seed"))
        model, task = event.get("model"), event.get("task")
        if value is None or n is None or seed is None or not isinstance(model, str) or not isinstance(task, str):
            return
        key = (model, task, n, seed)
        if key not in self._seen:
            self._seen.add(key)
            self.view.points.append(CurvePoint(model=model, task=task, n=n, seed=seed, value=value))

    def _eta(self, stage: Any, event: dict[str, Any], t: float) -> None:
        v = self.view
        own = _num(event.get("eta_s"))
        if stage in ("censor", "search") and own is not None and own >= 0:  # the emitter's own estimate
            v.eta_s = own  # (the audit runner's: mlac.progress_eta.AuditEta)
            return
        if stage == "censor":
            return
        if v.stage != "search" or v.trials_done is None or not v.trials_total:
            return
        if self._search_start is None:
            self._search_start = (t, v.trials_done)
            return
        t0, done0 = self._search_start
        if v.trials_done > done0 and t > t0:
            per_trial = (t - t0) / (v.trials_done - done0)
            v.eta_s = max(0.0, per_trial * (v.trials_total - v.trials_done))
