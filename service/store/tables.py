"""The job store's schema (SQLAlchemy Core). Alembic migrations in ``service/migrations`` create it;
a contract test checks that the migrated database matches this metadata exactly.

Times are UTC epoch seconds (floats) so that SQLite and PostgreSQL compare them the same way.
Schedule slots are ISO-8601 UTC strings (exact equality for the unique constraint).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

#: Alembic's version table for this schema (Optuna, in the same database, keeps its own ``alembic_version``).
VERSION_TABLE = "mlac_alembic_version"

metadata = MetaData()

api_keys = Table(
    "mlac_api_keys", metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
    # migration 0005: per-key quota overrides (NULL: the MLAC_QUOTA_* default)
    Column("max_trial_runs_per_job", BigInteger, nullable=True),
    Column("max_active_jobs", Integer, nullable=True),
    Column("max_stored_bytes", BigInteger, nullable=True),
)

checkpoints = Table(
    "mlac_checkpoints", metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("sha256", String(64), nullable=False),
    Column("owner", String(40), nullable=False),
    Column("name", String(200), nullable=False),
    Column("path", Text, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("info", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("owner", "sha256", name="uq_checkpoint_owner_sha"),
)

datasets = Table(
    "mlac_datasets", metadata,
    Column("id", String(40), primary_key=True),
    Column("owner", String(40), nullable=False),
    Column("name", String(200), nullable=False),
    Column("source", String(20), nullable=False),
    Column("path", Text, nullable=False),
    Column("num_rows", Integer, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("info", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("size_bytes", BigInteger, nullable=False, server_default="0"),  # migration 0005: counts toward the byte quota
    Index("ix_datasets_owner", "owner"),
)

schedules = Table(
    "mlac_schedules", metadata,
    Column("id", String(40), primary_key=True),
    Column("owner", String(40), nullable=False),
    Column("name", String(200), nullable=False),
    Column("cron", String(120), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("template", JSON, nullable=False),
    Column("webhook_url", Text, nullable=True),
    Column("paused", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("last_slot", String(40), nullable=True),
    Column("broken", Text, nullable=True),  # migration 0002: why the row cannot fire (then skipped)
    Column("regression", JSON, nullable=True),  # migration 0007: {fail_on_regression, alpha}; NULL: no policy
    Index("ix_schedules_owner", "owner"),
)

jobs = Table(
    "mlac_jobs", metadata,
    Column("id", String(40), primary_key=True),
    Column("owner", String(40), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("state", String(16), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("spec_hash", String(64), nullable=False),
    Column("idempotency_key", String(200), nullable=True),
    Column("checkpoint_sha", String(64), nullable=True),
    Column("dataset_id", String(40), nullable=True),
    Column("schedule_id", String(40), nullable=True),
    Column("webhook_url", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("lease_owner", String(80), nullable=True),
    Column("lease_expires_at", Float, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("progress", JSON, nullable=False),
    Column("result_path", Text, nullable=True),
    Column("error", Text, nullable=True),  # one line: the cause of a failure
    Column("error_detail", Text, nullable=True),  # migration 0006: the traceback
    Column("verdict", String(20), nullable=True),
    Column("estimate", JSON, nullable=True),  # migration 0005: the cost estimate made at submission
    UniqueConstraint("owner", "idempotency_key", name="uq_job_owner_idempotency"),
    Index("ix_jobs_owner_created", "owner", "created_at"),
    Index("ix_jobs_state", "state"),
)

job_events = Table(
    "mlac_job_events", metadata,
    Column("job_id", String(40), ForeignKey("mlac_jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("t", Float, nullable=False),
    Column("payload", JSON, nullable=False),
)

trial_results = Table(
    "mlac_trial_results", metadata,
    Column("job_id", String(40), ForeignKey("mlac_jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("study", String(200), primary_key=True),
    Column("trial", Integer, primary_key=True, autoincrement=False),
    Column("value", Float, nullable=True),
    Column("payload", JSON, nullable=False),
    Column("recorded_at", Float, nullable=False),
)

schedule_runs = Table(
    "mlac_schedule_runs", metadata,
    Column("schedule_id", String(40), ForeignKey("mlac_schedules.id", ondelete="CASCADE"), primary_key=True),
    Column("slot", String(40), primary_key=True),
    Column("job_id", String(40), nullable=False),
    Column("fired_at", Float, nullable=False),
    Column("fired_by", String(80), nullable=False),
)

# migration 0004: per-tenant webhook signing secrets and the persistent webhook outbox
webhook_secrets = Table(
    "mlac_webhook_secrets", metadata,
    Column("owner", String(40), primary_key=True),
    Column("secret", String(128), nullable=False),
    Column("created_at", Float, nullable=False),
)

webhook_outbox = Table(
    "mlac_webhook_outbox", metadata,
    Column("id", String(40), primary_key=True),
    Column("owner", String(40), nullable=False),
    Column("job_id", String(40), nullable=True),
    Column("url", Text, nullable=False),
    Column("destination", String(300), nullable=False),
    Column("event", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),
    Column("last_status", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("claimed_by", String(80), nullable=True),
    Column("claim_expires_at", Float, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("delivered_at", Float, nullable=True),
    UniqueConstraint("job_id", "event", name="uq_webhook_job_event"),
    Index("ix_webhook_due", "state", "next_attempt_at"),
    Index("ix_webhook_owner_created", "owner", "created_at"),
)
