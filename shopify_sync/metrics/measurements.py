"""Sales measurements (SPEC §5): ``measurement_sales``, ``measurement_performance``, ``product``.

All three aggregate SPEC §5's counted orders (``test = false``, ``cancelled_at IS NULL``,
day = UTC date of ``processed_at``, lines with a ``product_id``). That query, and its
sums in SQL over the ``Money`` type, live in ``warehouse.queries``, shared with the
API's overview; this module turns its rows into frames, Parquet and ``product`` rows.

Money amounts are ``Decimal`` with 4 decimal places (the warehouse scale) in frames
and Parquet decimals in files; ids and counts are int64.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date, datetime
from typing import overload

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from polars.datatypes import DataTypeClass
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from shopify_sync.storage.object_store import ObjectStore
from shopify_sync.warehouse import queries
from shopify_sync.warehouse.catalog import catalog_title, product_titles, variant_skus
from shopify_sync.warehouse.queries import Currencies
from shopify_sync.warehouse.tables import product
from shopify_sync.warehouse.types import MONEY_SCALE

# Sums of NUMERIC(20,4) amounts can outgrow 20 digits; 38 is Decimal128's maximum.
MONEY_PRECISION = 38
MONEY_DTYPE = pl.Decimal(MONEY_PRECISION, MONEY_SCALE)
ZERO = queries.ZERO_MONEY

# A column's polars type: a class (``pl.Int64``) or an instance (``pl.Decimal(38, 4)``).
_Columns = dict[str, DataTypeClass | pl.DataType]

_SALES_COLUMNS: _Columns = {
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
SALES_SCHEMA = pl.Schema(_SALES_COLUMNS)
SALES_KEY = ("shop", "date", "product_id", "variant_id")

_PERFORMANCE_COLUMNS: _Columns = {
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
PERFORMANCE_SCHEMA = pl.Schema(_PERFORMANCE_COLUMNS)
PERFORMANCE_KEY = ("shop", "date", "product_id")
# The 7/30-day figures, named alike in measurement_performance, product and queries.ProductWindows.
_WINDOW_FIGURES = ("units_7d", "net_sales_7d", "orders_7d", "units_30d", "net_sales_30d", "orders_30d")


class MixedCurrencyError(ValueError):
    """Lines of one measurement key carry different currencies: summing them would be meaningless."""


# -- helpers -----------------------------------------------------------------------------


def check_day(day: date) -> date:
    """``day`` itself, refused unless it is a ``date`` (a ``datetime`` would hide which day is meant)."""
    if isinstance(day, datetime) or not isinstance(day, date):
        raise ValueError(f"day must be a date (the UTC day), got {day!r}")
    return day


def _check_currencies(shop: str, what: str, cur: Currencies) -> None:
    if cur.count > 1:
        raise MixedCurrencyError(
            f"shop {shop}: {what} has lines in several currencies ({cur.low} … {cur.high}); "
            "amounts in different currencies cannot be summed"
        )


# -- measurement_sales -------------------------------------------------------------------


def sales_frame(engine: Engine, shop: str, day: date) -> pl.DataFrame:
    """``measurement_sales`` for ``day``: one row per (shop, date, product_id, variant_id).

    A key gets a row when at least one line of a counted order processed that UTC day
    has it, even when refunds brought ``units_net`` to 0.
    """
    d = check_day(day)
    rows = []
    skus = variant_skus(engine, shop)  # the catalog's SKU for a line that has none
    for g in queries.variant_sales(engine, shop, d):
        _check_currencies(shop, f"{d} product {g.product_id} variant {g.variant_id}", g.currencies)
        rows.append({
            "shop": shop,
            "date": d,
            "product_id": g.product_id,
            "variant_id": g.variant_id,
            "sku": g.sku if g.sku is not None or g.variant_id is None else skus.get(g.variant_id),
            "currency_code": g.currencies.high,
            "orders": g.orders,
            "units_ordered": g.units_ordered,
            "units_net": g.units_net,
            "gross_sales": g.gross_sales,
            "net_sales": g.net_sales,
        })
    return _sorted(pl.DataFrame(rows, schema=SALES_SCHEMA, orient="row"), SALES_KEY)


def with_catalog_skus(frame: pl.DataFrame, skus: dict[int, str]) -> pl.DataFrame:
    """A variant's rows without a line SKU take the catalog's (``sku``, ``variant_id`` columns)."""
    if not skus or frame.is_empty():
        return frame
    known = pl.DataFrame({"variant_id": list(skus), "catalog_sku": list(skus.values())},
                         schema={"variant_id": pl.Int64, "catalog_sku": pl.String})
    return (frame.join(known, on="variant_id", how="left")
            .with_columns(pl.coalesce("sku", "catalog_sku").alias("sku")).drop("catalog_sku"))


def with_catalog_titles(frame: pl.DataFrame, titles: dict[int, str | None]) -> pl.DataFrame:
    """A product the catalog knows takes the catalog's title (``title``, ``product_id`` columns)."""
    if not titles or frame.is_empty():
        return frame
    known = pl.DataFrame({"product_id": list(titles), "catalog_title": list(titles.values()),
                          "known": [True] * len(titles)},
                         schema={"product_id": pl.Int64, "catalog_title": pl.String, "known": pl.Boolean})
    return (frame.join(known, on="product_id", how="left")
            .with_columns(pl.when(pl.col("known")).then(pl.col("catalog_title")).otherwise(pl.col("title"))
                          .alias("title")).drop("catalog_title", "known"))


# -- measurement_performance / product ---------------------------------------------------


def _product_windows(engine: Engine, shop: str, as_of: date) -> list[queries.ProductWindows]:
    groups = queries.product_windows(engine, shop, as_of)
    for g in groups:
        _check_currencies(shop, f"as of {as_of} product {g.product_id}", g.currencies)
    return groups


def performance_frame(engine: Engine, shop: str, as_of: date) -> pl.DataFrame:
    """``measurement_performance`` as of ``as_of``: one row per product with a counted line in [D-29, D].

    7-day figures cover D-6..D, 30-day figures D-29..D; an order counts once per
    window however many of its days or lines fall inside it.
    """
    d = check_day(as_of)
    titles = product_titles(engine, shop)  # the catalog's title for a product it knows
    rows = [
        {"shop": shop, "date": d, "product_id": g.product_id, "title": titles.get(g.product_id, g.title),
         "currency_code": g.currencies.high, **{k: getattr(g, k) for k in _WINDOW_FIGURES}}
        for g in _product_windows(engine, shop, d)
    ]
    return _sorted(pl.DataFrame(rows, schema=PERFORMANCE_SCHEMA, orient="row"), PERFORMANCE_KEY)


def refresh_products(engine: Engine, shop: str, as_of: date, *, force: bool = False) -> int:
    """Upsert ``product`` with the 7/30-day figures as of ``as_of``; returns the product rows written.

    Every product of the shop already in the table without a counted line in a window
    gets 0 for it (never a stale figure). The table holds the figures of the *latest*
    computed date: when the shop's ``metrics_as_of`` is already newer than ``as_of``
    (a backfill of last month after today's daily run), the figures are recomputed as
    of that newer date instead, so the backfilled data is reflected without moving
    the table back in time; ``force`` computes as of ``as_of`` regardless. One
    transaction, so readers never see the zeroed intermediate state.
    """
    d = check_day(as_of)
    p = product
    with engine.connect() as conn:
        latest = conn.execute(sa.select(sa.func.max(p.c.metrics_as_of)).where(p.c.shop == shop)).scalar()
    if latest is not None and latest > d and not force:
        d = latest
    # The windows as measurement_performance has them (from measurement_day_sum, not every
    # line of 30 days). restate builds on this module, hence the import here.
    from shopify_sync.metrics.restate import performance_frames

    values = [
        {"shop": shop, "product_id": r["product_id"], "title": r["title"],
         **{k: r[k] for k in _WINDOW_FIGURES}, "metrics_as_of": d}
        for r in performance_frames(engine, shop, [d])[d].iter_rows(named=True)
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


_PRODUCT_UPDATED = (*_WINDOW_FIGURES, "metrics_as_of")


def _upsert(dialect: str) -> sa.Insert:
    p = product
    if dialect == "postgresql":
        pg = pg_insert(p)
        return pg.on_conflict_do_update(index_elements=[p.c.shop, p.c.product_id],
                                        set_={"title": catalog_title(pg.excluded.title),
                                              **{c: pg.excluded[c] for c in _PRODUCT_UPDATED}})
    if dialect == "sqlite":
        lite = sqlite_insert(p)
        return lite.on_conflict_do_update(index_elements=[p.c.shop, p.c.product_id],
                                          set_={"title": catalog_title(lite.excluded.title),
                                                **{c: lite.excluded[c] for c in _PRODUCT_UPDATED}})
    if dialect in {"mysql", "mariadb"}:
        my = mysql_insert(p)
        return my.on_duplicate_key_update({"title": catalog_title(my.inserted.title),
                                           **{c: my.inserted[c] for c in _PRODUCT_UPDATED}})
    raise ValueError(f"unsupported database backend {dialect!r} for the product upsert")


# -- Parquet ---------------------------------------------------------------------------


def _sorted(frame: pl.DataFrame, key: Sequence[str]) -> pl.DataFrame:
    return frame.sort(list(key), nulls_last=False, maintain_order=True)


_ARROW_TYPES: dict[DataTypeClass | pl.DataType, pa.DataType] = {
    pl.String: pa.string(), pl.Date: pa.date32(), pl.Int64: pa.int64(),
}


def _arrow_schema(columns: pl.Schema) -> pa.Schema:
    fields = []
    for name, dtype in columns.items():
        if isinstance(dtype, pl.Decimal):
            fields.append(pa.field(name, pa.decimal128(MONEY_PRECISION, MONEY_SCALE)))
        else:
            fields.append(pa.field(name, _ARROW_TYPES[dtype]))
    return pa.schema(fields)


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    """A measurement frame as deterministic Parquet bytes.

    Same rows in → same bytes out: rows sorted by the measurement key, fixed column
    order and types (ids / counts int64, money decimal128(38,4), never float), no
    timestamps or writer-dependent metadata, so a re-run overwrites the object with
    an identical one and checksums / ETags stay stable.
    """
    schema: pl.Schema
    key: tuple[str, ...]
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
        frame = _sorted(frame.cast(schema), key)
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
def write_parquet(store: ObjectStore, key: str, frame: pl.DataFrame, /) -> int: ...


def write_parquet(*args: object) -> bytes | int:
    """``write_parquet(store, key, frame) -> bytes written``, or ``write_parquet(frame) -> bytes``.

    The one-argument form only renders (``parquet_bytes``) for callers that store the
    bytes themselves; the three-argument form renders and puts the object.
    """
    match args:
        case (pl.DataFrame() as frame,):
            return parquet_bytes(frame)
        case (ObjectStore() as store, str() as key, pl.DataFrame() as frame):
            data = parquet_bytes(frame)
            store.put_bytes(key, data)
            return len(data)
    raise TypeError("write_parquet(store, key, frame) or write_parquet(frame)")
