"""The versioned audit result (``result.json``): request, provenance, seed points, curves, derived, verdict."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlac.audit.curves import CurvePoint, SeedPoint
from mlac.audit.derived import compute_derived
from mlac.audit.verdict import Verdict, VerdictPolicy, evaluate
from mlac.errors import DataError

SCHEMA_VERSION = "1.0"
SUPPORTED_VERSIONS = ("1.0",)


@dataclass
class AuditResult:
    """Everything an audit found; ``derived`` and ``verdict`` are computed from the curves when not given."""

    request: dict[str, Any]
    curves: list[CurvePoint]
    seed_points: list[SeedPoint]
    provenance: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    policy: VerdictPolicy = field(default_factory=VerdictPolicy)
    derived: dict[str, Any] | None = None
    verdict: Verdict | None = None
    schema_version: str = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.derived is None:
            self.derived = compute_derived(self.curves, self.seed_points)
        if self.verdict is None:
            self.verdict = evaluate(self.curves, list(self.derived.get("audited", [])), self.policy)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        assert self.verdict is not None  # set in __post_init__
        return {
            "schema_version": self.schema_version,
            "request": self.request,
            "provenance": self.provenance,
            "timings": self.timings,
            "policy": {"delta_random": self.policy.delta_random, "epsilon_beneficial": self.policy.epsilon_beneficial},
            "curves": [c.to_dict() for c in self.curves],
            "seed_points": [p.to_dict() for p in self.seed_points],
            "derived": self.derived,
            "verdict": self.verdict.to_dict(),
        }

    def to_json(self) -> str:
        """Stable JSON text (sorted keys)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditResult:
        """Inverse of :meth:`to_dict`; an unknown schema version is a clear error."""
        version = data.get("schema_version")
        if version not in SUPPORTED_VERSIONS:
            raise DataError(f"result schema version {version!r} is not supported (this mlac-audit reads {SUPPORTED_VERSIONS})")
        try:
            verdict = data.get("verdict")
            return cls(
                request=data["request"], provenance=data.get("provenance", {}), timings=data.get("timings", {}),
                policy=VerdictPolicy(**data.get("policy", {})),
                curves=[CurvePoint.from_dict(c) for c in data["curves"]],
                seed_points=[SeedPoint.from_dict(p) for p in data["seed_points"]],
                derived=data.get("derived"),
                verdict=Verdict(**verdict) if verdict else None,
                schema_version=version,
            )
        except (KeyError, TypeError) as exc:
            raise DataError(f"malformed audit result: {exc}") from exc

    @classmethod
    def read(cls, path: str | Path) -> AuditResult:
        """Load a ``result.json``."""
        p = Path(path)
        if not p.is_file():
            raise DataError(f"no audit result at {p}")
        try:
            return cls.from_dict(json.loads(p.read_text(encoding="utf-8")))
        except json.JSONDecodeError as exc:
            raise DataError(f"{p}: not valid JSON ({exc})") from exc
