"""Schedules: a regression policy (``regression``: fail_on_regression, alpha) checked when a scheduled audit ends.

Each finished run of a schedule is compared with the previous successful run of the same schedule; rows
written before this revision get NULL (no policy: runs are compared and ``audit.regressed`` is sent, but a
regression does not fail the run).

Revision ID: 0007_schedule_regression
Revises: 0006_job_error_detail
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_schedule_regression"
down_revision = "0006_job_error_detail"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mlac_schedules") as batch:
        batch.add_column(sa.Column("regression", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mlac_schedules") as batch:
        batch.drop_column("regression")
