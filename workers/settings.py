"""Settings of the Ray layer: where the cluster is, what each trial and censoring run asks for."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from mlac.errors import ConfigError


@dataclass(frozen=True)
class RaySettings:
    """How to reach (or start) Ray and what resources work units request.

    ``address`` None starts a local Ray (the embedded default); otherwise it is passed to
    ``ray.init`` (``host:port`` of a cluster's GCS, or ``ray://`` for Ray Client).
    ``trial_gpus`` may be fractional (e.g. 0.25: four small-model trials share one GPU).
    """

    address: str | None = None
    data_dir: Path = Path("data")
    num_cpus: int | None = None
    num_gpus: int | None = None
    dashboard_port: int = 0
    trial_cpus: float = 1.0
    trial_gpus: float = 0.0
    censor_cpus: float = 1.0
    censor_gpus: float = 0.0
    trial_resources: dict[str, float] = field(default_factory=dict)
    max_concurrency: int = 2
    trial_max_retries: int = 3
    actor_max_restarts: int = 3

    def __post_init__(self) -> None:
        if self.trial_cpus <= 0 or self.censor_cpus <= 0:
            raise ConfigError("trial_cpus and censor_cpus must be positive")
        if self.trial_gpus < 0 or self.censor_gpus < 0:
            raise ConfigError("trial_gpus and censor_gpus must be >= 0 (fractions share a GPU)")
        if self.max_concurrency < 1:
            raise ConfigError("max_concurrency must be at least 1")

    @classmethod
    def from_env(cls, data_dir: Path, **overrides: object) -> RaySettings:
        """Defaults plus ``RAY_ADDRESS`` from the environment (read once, at start-up)."""
        values: dict[str, object] = {"address": os.environ.get("RAY_ADDRESS") or None, "data_dir": data_dir}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
