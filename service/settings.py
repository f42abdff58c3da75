"""Service settings: one pydantic-settings object, read from the environment once at start-up.

Every variable has the ``MLAC_`` prefix except the two conventional ones, ``DATABASE_URL`` and
``RAY_ADDRESS``. Nothing else in the service reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=120)
    webhook_retries: int = Field(default=5, ge=0, le=20)
    webhook_backoff_s: float = Field(default=1.0, ge=0, le=600)
    webhook_secret: str | None = Field(default=None, min_length=16, max_length=256,
                                       description="HMAC secret of webhook signatures; default: generated under data_dir")
    allow_private_webhooks: bool = Field(default=True, description="allow webhook URLs on loopback/private addresses")

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
