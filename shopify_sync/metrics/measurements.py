"""Sales measurements (SPEC §5): ``measurement_sales``, ``measurement_performance``, ``product``.

Definitions are exact and shared by all three: a *counted order* has ``test = false``
and ``cancelled_at IS NULL``, its day is the UTC date of ``processed_at``; only lines
with a ``product_id`` count. Aggregation happens in SQL with portable constructs
(conditional SUM / COUNT(DISTINCT CASE …)) over the ``Money`` type, so money stays
exact on every backend (scaled integers on SQLite, NUMERIC elsewhere) and the work
scales with the database, not with Python memory.

Money amounts are ``Decimal`` with 4 decimal places (the warehouse scale) in frames
and Parquet decimals in files; ids and counts are int64.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, overload

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shopify_sync.warehouse.tables import order_header, order_line_item, product
from shopify_sync.warehouse.types import MONEY_SCALE, Money

# Sums of NUMERIC(20,4) amounts can outgrow 20 digits; 38 is Decimal128's maximum.
MONEY_PRECISION = 38
MONEY_DTYPE = pl.Decimal(MONEY_PRECISION, MONEY_SCALE)
ZERO = Decimal(0).scaleb(-MONEY_SCALE)

SALES_SCHEMA: dict[str, Any] = {
    "shop": pl.String,
    "date": pl.Date,
    "product_id": pl.Int64,
    "variant_id": pl.Int64,
    "sku": pl.String,
    "currency_code": pl.String,
    "orders": pl.Int64,
    "units_ordered": pl.Int64,
    "units_net": pl.Int64,
    "gross_sales": MONEY_DTYPE,
    "net_sales": MONEY_DTYPE,
}
SALES_KEY = ("shop", "date", "product_id", "variant_id")

PERFORMANCE_SCHEMA: dict[str, Any] = {
    "shop": pl.String,
    "date": pl.Date,
    "product_id": pl.Int64,
    "title": pl.String,
    "currency_code": pl.String,
    "units_7d": pl.Int64,
    "net_sales_7d": MONEY_DTYPE,
    "orders_7d": pl.Int64,
    "units_30d": pl.Int64,
    "net_sales_30d": MONEY_DTYPE,
    "orders_30d": pl.Int64,
}
PERFORMANCE_KEY = ("shop", "date", "product_id")


class MixedCurrencyError(ValueError):
    """Lines of one measurement key carry different currencies: summing them would be meaningless."""


# -- helpers -----------------------------------------------------------------------------


def as_day(value: date | datetime | str) -> date:
    """A partition day from a ``date``, an aware ``datetime`` (its UTC date) or ``YYYY-MM-DD``."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"datetime {value!r} has no timezone; metric days are UTC dates")
        return value.astimezone(UTC).date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"day must be a date or 'YYYY-MM-DD', got {value!r}")


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _int(value: Any) -> int:
    # MySQL returns SUM(INT) as DECIMAL; every backend returns NULL for an empty SUM.
    return 0 if value is None else int(value)


def _money(value: Any) -> Decimal:
    return ZERO if value is None else Decimal(value).quantize(ZERO)


def _money_sum(expr: Any) -> Any:
    # quantity × price: on SQLite the price is a scaled integer, so the product is
    # scaled too; coercing the SUM back to Money un-scales it exactly.
    return sa.type_coerce(sa.func.sum(expr), Money())


def _orders_where(cond: Any, li: Any) -> Any:
    return sa.func.count(sa.distinct(sa.case((sa.and_(cond, li.c.current_quantity > 0), li.c.order_id))))


def _latest_text(
    engine: Engine, shop: str, start: datetime, end: datetime, column: str, by: Sequence[str]
) -> dict[tuple[Any, ...], Any]:
    """``column`` of the most recent counted line (by processed_at, then line id) per ``by`` key."""
    li, oh, where = _build(shop, start, end)
    keys = [li.c[k] for k in by]
    rank = sa.func.row_number().over(
        partition_by=keys, order_by=(oh.c.processed_at.desc(), li.c.line_item_id.desc())
    ).label("rk")
    inner = sa.select(*keys, li.c[column].label("value"), rank).select_from(_join(li, oh)).where(where).subquery()
    stmt = sa.select(*[inner.c[k] for k in by], inner.c.value).where(inner.c.rk == 1)
    with engine.connect() as conn:
        return {tuple(row[: len(by)]): row[len(by)] for row in conn.execute(stmt)}


def _join(li: Any, oh: Any) -> Any:
    return li.join(oh, sa.and_(oh.c.shop == li.c.shop, oh.c.order_id == li.c.order_id))


def _build(shop: str, start: datetime, end: datetime) -> tuple[Any, Any, Any]:
    li, oh = order_line_item.alias("li"), order_header.alias("oh")
    where = sa.and_(
        li.c.shop == shop,
        oh.c.test == sa.false(),
        oh.c.cancelled_at.is_(None),
        oh.c.processed_at >= start,
        oh.c.processed_at < end,
        # "+ 0" keeps the meaning (NULL + 0 is NULL) but hides the column from the
        # index: otherwise SQLite's planner, without statistics, drives the join with a
        # (shop, product_id > NULL) range scan per order, which is quadratic in lines.
        (li.c.product_id + 0).is_not(None),
    )
    return li, oh, where


def _currency(li: Any, oh: Any) -> Any:
    # Lines carry the shop-money currency; fall back to the order's when absent.
    return sa.func.coalesce(li.c.currency_code, oh.c.currency_code)


def _check_currencies(shop: str, what: str, key: Any, n: Any, low: Any, high: Any) -> None:
    if _int(n) > 1:
        raise MixedCurrencyError(
            f"shop {shop}: {what} {key} has lines in several currencies ({low} … {high}); "
            "amounts in different currencies cannot be summed"
        )


# -- measurement_sales -------------------------------------------------------------------


def sales_frame(engine: Engine, shop: str, day: date | datetime | str) -> pl.DataFrame:
    """``measurement_sales`` for ``day``: one row per (shop, date, product_id, variant_id).

    A key gets a row when at least one line of a counted order processed that UTC day
    has it, even when refunds brought ``units_net`` to 0.
    """
    d = as_day(day)
    start, end = _start_of(d), _start_of(d + timedelta(days=1))
    li, oh, where = _build(shop, start, end)
    cur = _currency(li, oh)
    stmt = (
        sa.select(
            li.c.product_id,
            li.c.variant_id,
            _orders_where(sa.true(), li).label("orders"),
            sa.func.sum(li.c.quantity).label("units_ordered"),
            sa.func.sum(li.c.current_quantity).label("units_net"),
            _money_sum(li.c.quantity * li.c.original_unit_price).label("gross_sales"),
            _money_sum(li.c.current_quantity * li.c.discounted_unit_price).label("net_sales"),
            sa.func.count(sa.distinct(cur)).label("n_cur"),
            sa.func.min(cur).label("cur_low"),
            sa.func.max(cur).label("cur_high"),
        )
        .select_from(_join(li, oh))
        .where(where)
        .group_by(li.c.product_id, li.c.variant_id)
    )
    with engine.connect() as conn:
        groups = conn.execute(stmt).all()
    skus = _latest_text(engine, shop, start, end, "sku", ("product_id", "variant_id")) if groups else {}
    rows = []
    for g in groups:
        _check_currencies(shop, f"{d} product {g.product_id} variant", g.variant_id, g.n_cur, g.cur_low, g.cur_high)
        rows.append({
            "shop": shop,
            "date": d,
            "product_id": int(g.product_id),
            "variant_id": None if g.variant_id is None else int(g.variant_id),
            "sku": skus.get((g.product_id, g.variant_id)),
            "currency_code": g.cur_high,
            "orders": _int(g.orders),
            "units_ordered": _int(g.units_ordered),
            "units_net": _int(g.units_net),
            "gross_sales": _money(g.gross_sales),
            "net_sales": _money(g.net_sales),
        })
    return _sorted(pl.DataFrame(rows, schema=SALES_SCHEMA, orient="row"), SALES_KEY)


# -- measurement_performance / product ---------------------------------------------------


@dataclass(frozen=True)
class _Windows:
    as_of: date
    start_30: datetime
    start_7: datetime
    end: datetime

    @classmethod
    def of(cls, as_of: date) -> _Windows:
        return cls(as_of, _start_of(as_of - timedelta(days=29)), _start_of(as_of - timedelta(days=6)),
                   _start_of(as_of + timedelta(days=1)))


def _performance_rows(engine: Engine, shop: str, as_of: date) -> list[dict[str, Any]]:
    w = _Windows.of(as_of)
    li, oh, where = _build(shop, w.start_30, w.end)
    in_7 = oh.c.processed_at >= w.start_7
    cur = _currency(li, oh)
    zero = sa.literal(0, sa.Integer)
    stmt = (
        sa.select(
            li.c.product_id,
            sa.func.sum(sa.case((in_7, li.c.current_quantity), else_=zero)).label("units_7d"),
            _money_sum(sa.case((in_7, li.c.current_quantity * li.c.discounted_unit_price), else_=zero))
            .label("net_sales_7d"),
            _orders_where(in_7, li).label("orders_7d"),
            sa.func.sum(li.c.current_quantity).label("units_30d"),
            _money_sum(li.c.current_quantity * li.c.discounted_unit_price).label("net_sales_30d"),
            _orders_where(sa.true(), li).label("orders_30d"),
            sa.func.count(sa.distinct(cur)).label("n_cur"),
            sa.func.min(cur).label("cur_low"),
            sa.func.max(cur).label("cur_high"),
        )
        .select_from(_join(li, oh))
        .where(where)
        .group_by(li.c.product_id)
    )
    with engine.connect() as conn:
        groups = conn.execute(stmt).all()
    titles = _latest_text(engine, shop, w.start_30, w.end, "title", ("product_id",)) if groups else {}
    rows = []
    for g in groups:
        _check_currencies(shop, f"as of {as_of} product", g.product_id, g.n_cur, g.cur_low, g.cur_high)
        rows.append({
            "shop": shop,
            "date": as_of,
            "product_id": int(g.product_id),
            "title": titles.get((g.product_id,)),
            "currency_code": g.cur_high,
            "units_7d": _int(g.units_7d),
            "net_sales_7d": _money(g.net_sales_7d),
            "orders_7d": _int(g.orders_7d),
            "units_30d": _int(g.units_30d),
            "net_sales_30d": _money(g.net_sales_30d),
            "orders_30d": _int(g.orders_30d),
        })
    return rows


def performance_frame(engine: Engine, shop: str, as_of: date | datetime | str) -> pl.DataFrame:
    """``measurement_performance`` as of ``as_of``: one row per product with a counted line in [D-29, D].

    7-day figures cover D-6..D, 30-day figures D-29..D; an order counts once per
    window however many of its days or lines fall inside it.
    """
    d = as_day(as_of)
    return _sorted(pl.DataFrame(_performance_rows(engine, shop, d), schema=PERFORMANCE_SCHEMA, orient="row"),
                   PERFORMANCE_KEY)


def refresh_products(engine: Engine, shop: str, as_of: date | datetime | str, *, force: bool = False) -> int:
    """Upsert ``product`` with the 7/30-day figures as of ``as_of``; returns the product rows written.

    Every product of the shop already in the table without a counted line in a window
    gets 0 for it (never a stale figure). The table holds the figures of the *latest*
    computed date: when the shop's ``metrics_as_of`` is already newer than ``as_of``
    (a backfill of last month after today's daily run), the figures are recomputed as
    of that newer date instead, so the backfilled data is reflected without moving
    the table back in time; ``force`` computes as of ``as_of`` regardless. One
    transaction, so readers never see the zeroed intermediate state.
    """
    d = as_day(as_of)
    p = product
    with engine.connect() as conn:
        latest = conn.execute(sa.select(sa.func.max(p.c.metrics_as_of)).where(p.c.shop == shop)).scalar()
    if latest is not None and latest > d and not force:
        d = latest
    rows = _performance_rows(engine, shop, d)
    values = [
        {
            "shop": shop,
            "product_id": r["product_id"],
            "title": r["title"],
            **{k: r[k] for k in ("units_7d", "net_sales_7d", "orders_7d", "units_30d", "net_sales_30d", "orders_30d")},
            "metrics_as_of": d,
        }
        for r in rows
    ]
    with engine.begin() as conn:
        existing = set(conn.execute(sa.select(p.c.product_id).where(p.c.shop == shop)).scalars())
        conn.execute(
            p.update()
            .where(p.c.shop == shop)
            .values(units_7d=0, net_sales_7d=ZERO, orders_7d=0, units_30d=0, net_sales_30d=ZERO, orders_30d=0,
                    metrics_as_of=d)
        )
        if values:
            conn.execute(_upsert(conn.dialect.name), values)
    return len(existing | {v["product_id"] for v in values})


def _upsert(dialect: str) -> Any:
    p = product
    update_cols = ["title", "units_7d", "net_sales_7d", "orders_7d", "units_30d", "net_sales_30d", "orders_30d",
                   "metrics_as_of"]
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(p)
        return stmt.on_conflict_do_update(index_elements=[p.c.shop, p.c.product_id],
                                          set_={c: stmt.excluded[c] for c in update_cols})
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(p)
        return stmt.on_conflict_do_update(index_elements=[p.c.shop, p.c.product_id],
                                          set_={c: stmt.excluded[c] for c in update_cols})
    if dialect in {"mysql", "mariadb"}:
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        stmt = mysql_insert(p)
        return stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in update_cols})
    raise ValueError(f"unsupported database backend {dialect!r} for the product upsert")


# -- Parquet ---------------------------------------------------------------------------


def _sorted(frame: pl.DataFrame, key: Sequence[str]) -> pl.DataFrame:
    return frame.sort(list(key), nulls_last=False, maintain_order=True)


def _arrow_schema(columns: dict[str, Any]) -> Any:
    import pyarrow as pa

    arrow_types = {pl.String: pa.string(), pl.Date: pa.date32(), pl.Int64: pa.int64()}
    fields = []
    for name, dtype in columns.items():
        if isinstance(dtype, pl.Decimal):
            fields.append(pa.field(name, pa.decimal128(MONEY_PRECISION, MONEY_SCALE)))
        else:
            fields.append(pa.field(name, arrow_types[dtype]))
    return pa.schema(fields)


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    """A measurement frame as deterministic Parquet bytes.

    Same rows in → same bytes out: rows sorted by the measurement key, fixed column
    order and types (ids / counts int64, money decimal128(38,4), never float), no
    timestamps or writer-dependent metadata, so a re-run overwrites the object with
    an identical one and checksums / ETags stay stable.
    """
    import pyarrow.parquet as pq

    if list(frame.columns) == list(SALES_SCHEMA):
        schema, key = SALES_SCHEMA, SALES_KEY
    elif list(frame.columns) == list(PERFORMANCE_SCHEMA):
        schema, key = PERFORMANCE_SCHEMA, PERFORMANCE_KEY
    else:
        raise ValueError(
            f"not a measurement frame: columns {frame.columns}; expected {list(SALES_SCHEMA)} "
            f"or {list(PERFORMANCE_SCHEMA)}"
        )
    floats = [c for c, t in frame.schema.items() if t.is_float()]
    if floats:
        # A float has already lost the exact amount; refusing beats writing a wrong decimal.
        raise ValueError(f"measurement columns {floats} are float; money must be Decimal, counts and ids int")
    try:
        frame = _sorted(frame.cast(schema), key)  # type: ignore[arg-type]
    except pl.exceptions.PolarsError as exc:
        raise ValueError(f"measurement frame has values that do not fit its schema: {exc}") from None
    table = frame.to_arrow().cast(_arrow_schema(schema))
    # Drop the arrow/polars schema blob: its content depends on library versions, not on the data.
    table = table.replace_schema_metadata(None)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", compression_level=3, store_schema=False,
                   write_statistics=True, use_dictionary=True, data_page_version="1.0")
    return buf.getvalue()


@overload
def write_parquet(frame: pl.DataFrame, /) -> bytes: ...


@overload
def write_parquet(store: Any, key: str, frame: pl.DataFrame, /) -> int: ...


def write_parquet(*args: Any) -> bytes | int:
    """``write_parquet(store, key, frame) -> bytes written``, or ``write_parquet(frame) -> bytes``.

    The one-argument form only renders (``parquet_bytes``) for callers that store the
    bytes themselves; the three-argument form renders and puts the object.
    """
    if len(args) == 1:
        return parquet_bytes(args[0])
    if len(args) == 3:
        store, key, frame = args
        data = parquet_bytes(frame)
        store.put_bytes(key, data)
        return len(data)
    raise TypeError("write_parquet(store, key, frame) or write_parquet(frame)")
