"""Initial job store schema: API keys, checkpoints, datasets, schedules, jobs, events, trial results, schedule runs.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mlac_api_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("is_admin", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False),
    )
    op.create_table(
        "mlac_checkpoints",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("info", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("owner", "sha256", name="uq_checkpoint_owner_sha"),
    )
    op.create_table(
        "mlac_datasets",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("owner", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("num_rows", sa.Integer, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("info", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_datasets_owner", "mlac_datasets", ["owner"])
    op.create_table(
        "mlac_schedules",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("owner", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("cron", sa.String(120), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("template", sa.JSON, nullable=False),
        sa.Column("webhook_url", sa.Text, nullable=True),
        sa.Column("paused", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("last_slot", sa.String(40), nullable=True),
    )
    op.create_index("ix_schedules_owner", "mlac_schedules", ["owner"])
    op.create_table(
        "mlac_jobs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("owner", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("checkpoint_sha", sa.String(64), nullable=True),
        sa.Column("dataset_id", sa.String(40), nullable=True),
        sa.Column("schedule_id", sa.String(40), nullable=True),
        sa.Column("webhook_url", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("lease_owner", sa.String(80), nullable=True),
        sa.Column("lease_expires_at", sa.Float, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("progress", sa.JSON, nullable=False),
        sa.Column("result_path", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("verdict", sa.String(20), nullable=True),
        sa.UniqueConstraint("owner", "idempotency_key", name="uq_job_owner_idempotency"),
    )
    op.create_index("ix_jobs_owner_created", "mlac_jobs", ["owner", "created_at"])
    op.create_index("ix_jobs_state", "mlac_jobs", ["state"])
    op.create_table(
        "mlac_job_events",
        sa.Column("job_id", sa.String(40), sa.ForeignKey("mlac_jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("t", sa.Float, nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
    )
    op.create_table(
        "mlac_trial_results",
        sa.Column("job_id", sa.String(40), sa.ForeignKey("mlac_jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("study", sa.String(200), primary_key=True),
        sa.Column("trial", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("recorded_at", sa.Float, nullable=False),
    )
    op.create_table(
        "mlac_schedule_runs",
        sa.Column("schedule_id", sa.String(40), sa.ForeignKey("mlac_schedules.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("slot", sa.String(40), primary_key=True),
        sa.Column("job_id", sa.String(40), nullable=False),
        sa.Column("fired_at", sa.Float, nullable=False),
        sa.Column("fired_by", sa.String(80), nullable=False),
    )


def downgrade() -> None:
    for name in ("mlac_schedule_runs", "mlac_trial_results", "mlac_job_events", "mlac_jobs", "mlac_schedules",
                 "mlac_datasets", "mlac_checkpoints", "mlac_api_keys"):
        op.drop_table(name)
