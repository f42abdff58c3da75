"""One way to change a preset: :class:`AuditOverrides` (what a user may set on top of a preset) and
:func:`build_audit_request`, used by the CLI's flags and the API's ``audit`` options alike.

A field left at None keeps the preset's value. Verdict thresholds are :class:`~mlac.audit.verdict.VerdictPolicy`
fields by name, so the names a user types are the names stored in the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from mlac.audit.presets import build_request, preset_values
from mlac.audit.protocol import AuditRequest
from mlac.audit.verdict import VerdictPolicy
from mlac.errors import ConfigError

#: Overrides of the search budget (:class:`~mlac.audit.space.SearchConfig` fields).
SEARCH_FIELDS = ("max_trials", "patience", "reruns")
#: Overrides of request fields that are set as they are.
REQUEST_FIELDS = ("sizes", "seeds", "tasks", "selection_max", "report_max", "max_length", "split_seed")


@dataclass(frozen=True)
class AuditOverrides:
    """What a user changes on top of a preset; None keeps the preset's value."""

    sizes: tuple[int, ...] | None = None
    seeds: tuple[int, ...] | None = None
    tasks: tuple[str, ...] | None = None
    kinds: tuple[str, ...] | None = None
    selection_max: int | None = None
    report_max: int | None = None
    max_length: int | None = None
    split_seed: int | None = None
    max_trials: int | None = None
    patience: int | None = None
    reruns: int | None = None
    #: Write the reruns' per-example report predictions (``samples.csv``); None keeps the request's default (off).
    log_samples: bool | None = None
    #: VerdictPolicy fields by name (``delta_random``, ``statistic``, ...); absent keys keep the preset's.
    verdict: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("sizes", "seeds", "tasks", "kinds"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))
        known = {f.name for f in fields(VerdictPolicy)}
        unknown = sorted(set(self.verdict) - known)
        if unknown:
            raise ConfigError(f"unknown verdict setting(s) {unknown}; known: {sorted(known)}")
        object.__setattr__(self, "verdict", {k: v for k, v in self.verdict.items() if v is not None})


def build_audit_request(preset: str, *, dataset: str, models: tuple[str, ...] = (), base: str | None = None,
                        baselines: tuple[str, ...] = (), device: str = "auto",
                        overrides: AuditOverrides | None = None) -> AuditRequest:
    """The preset's :class:`AuditRequest` for these inputs with ``overrides`` applied (ConfigError for bad values)."""
    o = overrides or AuditOverrides()
    values = preset_values(preset)
    space, search = values["space"], values["search"]
    if o.kinds is not None:
        space = replace(space, kinds=o.kinds)
    budget = {name: getattr(o, name) for name in SEARCH_FIELDS if getattr(o, name) is not None}
    if budget:
        search = replace(search, **budget)
    plain = {name: getattr(o, name) for name in REQUEST_FIELDS}
    request = build_request(preset, dataset=dataset, models=tuple(models), base=base, baselines=tuple(baselines),
                            space=space, search=search, device=device, **plain)
    if o.verdict:
        request = request.replace(verdict=replace(request.verdict, **o.verdict))
    if o.log_samples is not None:
        request = request.replace(log_samples=bool(o.log_samples))
    return request
