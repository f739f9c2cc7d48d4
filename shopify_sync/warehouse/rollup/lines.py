"""Counted lines (SPEC §5) as one polars frame, and their sums per ``measurement_day_sum`` row.

The lines come from the warehouse (an ingest chunk's orders before and after its writes,
or whole days for a rebuild) or straight from a chunk's frames (orders new to the
warehouse). Either way they end in ``LINES_SCHEMA``, money as integer counts of 10^-4
(exact, and cheap to add up), and ``sums`` turns them into table rows: one per
(day, product, variant, currency) and one per (day, product, currency) with
``variant_key = -1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopify_sync.timeutil import day_start
from shopify_sync.warehouse.ingest import upsert
from shopify_sync.warehouse.types import MONEY_SCALE, SQLITE_DATETIME_FORMAT

LINES_SCHEMA = pl.Schema({
    "order_id": pl.Int64(), "processed_at": pl.Datetime("us"), "product_id": pl.Int64(), "variant_key": pl.Int64(),
    "currency_code": pl.String(), "line_item_id": pl.Int64(), "sku": pl.String(), "title": pl.String(),
    "quantity": pl.Int64(), "current_quantity": pl.Int64(), "original_unit_price": pl.Int64(),
    "discounted_unit_price": pl.Int64(),
})
KEY = ("day", "product_id", "variant_key", "currency_code")
SUMS = ("line_count", "orders", "units_ordered", "units_net", "gross_sales", "net_sales")
LATEST = ("latest_at", "latest_line_id", "latest_text")
SUMS_SCHEMA = pl.Schema({
    "day": pl.Date(), "product_id": pl.Int64(), "variant_key": pl.Int64(), "currency_code": pl.String(),
    **{c: pl.Int64() for c in SUMS},  # gross_sales / net_sales in 10^-4 units
    "latest_at": pl.Datetime("us"), "latest_line_id": pl.Int64(), "latest_text": pl.String(),
})
PRODUCT_ROW = -1  # variant_key of a product's own row
_BATCH_ROWS = 20_000
NO_VARIANT = 0    # variant_key of a line without a variant


def _scaled(dialect: str, column: str) -> str:
    if dialect == "sqlite":
        return column  # stored as scaled integers already
    cast = "BIGINT" if dialect == "postgresql" else "SIGNED"
    return f"CAST({column} * {10 ** MONEY_SCALE} AS {cast})"


def _processed_at(dialect: str) -> str:
    if dialect in ("mysql", "mariadb"):
        # Microseconds since 1970 as an integer, made a Datetime by polars: PyMySQL parses
        # each DATETIME in Python, a quarter of the check's read of a day's lines
        # (117k lines: about 0.9 s against 1.2 s; docs/benchmarks.md, session 12).
        # TIMESTAMPDIFF is calendar arithmetic on the stored UTC value: no session time zone.
        return "TIMESTAMPDIFF(MICROSECOND, '1970-01-01', oh.processed_at)"
    return "oh.processed_at"


# The integer columns of LINES_SCHEMA, packed into one text field on MySQL (``_select``).
_PACKED = ("order_id", "processed_at", "product_id", "variant_key", "line_item_id", "quantity", "current_quantity",
           "original_unit_price", "discounted_unit_price")


def _select(dialect: str) -> str:
    # MySQL: the lines of an order by the (shop, order_id) index, whether the orders come as
    # a list or from a day's range of order_header (``upsert.rows_for_orders``).
    hint = upsert.lines_by_order_index(dialect)
    column = {
        "order_id": "li.order_id", "processed_at": _processed_at(dialect), "product_id": "li.product_id",
        "variant_key": "COALESCE(li.variant_id, 0)", "currency_code": "COALESCE(li.currency_code, oh.currency_code, '')",
        "line_item_id": "li.line_item_id", "sku": "li.sku", "title": "li.title", "quantity": "li.quantity",
        "current_quantity": "li.current_quantity", "original_unit_price": _scaled(dialect, "li.original_unit_price"),
        "discounted_unit_price": _scaled(dialect, "li.discounted_unit_price"),
    }
    fields = [column[name] for name in LINES_SCHEMA]
    if dialect in ("mysql", "mariadb"):
        # The numbers as one text field ('' for NULL), split by polars (``_frame``): PyMySQL
        # converts every field in Python, and a day's 70k lines took 0.96-1.17 s a field
        # each against 0.51-0.62 s packed (docs/benchmarks.md, session 15).
        packed = ", ".join(f"IFNULL({column[name]}, '')" for name in _PACKED)
        fields = [f"CONCAT_WS(' ', {packed})", *(column[name] for name in LINES_SCHEMA if name not in _PACKED)]
    return (f"SELECT {', '.join(fields)} FROM order_line_item li {hint} "
            "JOIN order_header oh ON oh.shop = li.shop AND oh.order_id = li.order_id")


# Counted (SPEC §5): not a test, not cancelled, processed, a line with a product.
_COUNTED = (" AND NOT oh.test AND oh.cancelled_at IS NULL AND oh.processed_at IS NOT NULL"
            " AND li.product_id IS NOT NULL")


def _frame(dialect: str, rows: Sequence[Sequence[object]]) -> pl.DataFrame:
    if dialect in ("mysql", "mariadb"):  # the numbers packed (``_select``), processed_at in microseconds
        texts = [name for name in LINES_SCHEMA if name not in _PACKED]
        frame = pl.DataFrame(rows, schema={"packed": pl.String(), **{name: pl.String() for name in texts}},
                             orient="row")
        parts = pl.col("packed").str.split_exact(" ", len(_PACKED) - 1).struct
        numbers = [pl.when(parts.field(f"field_{i}") != "").then(parts.field(f"field_{i}")).cast(pl.Int64).alias(name)
                   for i, name in enumerate(_PACKED)]
        frame = frame.select(*numbers, *texts).with_columns(pl.col("processed_at").cast(pl.Datetime("us")))
        return frame.select(list(LINES_SCHEMA))
    if dialect != "sqlite":
        return pl.DataFrame(rows, schema=LINES_SCHEMA, orient="row")
    # Raw reads return SQLAlchemy's stored text format on SQLite.
    frame = pl.DataFrame(rows, schema={**LINES_SCHEMA, "processed_at": pl.String()}, orient="row")
    return frame.with_columns(pl.col("processed_at").str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us"))


def lines_of_orders(conn: Connection, shop: str, order_ids: pl.Series) -> pl.DataFrame:
    """The stored counted lines of these orders, as the caller's transaction sees them."""
    if order_ids.len() == 0:
        return pl.DataFrame(schema=LINES_SCHEMA)
    select = _select(conn.dialect.name)
    # rows_for_orders appends "WHERE li.shop = … AND li.order_id IN …"; the counted filter follows.
    rows = upsert.rows_for_orders(conn, select, shop, order_ids, alias="li.", suffix=_COUNTED, by_index=True)
    return _frame(conn.dialect.name, rows)


def stored_line_versions(conn: Connection, shop: str, line_ids: pl.Series) -> pl.DataFrame:
    """Each stored line's order and the order version it was written with (absent: not stored)."""
    rows = upsert.rows_for_orders(conn, "SELECT line_item_id, order_id, order_updated_at FROM order_line_item",
                                  shop, line_ids, column="line_item_id")
    schema = {"line_item_id": pl.Int64(), "stored_order_id": pl.Int64(), "stored_version": pl.Datetime("us")}
    if conn.dialect.name != "sqlite":
        return pl.DataFrame(rows, schema=schema, orient="row")
    # Raw reads return SQLAlchemy's stored text format on SQLite.
    frame = pl.DataFrame(rows, schema={**schema, "stored_version": pl.String()}, orient="row")
    return frame.with_columns(pl.col("stored_version").str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us"))


def lines_of_days(conn: Connection, shop: str, first: date, last: date) -> pl.DataFrame:
    """The stored counted lines of ``shop`` processed on the UTC days ``first..last``."""
    dialect = conn.dialect.name
    start, end = day_start(first), day_start(last + timedelta(days=1))

    def bound(ts: datetime) -> object:
        # SQLite keeps SQLAlchemy's text format, which compares in time order.
        return ts.strftime(SQLITE_DATETIME_FORMAT) if dialect == "sqlite" else ts.replace(tzinfo=None)

    sql = (f"{_select(dialect)} WHERE oh.shop = :shop AND li.shop = :shop AND oh.processed_at >= :start "
           f"AND oh.processed_at < :end{_COUNTED}")
    params = {"shop": shop, "start": bound(start), "end": bound(end)}
    # In batches: a day of a 1M-order shop is over 100k lines, and as Python rows at once they
    # lifted the CLI's peak by about 100 MB (the stored-measurements check reads one).
    # The size is given: without it SQLite's DBAPI fetches one row at a time (arraysize 1),
    # and a frame per row took minutes and gigabytes (docs/benchmarks.md, session 8).
    if dialect == "sqlite":  # plain tuples, without a SQLAlchemy Row each (``upsert.sqlite_batches``)
        frames = [_frame(dialect, part) for part in upsert.sqlite_batches(conn, sql, params, _BATCH_ROWS)]
    else:
        result = conn.execute(sa.text(sql).execution_options(yield_per=_BATCH_ROWS), params)
        frames = [_frame(dialect, part) for part in result.partitions(_BATCH_ROWS)]
    return pl.concat(frames) if frames else pl.DataFrame(schema=LINES_SCHEMA)


def lines_of_frames(orders: pl.DataFrame, lines: pl.DataFrame) -> pl.DataFrame:
    """Counted lines from a chunk's frames (``orders``: header columns; ``lines``: line columns,
    money as validated decimal text), for orders whose stored lines are exactly these."""
    heads = orders.select("order_id", "processed_at", "test", "cancelled_at",
                          pl.col("currency_code").alias("order_currency"))
    joined = lines.join(heads, on="order_id", how="inner").filter(
        ~pl.col("test").fill_null(False) & pl.col("cancelled_at").is_null() & pl.col("processed_at").is_not_null()
        & pl.col("product_id").is_not_null())
    return joined.select(
        "order_id", "processed_at", "product_id", pl.col("variant_id").fill_null(NO_VARIANT).alias("variant_key"),
        pl.coalesce("currency_code", "order_currency", pl.lit("")).alias("currency_code"),
        "line_item_id", "sku", "title", "quantity", "current_quantity",
        upsert.scaled_money("original_unit_price"), upsert.scaled_money("discounted_unit_price"),
    ).cast(LINES_SCHEMA)


def _grain(lines: pl.DataFrame, variant_key: pl.Expr, text: str) -> pl.DataFrame:
    held = pl.col("current_quantity") > 0
    latest = [pl.col("processed_at"), pl.col("line_item_id")]
    return (
        lines.with_columns(pl.col("processed_at").dt.date().alias("day"), variant_key.alias("variant_key"))
        .group_by(*KEY)
        .agg(
            pl.len().cast(pl.Int64).alias("line_count"),
            pl.col("order_id").filter(held).n_unique().cast(pl.Int64).alias("orders"),
            pl.col("quantity").sum().alias("units_ordered"),
            pl.col("current_quantity").sum().alias("units_net"),
            (pl.col("quantity") * pl.col("original_unit_price")).sum().alias("gross_sales"),
            (pl.col("current_quantity") * pl.col("discounted_unit_price")).sum().alias("net_sales"),
            pl.col("processed_at").sort_by(latest).last().alias("latest_at"),
            pl.col("line_item_id").sort_by(latest).last().alias("latest_line_id"),
            pl.col(text).sort_by(latest).last().alias("latest_text"),
        )
    )


def sums(lines: pl.DataFrame) -> pl.DataFrame:
    """The table rows of these lines (``SUMS_SCHEMA``): per variant, and per product (``variant_key`` -1)."""
    if lines.height == 0:
        return pl.DataFrame(schema=SUMS_SCHEMA)
    return pl.concat([
        _grain(lines, pl.col("variant_key"), "sku"),
        _grain(lines, pl.lit(PRODUCT_ROW, dtype=pl.Int64), "title"),
    ]).select(list(SUMS_SCHEMA)).cast(SUMS_SCHEMA)
