"""measurement_dirty: days whose counted lines an ingest changed, pending restatement

Revision ID: 0007_measurement_dirty
Revises: 0005_mysql_utf8mb4_tables
Create Date: 2026-12-03
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_measurement_dirty"
down_revision = "0006_sync_job_open_lane"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "measurement_dirty",
        sa.Column("shop", sa.String(32), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("token", sa.String(40), nullable=False),
        sa.Column("sales_token", sa.String(40)),
        sa.PrimaryKeyConstraint("shop", "day"),
        mysql_charset="utf8mb4",
    )


def downgrade() -> None:
    op.drop_table("measurement_dirty")
