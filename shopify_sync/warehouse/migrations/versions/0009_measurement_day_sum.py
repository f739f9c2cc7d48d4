"""measurement_day_sum: the counted lines' sums per day, kept by the ingest; shop_ingest_lock

Revision ID: 0009_measurement_day_sum
Revises: 0008_product_catalog
Create Date: 2026-12-03

The table is filled here from the lines already stored, in SQL, so an existing
warehouse restates from it at once; from then on every ingest chunk keeps it.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import shopify_sync.warehouse.types as wt

revision = "0009_measurement_day_sum"
down_revision = "0008_product_catalog"
branch_labels = None
depends_on = None

_COLUMNS = ("shop, day, product_id, variant_key, currency_code, line_count, orders, units_ordered, units_net, "
            "gross_sales, net_sales, latest_at, latest_line_id, latest_text")


def _fill(dialect: str, variant: bool) -> str:
    """INSERT … SELECT of one grain: per variant (variant_key = variant_id or 0) or per
    product (variant_key = -1, the latest line's title)."""
    day = "CAST(oh.processed_at AS DATE)" if dialect == "postgresql" else "DATE(oh.processed_at)"
    # SQLite stores money as scaled integers: their products and sums stay scaled, as the
    # column stores them.
    vkey = "COALESCE(li.variant_id, 0)" if variant else "-1"
    text = "li.sku" if variant else "li.title"
    cur = "COALESCE(li.currency_code, oh.currency_code, '')"
    part = f"li.shop, {day}, li.product_id, {vkey}, {cur}"
    return f"""
INSERT INTO measurement_day_sum ({_COLUMNS})
SELECT shop, d, product_id, vkey, cur, COUNT(*),
       COUNT(DISTINCT CASE WHEN cq > 0 THEN order_id END), COALESCE(SUM(q), 0), COALESCE(SUM(cq), 0),
       COALESCE(SUM(q * orig), 0), COALESCE(SUM(cq * disc), 0),
       MAX(CASE WHEN rk = 1 THEN at END), MAX(CASE WHEN rk = 1 THEN line_id END), MAX(CASE WHEN rk = 1 THEN txt END)
FROM (
  SELECT li.shop AS shop, {day} AS d, li.product_id AS product_id, {vkey} AS vkey, {cur} AS cur,
         li.order_id AS order_id, li.quantity AS q, li.current_quantity AS cq,
         li.original_unit_price AS orig, li.discounted_unit_price AS disc,
         oh.processed_at AS at, li.line_item_id AS line_id, {text} AS txt,
         ROW_NUMBER() OVER (PARTITION BY {part} ORDER BY oh.processed_at DESC, li.line_item_id DESC) AS rk
  FROM order_line_item li JOIN order_header oh ON oh.shop = li.shop AND oh.order_id = li.order_id
  WHERE NOT oh.test AND oh.cancelled_at IS NULL AND oh.processed_at IS NOT NULL AND li.product_id IS NOT NULL
) x
GROUP BY shop, d, product_id, vkey, cur
"""


def upgrade() -> None:
    op.create_table(
        "measurement_day_sum",
        sa.Column("shop", sa.String(32), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("product_id", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("variant_key", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("currency_code", sa.String(8), nullable=False),
        sa.Column("line_count", sa.BigInteger, nullable=False),
        sa.Column("orders", sa.BigInteger, nullable=False),
        sa.Column("units_ordered", sa.BigInteger, nullable=False),
        sa.Column("units_net", sa.BigInteger, nullable=False),
        sa.Column("gross_sales", wt.Money(), nullable=False),
        sa.Column("net_sales", wt.Money(), nullable=False),
        sa.Column("latest_at", wt.UtcDateTime(), nullable=False),
        sa.Column("latest_line_id", sa.BigInteger, nullable=False),
        sa.Column("latest_text", sa.String(1024)),
        sa.PrimaryKeyConstraint("shop", "day", "product_id", "variant_key", "currency_code"),
        mysql_charset="utf8mb4",
    )
    op.create_table(
        "shop_ingest_lock",
        sa.Column("shop", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("shop"),
        mysql_charset="utf8mb4",
    )
    dialect = op.get_bind().dialect.name
    op.execute(_fill(dialect, variant=True))
    op.execute(_fill(dialect, variant=False))


def downgrade() -> None:
    op.drop_table("shop_ingest_lock")
    op.drop_table("measurement_day_sum")
