"""Checkpoint ids cover every file: record the weights' hash of older rows, mark those that may hold another key's files.

Before this revision a checkpoint's id was the sha256 of its weights, and the first upload of some weights
decided the config.json and tokenizer that every later uploader's row pointed at. New ids are the sha256 of
the manifest of all the checkpoint's files (``mlac.checkpoint_id``). Existing rows keep their ids (jobs and
schedules refer to them); each gets ``info.weights_sha256`` (its id). A row whose directory a row of another
key was created before gets ``info.legacy_shared``: its files may not be the ones its owner sent, so jobs
refuse it (``reupload_required``) until the owner uploads again, which now gives a checkpoint of its own.
Data only: the schema does not change.

Revision ID: 0003_checkpoint_content_id
Revises: 0002_schedule_broken
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_checkpoint_content_id"
down_revision = "0002_schedule_broken"
branch_labels = None
depends_on = None

checkpoints = sa.table(
    "mlac_checkpoints",
    sa.column("pk", sa.Integer), sa.column("sha256", sa.String), sa.column("owner", sa.String),
    sa.column("path", sa.Text), sa.column("info", sa.JSON), sa.column("created_at", sa.Float),
)


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(checkpoints).order_by(checkpoints.c.created_at, checkpoints.c.pk)).mappings().all()
    first_owner: dict[str, str] = {}
    for row in rows:
        info = dict(row["info"] or {})
        if "files" in info and isinstance(info["files"], dict):
            continue  # already a content id (written by the new code)
        info.setdefault("weights_sha256", row["sha256"])
        if first_owner.setdefault(row["path"], row["owner"]) != row["owner"]:
            info["legacy_shared"] = True
        conn.execute(sa.update(checkpoints).where(checkpoints.c.pk == row["pk"]).values(info=info))


def downgrade() -> None:
    conn = op.get_bind()
    for row in conn.execute(sa.select(checkpoints.c.pk, checkpoints.c.info)).mappings().all():
        info = dict(row["info"] or {})
        if "legacy_shared" in info:
            info.pop("legacy_shared")
            conn.execute(sa.update(checkpoints).where(checkpoints.c.pk == row["pk"]).values(info=info))
