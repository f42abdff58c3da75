"""The versioned audit result (``result.json``): request, provenance, seed points, curves, derived, verdict.

Top-level keys of schema ``1.1`` (as of ``1.0``, plus the fields listed at :data:`SUPPORTED_VERSIONS`): ``schema_version``, ``request`` (the full audit request), ``provenance``
(checkpoint sha256s, dataset fingerprints, package versions, seeds, caveats: whatever the runner
records), ``timings`` (seconds), ``policy`` (the verdict thresholds), ``seed_points`` (one per search),
``curves`` (one per model x task x n), ``derived`` (data-cost multiplier, harmful AUC, beneficial drop,
attack-budget curves) and ``verdict``. Reading a result checks the version first: another version is a
:class:`~mlac.errors.DataError` that names the versions this code reads. Unknown keys inside records are
ignored so that additive fields do not need a new version; missing or ill-typed ones are errors.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlac.audit.curves import CurvePoint, SeedPoint
from mlac.audit.derived import compute_derived
from mlac.audit.verdict import Verdict, VerdictPolicy, evaluate
from mlac.errors import DataError, MlacError

SCHEMA_VERSION = "1.1"
#: 1.1 added: per seed point and curve cell the majority-class rate and "attack failed"; t-intervals as the
#: decision interval, clipped to [0, 1] and null for one seed; paired differences and the data-cost interval
#: in ``derived``; the competence and collapse checks in the verdict; the Optuna version and sampler settings
#: in ``provenance.search``. 1.0 results still read and render (missing fields are None).
SUPPORTED_VERSIONS = ("1.0", "1.1")


def plain(value: Any) -> Any:
    """JSON-able copy: tuples to lists, paths to strings, numpy scalars to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):  # numpy scalar
        return plain(value.item())
    raise DataError(f"cannot store a {type(value).__name__} in the audit result: {value!r}")


def _dict(data: dict[str, Any], key: str, *, required: bool = False) -> dict[str, Any]:
    value = data.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise DataError(f"malformed audit result: {key!r} must be an object, got {type(value).__name__}")
    return value


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise DataError(f"malformed audit result: {key!r} must be a list, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class AuditResult:
    """Everything an audit found. ``derived`` and ``verdict`` are computed from the curves when not given."""

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
            object.__setattr__(self, "derived", compute_derived(self.curves, self.seed_points))
        if self.verdict is None:
            derived = self.derived or {}
            object.__setattr__(self, "verdict", evaluate(self.curves, list(derived.get("audited", [])),
                                                         self.policy, derived))

    @property
    def models(self) -> list[str]:
        """Model labels in curve order."""
        return list(dict.fromkeys(c.model for c in self.curves))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        verdict = self.verdict or evaluate(self.curves, [], self.policy)
        return plain({
            "schema_version": self.schema_version,
            "request": self.request,
            "provenance": self.provenance,
            "timings": self.timings,
            "policy": self.policy.to_dict(),
            "seed_points": [p.to_dict() for p in self.seed_points],
            "curves": [c.to_dict() for c in self.curves],
            "derived": self.derived,
            "verdict": verdict.to_dict(),
        })

    def to_json(self) -> str:
        """Stable JSON text (sorted keys, strict: no NaN)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Any) -> AuditResult:
        """Inverse of :meth:`to_dict`; a version this code does not read, or a malformed record, is a DataError."""
        if not isinstance(data, dict):
            raise DataError(f"an audit result must be a JSON object, got {type(data).__name__}")
        version = data.get("schema_version")
        if version not in SUPPORTED_VERSIONS:
            raise DataError(f"audit result schema version {version!r} is not supported: this mlac-audit reads "
                            f"{', '.join(SUPPORTED_VERSIONS)}; re-run the audit or use the mlac-audit that wrote it")
        try:
            verdict = data.get("verdict")
            return cls(
                request=_dict(data, "request", required=True),
                provenance=_dict(data, "provenance"),
                timings=_dict(data, "timings"),
                policy=VerdictPolicy.from_dict(_dict(data, "policy")),
                curves=[CurvePoint.from_dict(c) for c in _list(data, "curves")],
                seed_points=[SeedPoint.from_dict(p) for p in _list(data, "seed_points")],
                derived=_dict(data, "derived") or None,
                verdict=Verdict.from_dict(verdict) if verdict else None,
                schema_version=str(version),
            )
        except MlacError as exc:
            if isinstance(exc, DataError):
                raise
            raise DataError(f"malformed audit result: {exc}") from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"malformed audit result: {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> AuditResult:
        """Parse ``result.json`` text."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"an audit result must be valid JSON ({exc})") from exc
        return cls.from_dict(data)

    @classmethod
    def read(cls, path: str | Path) -> AuditResult:
        """Load a ``result.json`` file."""
        p = Path(path)
        if not p.is_file():
            raise DataError(f"no audit result at {p}: give the folder an audit wrote (it holds result.json)")
        try:
            return cls.from_json(p.read_text(encoding="utf-8"))
        except DataError as exc:
            raise DataError(f"{p}: {exc}") from exc

    def write(self, path: str | Path) -> Path:
        """Write ``result.json`` text to ``path``."""
        p = Path(path)
        p.write_text(self.to_json() + "\n", encoding="utf-8")
        return p
