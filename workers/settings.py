"""Settings of the Ray layer: where the cluster is, what each trial and censoring run asks for."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from mlac.audit.trial_group import DEFAULT_MAX_GROUP
from mlac.errors import ConfigError

#: Environment variables :meth:`RaySettings.from_env` reads (once, at start-up), and the field each sets.
ENV_FIELDS: dict[str, tuple[str, type]] = {
    "MLAC_RAY_NUM_CPUS": ("num_cpus", int),
    "MLAC_RAY_NUM_GPUS": ("num_gpus", int),
    "MLAC_RAY_TRIAL_CPUS": ("trial_cpus", float),
    "MLAC_RAY_TRIAL_GPUS": ("trial_gpus", float),
    "MLAC_RAY_CENSOR_CPUS": ("censor_cpus", float),
    "MLAC_RAY_CENSOR_GPUS": ("censor_gpus", float),
    "MLAC_RAY_MAX_CONCURRENCY": ("max_concurrency", int),
    "MLAC_RAY_MAX_GROUP": ("max_group", int),
    "MLAC_RAY_TRIAL_MAX_RETRIES": ("trial_max_retries", int),
}
#: JSON object of custom Ray resources every trial asks for, e.g. ``{"attack_node": 1}`` (sets ``trial_resources``).
TRIAL_RESOURCES_ENV = "MLAC_RAY_TRIAL_RESOURCES"
#: JSON object of custom Ray resources every job driver asks for (sets ``driver_resources``; default: any node).
DRIVER_RESOURCES_ENV = "MLAC_RAY_DRIVER_RESOURCES"


@dataclass(frozen=True)
class RaySettings:
    """How to reach (or start) Ray and what resources work units request.

    ``address`` None starts a local Ray (the embedded default); otherwise it is passed to
    ``ray.init`` (``host:port`` of a cluster's GCS, or ``ray://`` for Ray Client).
    ``trial_gpus`` / ``censor_gpus`` None means "auto": when the cluster has GPUs, a trial asks for
    ``gpu_share`` of one (0.25: four small-model trials share a GPU) and a censoring run for a whole
    one; without GPUs both ask for none. A number (fractions allowed) is used as given.
    ``trial_resources`` are custom Ray resources every trial asks for (e.g. ``{"attack_node": 1}``);
    ``driver_resources`` the same for job drivers (they coordinate only: ask for a small amount, e.g. 0.01).
    ``max_group``: at most this many ready trials train together in one Ray task
    (:mod:`mlac.audit.trial_group`; the worker sizes groups to its free memory); 1 runs every trial alone.
    """

    address: str | None = None
    data_dir: Path = Path("data")
    num_cpus: int | None = None
    num_gpus: int | None = None
    dashboard_port: int = 0
    trial_cpus: float = 1.0
    trial_gpus: float | None = None
    gpu_share: float = 0.25
    censor_cpus: float = 1.0
    censor_gpus: float | None = None
    trial_resources: dict[str, float] = field(default_factory=dict)
    driver_resources: dict[str, float] = field(default_factory=dict)
    max_concurrency: int = 2
    max_group: int = DEFAULT_MAX_GROUP
    trial_max_retries: int = 3
    actor_max_restarts: int = 3

    def __post_init__(self) -> None:
        if self.trial_cpus <= 0 or self.censor_cpus <= 0:
            raise ConfigError("trial_cpus and censor_cpus must be positive (fractions allowed)")
        for name in ("trial_gpus", "censor_gpus"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{name} must be >= 0 (a fraction lets trials share a GPU) or unset for auto")
        if not 0 < self.gpu_share <= 1:
            raise ConfigError(f"gpu_share must be in (0, 1], got {self.gpu_share}: it is the part of one GPU a trial gets")
        if self.max_concurrency < 1:
            raise ConfigError("max_concurrency must be at least 1")
        if self.max_group < 1:
            raise ConfigError("max_group must be at least 1 (1 runs every trial alone)")
        if self.trial_max_retries < 0 or self.actor_max_restarts < 0:
            raise ConfigError("trial_max_retries and actor_max_restarts must be >= 0")
        if any(v <= 0 for v in (*self.trial_resources.values(), *self.driver_resources.values())):
            raise ConfigError("custom trial and driver resources must ask for a positive amount")

    @classmethod
    def from_env(cls, data_dir: Path, **overrides: object) -> RaySettings:
        """Defaults, then ``RAY_ADDRESS``, the ``MLAC_RAY_*`` variables of :data:`ENV_FIELDS` and
        :data:`TRIAL_RESOURCES_ENV` and :data:`DRIVER_RESOURCES_ENV`, then ``overrides`` (None values ignored). Read once, at start-up."""
        values: dict[str, object] = {"address": os.environ.get("RAY_ADDRESS") or None, "data_dir": data_dir}
        for var, (name, kind) in ENV_FIELDS.items():
            raw = os.environ.get(var)
            if raw:
                try:
                    values[name] = kind(raw)
                except ValueError as exc:
                    raise ConfigError(f"{var}={raw!r} is not a valid {kind.__name__}; fix or unset it") from exc
        for var, name in ((TRIAL_RESOURCES_ENV, "trial_resources"), (DRIVER_RESOURCES_ENV, "driver_resources")):
            raw = os.environ.get(var)
            if raw:
                values[name] = _resources_json(raw, var)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


def _resources_json(raw: str, var: str = TRIAL_RESOURCES_ENV) -> dict[str, float]:
    """Parse ``var`` (:data:`TRIAL_RESOURCES_ENV` or :data:`DRIVER_RESOURCES_ENV`: resource name -> amount)."""
    hint = f"{var} must be a JSON object of resource name -> amount, e.g. '{{\"attack_node\": 1}}'"
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{hint}; got {raw!r}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in data.values()):
        raise ConfigError(f"{hint}; got {raw!r}")
    return {str(k): float(v) for k, v in data.items()}
