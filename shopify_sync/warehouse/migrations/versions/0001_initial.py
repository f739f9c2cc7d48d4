"""initial warehouse schema (SPEC §4)

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-23
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import shopify_sync.warehouse.types as wt

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "order_header",
        sa.Column("shop", sa.String(32), nullable=False),
        sa.Column("order_id", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("order_name", sa.String(64)),
        sa.Column("created_at", wt.UtcDateTime()),
        sa.Column("updated_at", wt.UtcDateTime(), nullable=False),
        sa.Column("processed_at", wt.UtcDateTime()),
        sa.Column("cancelled_at", wt.UtcDateTime()),
        sa.Column("test", sa.Boolean, nullable=False),
        sa.Column("currency_code", sa.String(8)),
        sa.Column("financial_status", sa.String(32)),
        sa.Column("fulfillment_status", sa.String(32)),
        sa.Column("total_price", wt.Money()),
        sa.Column("subtotal_price", wt.Money()),
        sa.Column("total_discounts", wt.Money()),
        sa.Column("total_tax", wt.Money()),
        sa.Column("total_shipping", wt.Money()),
        sa.Column("total_refunded", wt.Money()),
        sa.Column("synced_at", wt.UtcDateTime()),
        sa.PrimaryKeyConstraint("shop", "order_id"),
    )
    op.create_index("ix_order_header_shop_processed_at", "order_header", ["shop", "processed_at"])
    op.create_index("ix_order_header_shop_created_at", "order_header", ["shop", "created_at"])
    op.create_index("ix_order_header_shop_updated_at", "order_header", ["shop", "updated_at"])

    op.create_table(
        "order_line_item",
        sa.Column("shop", sa.String(32), nullable=False),
        sa.Column("line_item_id", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("order_id", sa.BigInteger, nullable=False),
        sa.Column("product_id", sa.BigInteger),
        sa.Column("variant_id", sa.BigInteger),
        sa.Column("sku", sa.String(255)),
        sa.Column("title", sa.String(1024)),
        sa.Column("quantity", sa.Integer),
        sa.Column("current_quantity", sa.Integer),
        sa.Column("original_unit_price", wt.Money()),
        sa.Column("discounted_unit_price", wt.Money()),
        sa.Column("discounted_total", wt.Money()),
        sa.Column("currency_code", sa.String(8)),
        sa.Column("order_updated_at", wt.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("shop", "line_item_id"),
    )
    op.create_index("ix_order_line_item_shop_order", "order_line_item", ["shop", "order_id"])
    op.create_index("ix_order_line_item_shop_product", "order_line_item", ["shop", "product_id"])

    op.create_table(
        "order_refund",
        sa.Column("shop", sa.String(32), nullable=False),
        sa.Column("refund_id", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("order_id", sa.BigInteger, nullable=False),
        sa.Column("created_at", wt.UtcDateTime()),
        sa.Column("total_refunded", wt.Money()),
        sa.Column("order_updated_at", wt.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("shop", "refund_id"),
    )
    op.create_index("ix_order_refund_shop_order", "order_refund", ["shop", "order_id"])
    op.create_index("ix_order_refund_shop_created_at", "order_refund", ["shop", "created_at"])

    op.create_table(
        "product",
        sa.Column("shop", sa.String(32), nullable=False),
        sa.Column("product_id", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("title", sa.String(1024)),
        sa.Column("units_7d", sa.BigInteger, nullable=False),
        sa.Column("net_sales_7d", wt.Money(), nullable=False),
        sa.Column("orders_7d", sa.BigInteger, nullable=False),
        sa.Column("units_30d", sa.BigInteger, nullable=False),
        sa.Column("net_sales_30d", wt.Money(), nullable=False),
        sa.Column("orders_30d", sa.BigInteger, nullable=False),
        sa.Column("metrics_as_of", sa.Date),
        sa.PrimaryKeyConstraint("shop", "product_id"),
    )

    op.create_table(
        "sync_watermark",
        sa.Column("shop", sa.String(32), nullable=False),
        sa.Column("watermark_at", wt.UtcDateTime(), nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("updated_at", wt.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("shop"),
    )

    op.create_table(
        "sync_job",
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("shop", sa.String(32), nullable=False),
        sa.Column("job_type", sa.String(32), nullable=False),
        sa.Column("partition_key", sa.String(64), nullable=False),
        sa.Column("initiator", sa.String(16)),
        sa.Column("window_start", wt.UtcDateTime()),
        sa.Column("window_end", wt.UtcDateTime()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("bulk_operation_id", sa.String(128)),
        sa.Column("object_count", sa.BigInteger),
        sa.Column("file_size", sa.BigInteger),
        sa.Column("archive_key", sa.String(512)),
        sa.Column("lines_committed", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("max_updated_at", wt.UtcDateTime()),
        sa.Column("rows_json", sa.Text),
        sa.Column("created_at", wt.UtcDateTime(), nullable=False),
        sa.Column("updated_at", wt.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("job_id"),
    )
    op.create_index("ix_sync_job_resume", "sync_job", ["shop", "job_type", "partition_key", "created_at"])
    op.create_index("ix_sync_job_run_id", "sync_job", ["run_id"])
    op.create_index("ix_sync_job_shop_created_at", "sync_job", ["shop", "created_at"])


def downgrade() -> None:
    for table in ("sync_job", "sync_watermark", "product", "order_refund", "order_line_item", "order_header"):
        op.drop_table(table)
