"""sync_job.events_key: the commerce events object a job's load writes, chosen before writing

Revision ID: 0004_sync_job_events_key
Revises: 0003_sync_job_changes
Create Date: 2026-11-23
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_sync_job_events_key"
down_revision = "0003_sync_job_changes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite can add a column in place, but drop it only by a table rebuild.
    with op.batch_alter_table("sync_job") as batch:
        batch.add_column(sa.Column("events_key", sa.String(512), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sync_job") as batch:
        batch.drop_column("events_key")
