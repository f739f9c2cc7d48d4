"""The product catalog: product_variant, catalog_state, and product's catalog columns

Revision ID: 0008_product_catalog
Revises: 0005_mysql_utf8mb4_tables
Create Date: 2026-12-03
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import shopify_sync.warehouse.types as wt

revision = "0008_product_catalog"
down_revision = "0007_measurement_dirty"
branch_labels = None
depends_on = None

SHOP = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "product_variant",
        sa.Column("shop", SHOP, primary_key=True),
        sa.Column("variant_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("product_id", sa.BigInteger, nullable=False),
        sa.Column("sku", sa.String(255)),
        sa.Column("title", sa.String(1024)),
        sa.Column("price", wt.Money()),
        sa.Column("compare_at_price", wt.Money()),
        sa.Column("inventory_quantity", sa.BigInteger),
        sa.Column("updated_at", wt.UtcDateTime(), nullable=False),
        sa.Column("synced_at", wt.UtcDateTime(), nullable=False),
        sa.Column("deleted_at", wt.UtcDateTime()),
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_product_variant_shop_product", "product_variant", ["shop", "product_id"])
    op.create_index("ix_product_variant_shop_sku", "product_variant", ["shop", "sku"])
    op.create_table(
        "catalog_state",
        sa.Column("shop", SHOP, primary_key=True),
        sa.Column("watermark_at", wt.UtcDateTime()),
        sa.Column("full_refresh_at", wt.UtcDateTime()),
        sa.Column("run_id", sa.String(64)),
        sa.Column("updated_at", wt.UtcDateTime(), nullable=False),
        mysql_charset="utf8mb4",
    )
    with op.batch_alter_table("product") as batch:
        batch.add_column(sa.Column("vendor", sa.String(255)))
        batch.add_column(sa.Column("product_type", sa.String(255)))
        batch.add_column(sa.Column("status", sa.String(16)))
        batch.add_column(sa.Column("catalog_updated_at", wt.UtcDateTime()))
        batch.add_column(sa.Column("inventory_quantity", sa.BigInteger))


def downgrade() -> None:
    with op.batch_alter_table("product") as batch:
        for column in ("inventory_quantity", "catalog_updated_at", "status", "product_type", "vendor"):
            batch.drop_column(column)
    op.drop_table("catalog_state")
    op.drop_index("ix_product_variant_shop_sku", table_name="product_variant")
    op.drop_index("ix_product_variant_shop_product", table_name="product_variant")
    op.drop_table("product_variant")
