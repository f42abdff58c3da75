"""Failed jobs: a one-line cause and the traceback in its own column.

``mlac_jobs.error`` now holds one line (``CheckpointError [bad_tokenizer]: tokenizer.json: ...``, or for an
unexpected exception ``ValueError: ...``); the traceback goes to the new ``mlac_jobs.error_detail``. Rows
written before this revision keep whatever ``error`` they hold (possibly a traceback) and get a NULL detail.

Revision ID: 0006_job_error_detail
Revises: 0005_key_quotas
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_job_error_detail"
down_revision = "0005_key_quotas"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mlac_jobs") as batch:
        batch.add_column(sa.Column("error_detail", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mlac_jobs") as batch:
        batch.drop_column("error_detail")
