"""Schedules: a ``broken`` reason (a row that cannot fire is marked and skipped instead of stopping the scheduler).

Revision ID: 0002_schedule_broken
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_schedule_broken"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("mlac_schedules", sa.Column("broken", sa.Text, nullable=True))


def downgrade() -> None:
    # plain ALTER TABLE (SQLite >= 3.35): a batch copy would drop the table and cascade to mlac_schedule_runs
    op.drop_column("mlac_schedules", "broken")
