"""Warehouse reads shared by the metrics, the staff API and the asset checks.

Counted orders (SPEC §5) are decided here once: an order counts when ``test = false``
and ``cancelled_at IS NULL``, on the UTC day of its ``processed_at``; of its lines,
those with a ``product_id`` count. ``metrics.measurements`` (the Parquet measurements
and the ``product`` table) and ``/analytics/commerce/overview`` aggregate these rows
with the same line sums, so a figure is the same wherever it is read.

Sums run in SQL over the ``Money`` type, so money stays exact on every backend
(scaled integers on SQLite, NUMERIC elsewhere) and the work scales with the database,
not with Python memory. Results come back as typed rows, with the drivers' differences
(MySQL's ``SUM(INT)`` is a DECIMAL, an all-NULL ``SUM`` is NULL) smoothed out here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TypeVar

import sqlalchemy as sa

from shopify_sync.timeutil import day_start, naive_utc, utc_day
from shopify_sync.warehouse.tables import order_header, order_line_item, order_refund, product
from shopify_sync.warehouse.types import MONEY_SCALE, Money

ZERO_MONEY = Decimal(0).scaleb(-MONEY_SCALE)
_N = TypeVar("_N", int, Decimal)

# -- counted orders and their product lines -----------------------------------------------


def as_count(value: Decimal | int | None) -> int:
    # MySQL returns SUM(INT) as DECIMAL; every backend returns NULL for an all-NULL SUM.
    return 0 if value is None else int(value)


def as_money(value: Decimal | int | str | None) -> Decimal:
    """An amount at the warehouse scale (4 places); NULL is zero."""
    return ZERO_MONEY if value is None else Decimal(value).quantize(ZERO_MONEY)


def counted_order(oh: sa.FromClause, start: datetime, end: datetime) -> sa.ColumnElement[bool]:
    """``oh`` (an ``order_header``) is a counted order processed in ``[start, end)``."""
    return sa.and_(
        oh.c.test == sa.false(),
        oh.c.cancelled_at.is_(None),
        oh.c.processed_at >= start,
        oh.c.processed_at < end,
    )


@dataclass(frozen=True)
class CountedLines:
    """The product lines of counted orders processed in ``[start, end)``: ``source`` filtered by ``where``."""

    li: sa.FromClause
    oh: sa.FromClause
    where: sa.ColumnElement[bool]

    @property
    def source(self) -> sa.FromClause:
        li, oh = self.li, self.oh
        return li.join(oh, sa.and_(oh.c.shop == li.c.shop, oh.c.order_id == li.c.order_id))

    def currency(self) -> sa.ColumnElement[str]:
        # Lines carry the shop-money currency; fall back to the order's when absent.
        return sa.func.coalesce(self.li.c.currency_code, self.oh.c.currency_code)


def counted_lines(start: datetime, end: datetime, shop: str | None = None) -> CountedLines:
    li, oh = order_line_item.alias("li"), order_header.alias("oh")
    where = sa.and_(
        *([li.c.shop == shop] if shop is not None else []),
        counted_order(oh, start, end),
        # "+ 0" keeps the meaning (NULL + 0 is NULL) but hides the column from the
        # index: otherwise SQLite's planner, without statistics, drives the join with a
        # (shop, product_id > NULL) range scan per order, which is quadratic in lines.
        (li.c.product_id + 0).is_not(None),
    )
    return CountedLines(li, oh, where)


def _money_sum(expr: sa.ColumnElement[Decimal]) -> sa.ColumnElement[Decimal]:
    # quantity × price: on SQLite the price is a scaled integer, so the product is
    # scaled too; coercing the SUM back to Money un-scales it exactly.
    return sa.type_coerce(sa.func.sum(expr), Money())


def _within(window: sa.ColumnElement[bool] | None, expr: sa.ColumnElement[_N]) -> sa.ColumnElement[_N]:
    return expr if window is None else sa.case((window, expr), else_=sa.literal(0, sa.Integer))


def units_net(c: CountedLines, window: sa.ColumnElement[bool] | None = None) -> sa.ColumnElement[int]:
    return sa.func.sum(_within(window, c.li.c.current_quantity))


def units_ordered(c: CountedLines) -> sa.ColumnElement[int]:
    return sa.func.sum(c.li.c.quantity)


def gross_sales(c: CountedLines) -> sa.ColumnElement[Decimal]:
    return _money_sum(c.li.c.quantity * c.li.c.original_unit_price)


def net_sales(c: CountedLines, window: sa.ColumnElement[bool] | None = None) -> sa.ColumnElement[Decimal]:
    return _money_sum(_within(window, c.li.c.current_quantity * c.li.c.discounted_unit_price))


def orders_with_units(c: CountedLines, window: sa.ColumnElement[bool] | None = None) -> sa.ColumnElement[int]:
    """Distinct orders with a line still holding units (``current_quantity > 0``)."""
    cond = c.li.c.current_quantity > 0 if window is None else sa.and_(window, c.li.c.current_quantity > 0)
    return sa.func.count(sa.distinct(sa.case((cond, c.li.c.order_id))))


@dataclass(frozen=True)
class Currencies:
    """The currencies of one group's lines: ``count`` distinct, from ``low`` to ``high``."""

    count: int
    low: str | None
    high: str | None


def _currency_columns(c: CountedLines) -> tuple[sa.Label[int], sa.Label[str], sa.Label[str]]:
    cur = c.currency()
    return (sa.func.count(sa.distinct(cur)).label("n_cur"), sa.func.min(cur).label("cur_low"),
            sa.func.max(cur).label("cur_high"))


def _currencies(row: sa.RowMapping) -> Currencies:
    return Currencies(as_count(row["n_cur"]), row["cur_low"], row["cur_high"])


def _latest_text(
    engine: sa.Engine, c: CountedLines, column: str, by: Sequence[str]
) -> dict[tuple[int | None, ...], str | None]:
    """``column`` of the most recent counted line (by processed_at, then line id) per ``by`` key."""
    keys = [c.li.c[k] for k in by]
    rank = sa.func.row_number().over(
        partition_by=keys, order_by=(c.oh.c.processed_at.desc(), c.li.c.line_item_id.desc())
    ).label("rk")
    inner = sa.select(*keys, c.li.c[column].label("value"), rank).select_from(c.source).where(c.where).subquery()
    stmt = sa.select(*[inner.c[k] for k in by], inner.c.value).where(inner.c.rk == 1)
    with engine.connect() as conn:
        return {tuple(row[: len(by)]): row[len(by)] for row in conn.execute(stmt)}


# -- per variant and day: measurement_sales ------------------------------------------------


@dataclass(frozen=True)
class VariantSales:
    product_id: int
    variant_id: int | None
    sku: str | None
    orders: int
    units_ordered: int
    units_net: int
    gross_sales: Decimal
    net_sales: Decimal
    currencies: Currencies


def variant_sales(engine: sa.Engine, shop: str, day: date) -> list[VariantSales]:
    """Sums of the counted lines processed on ``day`` (UTC), per (product_id, variant_id)."""
    c = counted_lines(day_start(day), day_start(day + timedelta(days=1)), shop)
    li = c.li
    stmt = (
        sa.select(li.c.product_id, li.c.variant_id, orders_with_units(c).label("orders"),
                  units_ordered(c).label("units_ordered"), units_net(c).label("units_net"),
                  gross_sales(c).label("gross_sales"), net_sales(c).label("net_sales"), *_currency_columns(c))
        .select_from(c.source)
        .where(c.where)
        .group_by(li.c.product_id, li.c.variant_id)
    )
    with engine.connect() as conn:
        groups = conn.execute(stmt).mappings().all()
    skus = _latest_text(engine, c, "sku", ("product_id", "variant_id")) if groups else {}
    return [
        VariantSales(
            product_id=int(g["product_id"]),
            variant_id=None if g["variant_id"] is None else int(g["variant_id"]),
            sku=skus.get((g["product_id"], g["variant_id"])),
            orders=as_count(g["orders"]),
            units_ordered=as_count(g["units_ordered"]),
            units_net=as_count(g["units_net"]),
            gross_sales=as_money(g["gross_sales"]),
            net_sales=as_money(g["net_sales"]),
            currencies=_currencies(g),
        )
        for g in groups
    ]


# -- per product over the 7/30 days up to a day: measurement_performance, product ----------


@dataclass(frozen=True)
class ProductWindows:
    """A product's net figures over D-6..D (``_7d``) and D-29..D (``_30d``)."""

    product_id: int
    title: str | None
    units_7d: int
    net_sales_7d: Decimal
    orders_7d: int
    units_30d: int
    net_sales_30d: Decimal
    orders_30d: int
    currencies: Currencies


def product_windows(engine: sa.Engine, shop: str, as_of: date) -> list[ProductWindows]:
    """Per product with a counted line in [as_of - 29, as_of]; an order counts once per window."""
    end = day_start(as_of + timedelta(days=1))
    c = counted_lines(day_start(as_of - timedelta(days=29)), end, shop)
    in_7 = c.oh.c.processed_at >= day_start(as_of - timedelta(days=6))
    stmt = (
        sa.select(c.li.c.product_id,
                  units_net(c, in_7).label("units_7d"), net_sales(c, in_7).label("net_sales_7d"),
                  orders_with_units(c, in_7).label("orders_7d"),
                  units_net(c).label("units_30d"), net_sales(c).label("net_sales_30d"),
                  orders_with_units(c).label("orders_30d"), *_currency_columns(c))
        .select_from(c.source)
        .where(c.where)
        .group_by(c.li.c.product_id)
    )
    with engine.connect() as conn:
        groups = conn.execute(stmt).mappings().all()
    titles = _latest_text(engine, c, "title", ("product_id",)) if groups else {}
    return [
        ProductWindows(
            product_id=int(g["product_id"]),
            title=titles.get((g["product_id"],)),
            units_7d=as_count(g["units_7d"]),
            net_sales_7d=as_money(g["net_sales_7d"]),
            orders_7d=as_count(g["orders_7d"]),
            units_30d=as_count(g["units_30d"]),
            net_sales_30d=as_money(g["net_sales_30d"]),
            orders_30d=as_count(g["orders_30d"]),
            currencies=_currencies(g),
        )
        for g in groups
    ]


# -- per shop and currency over a range: the API's overview --------------------------------


@dataclass(frozen=True)
class ShopCurrencyTotals:
    """Counted orders of one (shop, order currency) over a range, and the sums of their product lines."""

    shop: str
    currency_code: str | None
    orders: int
    refunds: Decimal
    refunded_orders: int
    units_net: int
    units_ordered: int
    gross_sales: Decimal
    net_sales: Decimal


def shop_currency_totals(engine: sa.Engine, start: datetime, end: datetime,
                         shop: str | None = None) -> list[ShopCurrencyTotals]:
    """Per (shop, order currency), sorted, over counted orders processed in ``[start, end)``.

    Two aggregates (orders/refunds per header, sales per line) because joining lines
    would multiply header sums by the number of lines.
    """
    c = counted_lines(start, end, shop)
    oh = c.oh
    header_where = sa.and_(counted_order(oh, start, end), *([oh.c.shop == shop] if shop is not None else []))
    header_q = (
        sa.select(oh.c.shop, oh.c.currency_code, sa.func.count().label("orders"),
                  sa.type_coerce(sa.func.sum(oh.c.total_refunded), Money()).label("refunds"),
                  sa.func.sum(sa.case((oh.c.total_refunded > 0, 1), else_=0)).label("refunded_orders"))
        .where(header_where)
        .group_by(oh.c.shop, oh.c.currency_code)
    )
    line_q = (
        sa.select(oh.c.shop, oh.c.currency_code, units_net(c).label("units_net"),
                  units_ordered(c).label("units_ordered"), gross_sales(c).label("gross_sales"),
                  net_sales(c).label("net_sales"))
        .select_from(c.source)
        .where(c.where)
        .group_by(oh.c.shop, oh.c.currency_code)
    )
    with engine.connect() as conn:
        headers = conn.execute(header_q).mappings().all()
        lines = {(r["shop"], r["currency_code"]): r for r in conn.execute(line_q).mappings().all()}
    out = []
    for h in sorted(headers, key=lambda r: (r["shop"], r["currency_code"] or "")):
        ln = lines.get((h["shop"], h["currency_code"]))
        out.append(ShopCurrencyTotals(
            shop=h["shop"],
            currency_code=h["currency_code"],
            orders=as_count(h["orders"]),
            refunds=as_money(h["refunds"]),
            refunded_orders=as_count(h["refunded_orders"]),
            units_net=as_count(ln["units_net"]) if ln else 0,
            units_ordered=as_count(ln["units_ordered"]) if ln else 0,
            gross_sales=as_money(ln["gross_sales"]) if ln else ZERO_MONEY,
            net_sales=as_money(ln["net_sales"]) if ln else ZERO_MONEY,
        ))
    return out


# -- the Dagster assets' metadata and the asset checks ----------------------------------------
# The product check recomputes its figures from the lines on purpose (``recheck_lines``),
# independently of the counted-orders query above, so that a bug there cannot hide from it.

ORDER_TABLES: dict[str, sa.Table] = {t.name: t for t in (order_header, order_line_item, order_refund)}


def _money(value: object) -> Decimal:
    # SQLite hands money back as text, the servers as Decimal.
    return Decimal(str(value if value is not None else 0))


def order_table_rows(engine: sa.Engine, table: str, shops: Sequence[str]) -> int:
    """Rows of the order table ``table`` (``order_header`` …) that belong to ``shops``."""
    t = ORDER_TABLES[table]
    stmt = sa.select(sa.func.count()).select_from(t).where(t.c.shop.in_(shops))
    # InnoDB counted by the clustered primary key, which holds the whole rows: at 1M orders
    # 4.9 s for order_line_item and 2.0 s for order_header with MariaDB's default buffer pool,
    # against 1.3 s and 0.5 s through the (shop, …) secondary index (docs/benchmarks.md).
    index = next((i.name for i in sorted(t.indexes, key=lambda i: str(i.name))
                  if next(iter(i.columns)).name == "shop"), None)
    if index is not None:
        for dialect in ("mysql", "mariadb"):
            stmt = stmt.with_hint(t, f"FORCE INDEX ({index})", dialect_name=dialect)
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


@dataclass(frozen=True)
class TopProduct:
    product_id: int
    title: str | None
    units_30d: int
    net_sales_30d: Decimal
    orders_30d: int


def top_products(engine: sa.Engine, shop: str, limit: int = 10) -> list[TopProduct]:
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


def product_sample(engine: sa.Engine, shop: str) -> list[StoredProductFigures]:
    """The shop's products that have figures, by id."""
    p = product
    with engine.connect() as conn:
        rows = conn.execute(sa.select(p).where(p.c.shop == shop).order_by(p.c.product_id)).mappings().all()
    return [
        StoredProductFigures(
            int(r["product_id"]), _day(r["metrics_as_of"]), int(r["units_7d"]), _money(r["net_sales_7d"]),
            int(r["orders_7d"]), int(r["units_30d"]), _money(r["net_sales_30d"]), int(r["orders_30d"]))
        for r in rows if r["metrics_as_of"] is not None
    ]


# (units, net sales, orders) over 7 days, then over 30 days.
ProductFigures = tuple[int, Decimal, int, int, Decimal, int]


def recheck_product_figures(engine: sa.Engine, shop: str, product_ids: Sequence[int],
                            as_of: date) -> dict[int, ProductFigures]:
    """Each product's 7/30-day figures as of ``as_of``, summed in SQL straight from
    ``order_line_item`` ⋈ ``order_header`` (SPEC §5); a product without lines gets zeros.

    Written out here for the product check: the metrics sum ``measurement_day_sum`` with
    polars, so this is a recomputation by other code from the lines themselves. Lines have
    no product index (it made the ingest half again slower: docs/benchmarks.md), so the
    query reads either the window's orders and their lines (the (shop, processed_at) and
    (shop, order_id) indexes) or, on SQLite when the shop's history is hardly longer than
    the window, every line and the order of each sampled one (``_window_is_most_history``).
    """
    li, oh = order_line_item, order_header
    first, end = day_start(as_of - timedelta(days=29)), day_start(as_of + timedelta(days=1))
    processed_at: sa.ColumnElement[datetime] = oh.c.processed_at
    # "+ 0": SQLite must drive by the processed_at index, not a product scan, unless:
    product_id: sa.ColumnElement[int] = li.c.product_id + 0
    if engine.dialect.name == "sqlite" and _window_is_most_history(engine, shop, first):
        # Unary "+" keeps SQLite off the processed_at index: it then scans the lines and
        # finds each sampled line's order by key, 0.8 s against 1.8 s for 5 of 40 products
        # of a 1M-order shop whose orders all lie in the window (docs/benchmarks.md).
        processed_at = sa.literal_column(f"+{oh.name}.{oh.c.processed_at.name}", oh.c.processed_at.type)
        product_id = li.c.product_id
    in_7 = processed_at >= day_start(as_of - timedelta(days=6))
    units, amount = li.c.current_quantity, li.c.current_quantity * li.c.discounted_unit_price
    held = li.c.current_quantity > 0

    def money(expr: sa.ColumnElement[Decimal]) -> sa.ColumnElement[Decimal]:
        return sa.type_coerce(sa.func.sum(expr), Money())

    stmt = (sa.select(li.c.product_id,
                      sa.func.sum(sa.case((in_7, units), else_=0)), money(sa.case((in_7, amount), else_=0)),
                      sa.func.count(sa.distinct(sa.case((sa.and_(in_7, held), li.c.order_id)))),
                      sa.func.sum(units), money(amount), sa.func.count(sa.distinct(sa.case((held, li.c.order_id)))))
            .select_from(li.join(oh, sa.and_(oh.c.shop == li.c.shop, oh.c.order_id == li.c.order_id)))
            .where(oh.c.shop == shop, processed_at >= first, processed_at < end,
                   oh.c.test == sa.false(), oh.c.cancelled_at.is_(None), product_id.in_(list(product_ids)))
            .group_by(li.c.product_id))
    zero: ProductFigures = (0, ZERO_MONEY, 0, 0, ZERO_MONEY, 0)
    out = dict.fromkeys(product_ids, zero)
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            # The distinct-order counts sort the sampled lines: in the default 4 MB they spilled
            # to disk (1M orders, 5 products: 2.3 s against 1.2 s). For this transaction only.
            conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
        with _batched_key_access(conn):
            rows = conn.execute(stmt).all()
    for r in rows:
        out[int(r[0])] = (as_count(r[1]), as_money(r[2]), as_count(r[3]), as_count(r[4]), as_money(r[5]),
                          as_count(r[6]))
    return out


@contextmanager
def _batched_key_access(conn: sa.Connection) -> Iterator[None]:
    """On MariaDB, join with batched key access for the statements inside.

    The product check looks up the order of each sampled line by primary key. One at a
    time, in line order, those are random reads; when the order table outgrows the buffer
    pool (128 MB by default) each is a disk read: 4.7 s at 1M orders. Batched, the keys
    are sorted first, so the pages are read in order: 2.3 s there, and no slower when
    everything is cached (1.08 s against 1.15 s with a 1 GB pool; docs/benchmarks.md,
    session 10). These are session settings, so they are put back before the connection
    returns to the pool.
    """
    if not getattr(conn.dialect, "is_mariadb", False):
        yield
        return
    conn.exec_driver_sql("SET SESSION join_cache_level = 6, optimizer_switch = 'mrr=on,mrr_sort_keys=on', "
                         "join_buffer_size = 8388608")
    try:
        yield
    finally:
        conn.exec_driver_sql("SET SESSION join_cache_level = DEFAULT, optimizer_switch = DEFAULT, "
                             "join_buffer_size = DEFAULT")


def _window_is_most_history(engine: sa.Engine, shop: str, first: datetime) -> bool:
    """Whether the shop's first order is less than one window (30 days) before ``first``:
    the window then holds about half of the lines or more, and reading every line beats
    reading the window's orders one by one (one index seek, whatever the history)."""
    with engine.connect() as conn:
        processed_at = order_header.c.processed_at
        earliest = conn.execute(sa.select(sa.type_coerce(sa.func.min(processed_at), processed_at.type))
                                .where(order_header.c.shop == shop)).scalar()
    return earliest is not None and earliest >= naive_utc(first - timedelta(days=30))  # read back naive UTC
