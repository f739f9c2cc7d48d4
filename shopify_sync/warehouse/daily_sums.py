"""Daily sums of the counted lines over many days at once: the one aggregate pass behind
writing (and restating) many measurement partitions.

Same counted orders and line sums as ``queries`` (SPEC §5), grouped additionally by the
UTC day of ``processed_at``: per (day, product, variant) for ``measurement_sales``, per
(day, product) for ``measurement_performance``, whose 7/30-day windows are then summed
in memory (``metrics.restate``). An order has one day, so its distinct count per day adds
up across days to the distinct count over a window. Only the days asked for are read:
the filter is a union of day ranges, not the span between the first and the last.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

import polars as pl
import sqlalchemy as sa

from shopify_sync.timeutil import day_start
from shopify_sync.warehouse import queries
from shopify_sync.warehouse.queries import CountedLines, as_count, as_money
from shopify_sync.warehouse.types import MONEY_SCALE

_MONEY = pl.Decimal(38, MONEY_SCALE)
VARIANT_DAY_SCHEMA = pl.Schema({
    "day": pl.Date(), "product_id": pl.Int64(), "variant_id": pl.Int64(), "sku": pl.String(),
    "orders": pl.Int64(), "units_ordered": pl.Int64(), "units_net": pl.Int64(), "gross_sales": _MONEY,
    "net_sales": _MONEY, "n_cur": pl.Int64(), "cur_low": pl.String(), "cur_high": pl.String(),
})
PRODUCT_DAY_SCHEMA = pl.Schema({
    "day": pl.Date(), "product_id": pl.Int64(), "title": pl.String(), "units_net": pl.Int64(),
    "net_sales": _MONEY, "orders": pl.Int64(), "n_cur": pl.Int64(), "cur_low": pl.String(), "cur_high": pl.String(),
})


def day_ranges(days: Iterable[date]) -> list[tuple[date, date]]:
    """Consecutive days merged into inclusive ``(first, last)`` ranges, sorted."""
    out: list[tuple[date, date]] = []
    for d in sorted(set(days)):
        if out and d == out[-1][1] + timedelta(days=1):
            out[-1] = (out[-1][0], d)
        else:
            out.append((d, d))
    return out


def _day_of(dialect: str, column: sa.ColumnElement[object]) -> sa.ColumnElement[object]:
    # SQLite and MySQL have DATE(); a CAST to DATE on SQLite would give a number.
    if dialect == "postgresql":
        return sa.cast(column, sa.Date)
    return sa.func.date(column)


def _as_date(value: object) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value  # type: ignore[return-value]


def _lines(shop: str, days: Iterable[date]) -> CountedLines | None:
    ranges = day_ranges(days)
    if not ranges:
        return None
    c = queries.counted_lines(day_start(ranges[0][0]), day_start(ranges[-1][1] + timedelta(days=1)), shop)
    within = sa.or_(*[sa.and_(c.oh.c.processed_at >= day_start(a), c.oh.c.processed_at < day_start(b + timedelta(days=1)))
                      for a, b in ranges])
    return CountedLines(c.li, c.oh, sa.and_(c.where, within))


def _latest(conn: sa.Connection, c: CountedLines, day: sa.ColumnElement[object], column: str,
            by: tuple[str, ...]) -> dict[tuple[object, ...], str | None]:
    """``column`` of the latest counted line (processed_at, then line id) per (day, *by)."""
    keys = [c.li.c[k] for k in by]
    rank = sa.func.row_number().over(partition_by=[day, *keys],
                                     order_by=(c.oh.c.processed_at.desc(), c.li.c.line_item_id.desc())).label("rk")
    inner = (sa.select(day.label("day"), *keys, c.li.c[column].label("value"), rank)
             .select_from(c.source).where(c.where).subquery())
    stmt = sa.select(inner.c.day, *[inner.c[k] for k in by], inner.c.value).where(inner.c.rk == 1)
    return {(_as_date(r[0]), *r[1:-1]): r[-1] for r in conn.execute(stmt)}


def variant_day_sums(engine: sa.Engine, shop: str, days: Iterable[date]) -> pl.DataFrame:
    """Per (day, product_id, variant_id) over ``days``: measurement_sales' figures (``VARIANT_DAY_SCHEMA``)."""
    c = _lines(shop, days)
    if c is None:
        return pl.DataFrame(schema=VARIANT_DAY_SCHEMA)
    li = c.li
    day = _day_of(engine.dialect.name, c.oh.c.processed_at)
    cur = c.currency()
    stmt = (
        sa.select(day.label("day"), li.c.product_id, li.c.variant_id, queries.orders_with_units(c).label("orders"),
                  queries.units_ordered(c).label("units_ordered"), queries.units_net(c).label("units_net"),
                  queries.gross_sales(c).label("gross_sales"), queries.net_sales(c).label("net_sales"),
                  sa.func.count(sa.distinct(cur)).label("n_cur"), sa.func.min(cur).label("cur_low"),
                  sa.func.max(cur).label("cur_high"))
        .select_from(c.source).where(c.where).group_by(day, li.c.product_id, li.c.variant_id)
    )
    with engine.connect() as conn:
        groups = conn.execute(stmt).mappings().all()
        skus = _latest(conn, c, day, "sku", ("product_id", "variant_id")) if groups else {}
    rows = []
    for g in groups:
        d = _as_date(g["day"])
        rows.append((d, int(g["product_id"]), None if g["variant_id"] is None else int(g["variant_id"]),
                     skus.get((d, g["product_id"], g["variant_id"])), as_count(g["orders"]),
                     as_count(g["units_ordered"]), as_count(g["units_net"]), as_money(g["gross_sales"]),
                     as_money(g["net_sales"]), as_count(g["n_cur"]), g["cur_low"], g["cur_high"]))
    return pl.DataFrame(rows, schema=VARIANT_DAY_SCHEMA, orient="row")


def product_day_sums(engine: sa.Engine, shop: str, days: Iterable[date]) -> pl.DataFrame:
    """Per (day, product_id) over ``days``: what the 7/30-day windows add up (``PRODUCT_DAY_SCHEMA``)."""
    c = _lines(shop, days)
    if c is None:
        return pl.DataFrame(schema=PRODUCT_DAY_SCHEMA)
    day = _day_of(engine.dialect.name, c.oh.c.processed_at)
    cur = c.currency()
    stmt = (
        sa.select(day.label("day"), c.li.c.product_id, queries.units_net(c).label("units_net"),
                  queries.net_sales(c).label("net_sales"), queries.orders_with_units(c).label("orders"),
                  sa.func.count(sa.distinct(cur)).label("n_cur"), sa.func.min(cur).label("cur_low"),
                  sa.func.max(cur).label("cur_high"))
        .select_from(c.source).where(c.where).group_by(day, c.li.c.product_id)
    )
    with engine.connect() as conn:
        groups = conn.execute(stmt).mappings().all()
        titles = _latest(conn, c, day, "title", ("product_id",)) if groups else {}
    rows = []
    for g in groups:
        d = _as_date(g["day"])
        rows.append((d, int(g["product_id"]), titles.get((d, g["product_id"])), as_count(g["units_net"]),
                     as_money(g["net_sales"]), as_count(g["orders"]), as_count(g["n_cur"]), g["cur_low"],
                     g["cur_high"]))
    return pl.DataFrame(rows, schema=PRODUCT_DAY_SCHEMA, orient="row")
