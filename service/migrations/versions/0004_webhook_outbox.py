"""Webhooks: per-tenant signing secrets and a persistent outbox.

Revision ID: 0004_webhook_outbox
Revises: 0003_checkpoint_content_id
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_webhook_outbox"
down_revision = "0003_checkpoint_content_id"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mlac_webhook_secrets",
        sa.Column("owner", sa.String(40), primary_key=True),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "mlac_webhook_outbox",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("owner", sa.String(40), nullable=False),
        sa.Column("job_id", sa.String(40), nullable=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("destination", sa.String(300), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("last_status", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("claimed_by", sa.String(80), nullable=True),
        sa.Column("claim_expires_at", sa.Float, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("delivered_at", sa.Float, nullable=True),
        sa.UniqueConstraint("job_id", "event", name="uq_webhook_job_event"),
    )
    op.create_index("ix_webhook_due", "mlac_webhook_outbox", ["state", "next_attempt_at"])
    op.create_index("ix_webhook_owner_created", "mlac_webhook_outbox", ["owner", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_owner_created", table_name="mlac_webhook_outbox")
    op.drop_index("ix_webhook_due", table_name="mlac_webhook_outbox")
    op.drop_table("mlac_webhook_outbox")
    op.drop_table("mlac_webhook_secrets")
