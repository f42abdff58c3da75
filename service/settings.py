"""Service settings: one pydantic-settings object, read from the environment once at start-up.

Every variable has the ``MLAC_`` prefix except the two conventional ones, ``DATABASE_URL`` and
``RAY_ADDRESS``. Nothing else in the service reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the service needs to start; built once by the CLI or the ASGI factory."""

    model_config = SettingsConfigDict(env_prefix="MLAC_", extra="ignore", frozen=True)

    data_dir: Path = Field(default=Path("data"), description="root of the SQLite file, artifacts and Ray temp dir")
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "MLAC_DATABASE_URL"),
        description="SQLAlchemy URL; default sqlite:///<data_dir>/mlac.db",
    )
    ray_address: str | None = Field(default=None, validation_alias=AliasChoices("RAY_ADDRESS", "MLAC_RAY_ADDRESS"))
    runner: Literal["ray", "inprocess"] = "ray"
    ray_num_cpus: int | None = Field(default=None, ge=1, le=4096)
    max_concurrency: int = Field(default=2, ge=1, le=1024, description="parallel trials per job")
    max_running_jobs: int = Field(default=2, ge=1, le=1024)
    admin_key: str | None = Field(default=None, min_length=16, max_length=256, description="bootstrap admin API key")
    upload_max_bytes: int = Field(default=512 * 1024 * 1024, ge=1024, le=64 * 1024**3)
    dataset_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024, le=64 * 1024**3)
    json_body_max_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024**2,
                                     description="cap on every request body but the two streamed uploads (413 above it)")
    rate_submit_per_min: float = Field(default=60.0, gt=0, le=1e6)
    rate_upload_per_min: float = Field(default=20.0, gt=0, le=1e6)
    rate_burst: int = Field(default=10, ge=1, le=100_000)
    scheduler_enabled: bool = True
    scheduler_interval_s: float = Field(default=15.0, gt=0, le=3600)
    lease_s: float = Field(default=60.0, ge=5, le=86_400, description="a RUNNING job whose lease is older is re-queued")
    # Per-key quotas (service.quotas); the admin overrides them per key (POST/PATCH /v1/keys).
    quota_max_trial_runs_per_job: int = Field(default=50_000, ge=1, le=10**12, description=(
        "upper bound of one job's trial runs (fine-tuning runs of the attacker); the paper preset with every "
        "baseline is 15,600, the strong preset 23,400"))
    quota_max_active_jobs: int = Field(default=10, ge=1, le=100_000, description="queued + running jobs per key")
    quota_max_stored_bytes: int = Field(default=20 * 1024**3, ge=1024, le=2**50,
                                        description="bytes of checkpoints + datasets per key")
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=120,
                                     description="connect/read/write timeout of one webhook delivery attempt")
    webhook_retries: int = Field(default=5, ge=0, le=20, description="extra attempts after a failed delivery")
    webhook_backoff_s: float = Field(default=1.0, ge=0, le=600,
                                     description="retry n waits backoff * 2**(n-1) seconds (capped at one hour)")
    webhook_workers: int = Field(default=8, ge=1, le=256,
                                 description="parallel deliveries (at most one in flight per destination host:port)")
    webhook_allow: Annotated[tuple[str, ...], NoDecode] = Field(default=(), max_length=256, description=(
        "webhook destinations allowed although loopback/private/link-local: comma-separated hostnames (exact) "
        "and CIDRs, e.g. '127.0.0.1/32,receiver.internal'; everything else non-public is refused"))

    @field_validator("webhook_allow", mode="before")
    @classmethod
    def _allow_list(cls, value: object) -> object:
        """``MLAC_WEBHOOK_ALLOW`` is comma-separated; each entry must be a CIDR/address or a hostname."""
        from service.egress import EgressPolicy

        entries = tuple(e.strip() for e in value.split(",") if e.strip()) if isinstance(value, str) else value
        if isinstance(entries, (list, tuple)):
            EgressPolicy.from_entries(str(e) for e in entries)  # ValueError -> a clear settings error
        return entries

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def db_url(self) -> str:
        """The job store (and Optuna) database URL."""
        return self.database_url or f"sqlite:///{self.data_dir / 'mlac.db'}"

    @property
    def artifact_root(self) -> Path:
        """Where checkpoints, datasets and job outputs live."""
        return self.data_dir / "artifacts"
