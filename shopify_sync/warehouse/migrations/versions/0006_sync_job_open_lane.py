"""sync_job.open_lane: one unfinished daily/replay job per shop, enforced by a unique index

Revision ID: 0006_sync_job_open_lane
Revises: 0005_mysql_utf8mb4_tables
Create Date: 2026-12-03
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_sync_job_open_lane"
down_revision = "0005_mysql_utf8mb4_tables"
branch_labels = None
depends_on = None

# The one-run-per-shop guard was a check-then-act in the launcher: two runs started at the
# same instant both passed it. The unique (shop, open_lane) index makes the second claim
# fail in the database on every backend (NULLs do not collide, so finished jobs never do).
# Existing unfinished jobs get no lane here: a run of the new code closes or continues them.


def upgrade() -> None:
    with op.batch_alter_table("sync_job") as batch:
        batch.add_column(sa.Column("open_lane", sa.String(16), nullable=True))
    op.create_index("uq_sync_job_open_lane", "sync_job", ["shop", "open_lane"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_sync_job_open_lane", table_name="sync_job")
    with op.batch_alter_table("sync_job") as batch:
        batch.drop_column("open_lane")
