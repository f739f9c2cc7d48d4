"""sync_job_changes: each committed chunk's change records, so a crash loses no commerce event

Revision ID: 0003_sync_job_changes
Revises: 0002_drop_unused_indexes
Create Date: 2026-11-23
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003_sync_job_changes"
down_revision = "0002_drop_unused_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_job_changes",
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("start_line", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("end_line", sa.BigInteger, nullable=False),
        sa.Column("payload", sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb"), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "start_line"),
    )


def downgrade() -> None:
    op.drop_table("sync_job_changes")
