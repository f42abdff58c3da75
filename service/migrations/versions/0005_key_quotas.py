"""Per-key quotas: three nullable limits on each API key (NULL: the service default), and a size on datasets.

``mlac_api_keys.max_trial_runs_per_job`` / ``max_active_jobs`` / ``max_stored_bytes`` override the
``MLAC_QUOTA_*`` settings for one key. ``mlac_datasets.size_bytes`` is the stored parquet's size, so that a
key's stored bytes (checkpoints + datasets) are one SQL sum; rows older than this revision count as 0 until
they are uploaded again. ``mlac_jobs.estimate`` keeps the cost estimate made at submission (JSON; NULL for
older jobs).

Revision ID: 0005_key_quotas
Revises: 0004_webhook_outbox
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_key_quotas"
down_revision = "0004_webhook_outbox"
branch_labels = None
depends_on = None

KEY_COLUMNS = ("max_trial_runs_per_job", "max_active_jobs", "max_stored_bytes")


def upgrade() -> None:
    with op.batch_alter_table("mlac_api_keys") as batch:
        batch.add_column(sa.Column("max_trial_runs_per_job", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("max_active_jobs", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_stored_bytes", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("mlac_datasets") as batch:
        batch.add_column(sa.Column("size_bytes", sa.BigInteger(), nullable=False, server_default="0"))
    with op.batch_alter_table("mlac_jobs") as batch:
        batch.add_column(sa.Column("estimate", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mlac_jobs") as batch:
        batch.drop_column("estimate")
    with op.batch_alter_table("mlac_datasets") as batch:
        batch.drop_column("size_bytes")
    with op.batch_alter_table("mlac_api_keys") as batch:
        for name in reversed(KEY_COLUMNS):
            batch.drop_column(name)
