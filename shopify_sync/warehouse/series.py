"""Daily sales series per shop: the staff dashboard's charts.

The same counted orders and line sums as ``queries.shop_currency_totals`` (SPEC §5),
grouped by the UTC day of ``processed_at`` as well, so a chart's days add up to the
overview's figure for the same range.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa

from shopify_sync.warehouse.queries import (
    ZERO_MONEY,
    as_count,
    as_money,
    counted_lines,
    counted_order,
    net_sales,
    units_net,
)
from shopify_sync.warehouse.tables import product


@dataclass(frozen=True)
class DayTotals:
    """Counted orders of one (shop, order currency, UTC day) and the sums of their product lines."""

    shop: str
    currency_code: str | None
    day: date
    orders: int
    units_net: int
    net_sales: Decimal


def _as_date(value: object) -> date:
    # SQLite's date() returns text; MySQL and PostgreSQL return a date.
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def daily_totals(engine: sa.Engine, start: datetime, end: datetime, shop: str | None = None) -> list[DayTotals]:
    """Per (shop, order currency, day) with at least one counted order in ``[start, end)``, sorted."""
    c = counted_lines(start, end, shop)
    oh = c.oh
    # The warehouse keeps naive UTC, so the database's date() of it is the UTC day on every backend.
    day = sa.func.date(oh.c.processed_at).label("day")
    header_where = sa.and_(counted_order(oh, start, end), *([oh.c.shop == shop] if shop is not None else []))
    header_q = (sa.select(oh.c.shop, oh.c.currency_code, day, sa.func.count().label("orders"))
                .where(header_where).group_by(oh.c.shop, oh.c.currency_code, day))
    line_q = (sa.select(oh.c.shop, oh.c.currency_code, day, units_net(c).label("units_net"),
                        net_sales(c).label("net_sales"))
              .select_from(c.source).where(c.where).group_by(oh.c.shop, oh.c.currency_code, day))
    with engine.connect() as conn:
        headers = conn.execute(header_q).mappings().all()
        lines = {(r["shop"], r["currency_code"], _as_date(r["day"])): r
                 for r in conn.execute(line_q).mappings().all()}
    out = []
    for h in headers:
        key = (h["shop"], h["currency_code"], _as_date(h["day"]))
        ln = lines.get(key)
        out.append(DayTotals(
            shop=key[0], currency_code=key[1], day=key[2], orders=as_count(h["orders"]),
            units_net=as_count(ln["units_net"]) if ln else 0,
            net_sales=as_money(ln["net_sales"]) if ln else ZERO_MONEY,
        ))
    return sorted(out, key=lambda t: (t.shop, t.currency_code or "", t.day))


@dataclass(frozen=True)
class ProductFigures:
    """A ``product`` row's stored 7- and 30-day figures."""

    product_id: int
    title: str | None
    units_7d: int
    net_sales_7d: Decimal
    units_30d: int
    net_sales_30d: Decimal
    orders_30d: int
    metrics_as_of: date | None


def product_figures(engine: sa.Engine, shop: str) -> list[ProductFigures]:
    """Every ``product`` row of ``shop``, unsorted (money sorts wrongly as SQLite text: callers sort)."""
    p = product
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(p.c.product_id, p.c.title, p.c.units_7d, p.c.net_sales_7d, p.c.units_30d,
                      p.c.net_sales_30d, p.c.orders_30d, p.c.metrics_as_of).where(p.c.shop == shop)
        ).all()
    return [ProductFigures(int(r.product_id), r.title, as_count(r.units_7d), as_money(r.net_sales_7d),
                           as_count(r.units_30d), as_money(r.net_sales_30d), as_count(r.orders_30d),
                           _as_date(r.metrics_as_of) if r.metrics_as_of is not None else None)
            for r in rows]
