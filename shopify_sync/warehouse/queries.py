"""Read-only warehouse queries of the Dagster assets' metadata and the asset checks.

The asset and check code in ``shopify_sync.defs`` says what to show and what to
compare; the SQL it needs is here, next to the tables. (Job state is not: every
``sync_job`` / ``sync_watermark`` read is in ``warehouse.jobs``.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shopify_sync.timeutil import utc_day
from shopify_sync.warehouse.tables import order_header, order_line_item, order_refund, product

ORDER_TABLES: dict[str, sa.Table] = {t.name: t for t in (order_header, order_line_item, order_refund)}


def _money(value: object) -> Decimal:
    # SQLite hands money back as text, the servers as Decimal.
    return Decimal(str(value if value is not None else 0))


def order_table_rows(engine: Engine, table: str, shops: Sequence[str]) -> int:
    """Rows of the order table ``table`` (``order_header`` …) that belong to ``shops``."""
    t = ORDER_TABLES[table]
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c.shop.in_(shops))).scalar_one())


@dataclass(frozen=True)
class TopProduct:
    product_id: int
    title: str | None
    units_30d: int
    net_sales_30d: Decimal
    orders_30d: int


def top_products(engine: Engine, shop: str, limit: int = 10) -> list[TopProduct]:
    """The shop's products with the highest 30-day net sales (ties by product id)."""
    p = product
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(p.c.product_id, p.c.title, p.c.units_30d, p.c.net_sales_30d, p.c.orders_30d)
            .where(p.c.shop == shop)
        ).all()
    found = [TopProduct(int(r.product_id), r.title, int(r.units_30d or 0), _money(r.net_sales_30d),
                        int(r.orders_30d or 0)) for r in rows]
    # Sorted here: on SQLite money is stored as text, so ORDER BY would sort lexically.
    return sorted(found, key=lambda tp: (-tp.net_sales_30d, tp.product_id))[:limit]


@dataclass(frozen=True)
class StoredProductFigures:
    """A ``product`` row's 7- and 30-day figures, as stored."""

    product_id: int
    as_of: date
    units_7d: int
    net_sales_7d: Decimal
    orders_7d: int
    units_30d: int
    net_sales_30d: Decimal
    orders_30d: int


def _day(value: date | datetime) -> date:
    return utc_day(value) if isinstance(value, datetime) else value


def product_sample(engine: Engine, shop: str, limit: int) -> list[StoredProductFigures]:
    """Up to ``limit`` of the shop's products (lowest ids) that have figures."""
    p = product
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(p).where(p.c.shop == shop).order_by(p.c.product_id).limit(limit)
        ).mappings().all()
    return [
        StoredProductFigures(
            int(r["product_id"]), _day(r["metrics_as_of"]), int(r["units_7d"]), _money(r["net_sales_7d"]),
            int(r["orders_7d"]), int(r["units_30d"]), _money(r["net_sales_30d"]), int(r["orders_30d"]))
        for r in rows if r["metrics_as_of"] is not None
    ]


@dataclass(frozen=True)
class CountedLine:
    """A line item of a counted order (not test, not cancelled)."""

    product_id: int
    order_id: int
    current_quantity: int
    discounted_unit_price: Decimal
    processed_at: datetime | None


def counted_lines(engine: Engine, shop: str, product_ids: Sequence[int], since: date) -> list[CountedLine]:
    """Lines of ``product_ids`` in counted orders processed on or after ``since``.

    Written out here rather than through ``shopify_sync.metrics``: the product check
    recomputes the figures independently of the code that stored them (SPEC §5).
    One query for the whole sample, through the (shop, processed_at) and (shop, order_id)
    indexes: lines have no product index (it slowed every ingest).
    """
    li, oh = order_line_item, order_header
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(li.c.product_id, li.c.order_id, li.c.current_quantity, li.c.discounted_unit_price,
                      oh.c.processed_at)
            .join(oh, sa.and_(oh.c.shop == li.c.shop, oh.c.order_id == li.c.order_id))
            .where(oh.c.shop == shop, oh.c.processed_at >= datetime.combine(since, datetime.min.time()),
                   li.c.product_id.in_(list(product_ids)), oh.c.test.is_(False), oh.c.cancelled_at.is_(None))
        ).all()
    return [CountedLine(int(r.product_id), int(r.order_id), int(r.current_quantity or 0),
                        _money(r.discounted_unit_price), r.processed_at) for r in rows]
