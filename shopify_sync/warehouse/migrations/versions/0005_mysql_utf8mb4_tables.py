"""MySQL/MariaDB: every warehouse table in utf8mb4, whatever the database's default charset

Revision ID: 0005_mysql_utf8mb4_tables
Revises: 0004_sync_job_events_key
Create Date: 2026-11-24
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_mysql_utf8mb4_tables"
down_revision = "0004_sync_job_events_key"
branch_labels = None
depends_on = None

# The tables took the database's default charset, which is latin1 on upstream MariaDB
# before 11.6 and on MySQL 5.7: a title with an emoji or a CJK, Polish or Greek letter was
# then refused ("Incorrect string value"), or in a non-strict sql_mode stored as "?".
# A later migration that creates a table passes mysql_charset="utf8mb4" to op.create_table;
# test_mysql_tables_are_utf8mb4_whatever_the_database_default fails if one does not.
TABLES = ("order_header", "order_line_item", "order_refund", "product", "sync_watermark", "sync_job",
          "sync_job_changes")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "mysql":
        return
    rows = bind.execute(sa.text(
        "SELECT t.table_name, c.character_set_name FROM information_schema.tables t "
        "JOIN information_schema.collation_character_set_applicability c "
        "ON c.collation_name = t.table_collation WHERE t.table_schema = DATABASE()")).all()
    charset = {name.lower(): cs for name, cs in rows}
    for table in TABLES:
        if charset.get(table) not in (None, "utf8mb4"):
            # CONVERT rewrites the table (and its string columns) in the new charset; no
            # latin1 text is lost, as every latin1 character exists in utf8mb4.
            op.execute(f"ALTER TABLE `{table}` CONVERT TO CHARACTER SET utf8mb4")


def downgrade() -> None:
    # Converting back could lose characters latin1 lacks: the tables stay utf8mb4.
    pass
