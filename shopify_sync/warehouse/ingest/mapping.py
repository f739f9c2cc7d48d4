"""A parsed JSONL chunk → ``order_header`` / ``order_line_item`` / ``order_refund`` frames.

Pure polars, no database: ids from GIDs, timestamps, money as validated decimal text,
NUL characters dropped, values wider than their column refused. Every check fails on
the first offending line, named by its line number.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl
import sqlalchemy as sa
from sqlalchemy.types import TypeEngine

from shopify_sync.warehouse.ingest import upsert
from shopify_sync.warehouse.ingest.model import ChunkFrames, IngestError
from shopify_sync.warehouse.tables import order_header, order_line_item
from shopify_sync.warehouse.types import MONEY_INTEGER_DIGITS, MONEY_SCALE

Row = Mapping[str, object]

_GID = r"^gid://shopify/([A-Za-z]+)/(\d{1,18})$"
_AMOUNT = rf"^-?\d{{1,{MONEY_INTEGER_DIGITS}}}(\.\d{{1,{MONEY_SCALE}}})?$"
_TS_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%#z"

# Order money fields → order_header columns (SPEC §4: after-returns current*Set, shopMoney).
ORDER_MONEY = {
    "total_price": "currentTotalPriceSet",
    "subtotal_price": "currentSubtotalPriceSet",
    "total_discounts": "currentTotalDiscountsSet",
    "total_tax": "currentTotalTaxSet",
    "total_shipping": "currentShippingPriceSet",
    "total_refunded": "totalRefundedSet",
}
LINE_MONEY = {
    "original_unit_price": "originalUnitPriceSet",
    "discounted_unit_price": "discountedUnitPriceAfterAllDiscountsSet",
    "discounted_total": "discountedTotalSet",
}
_ORDER_TIMESTAMPS = {"createdAt": "created_at", "updatedAt": "updated_at", "processedAt": "processed_at",
                     "cancelledAt": "cancelled_at"}

# Where a stored column comes from, for messages about values its column cannot hold.
_ORDER_SOURCES = {"order_name": "name", "currency_code": "currencyCode",
                  "financial_status": "displayFinancialStatus", "fulfillment_status": "displayFulfillmentStatus"}
_LINE_SOURCES = {"sku": "sku", "title": "title", "quantity": "quantity", "current_quantity": "currentQuantity",
                 "currency_code": "discountedTotalSet.shopMoney.currencyCode"}
_INT32 = (-(2**31), 2**31 - 1)


# -- validators ------------------------------------------------------------------------------


def fail_first(frame: pl.DataFrame, bad: pl.Expr, reason: Callable[[Row], str], path: Path) -> None:
    """Raise ``IngestError`` for the first row where ``bad`` holds, with its line number."""
    hit = frame.filter(bad)
    if hit.height:
        row = hit.row(0, named=True)
        line = row["_line"]
        assert isinstance(line, int)
        raise IngestError(reason(row), line, path)


def _ts(col: str) -> pl.Expr:
    return (pl.col(col).str.to_datetime(_TS_FORMAT, time_zone="UTC", strict=False, time_unit="us")
            .dt.replace_time_zone(None))


def _money(struct_col: str) -> pl.Expr:
    return pl.col(struct_col).struct.field("shopMoney").struct.field("amount")


def _ts_reason(src: str) -> Callable[[Row], str]:
    return lambda r: f"{src} is not an ISO-8601 timestamp: {r[src]!r:.60}"


def _money_reason(src: str, dst: str) -> Callable[[Row], str]:
    return lambda r: (f"{src}.shopMoney.amount is not a decimal amount (at most {MONEY_INTEGER_DIGITS} digits "
                      f"before the point and {MONEY_SCALE} after): {r[dst]!r:.60}")


def _check_timestamps(frame: pl.DataFrame, cols: Mapping[str, str], path: Path) -> None:
    for src, dst in cols.items():
        fail_first(frame, pl.col(src).is_not_null() & pl.col(dst).is_null(), _ts_reason(src), path)


def _check_money(frame: pl.DataFrame, cols: Mapping[str, str], path: Path) -> None:
    for dst, src in cols.items():
        fail_first(frame, pl.col(dst).is_not_null() & ~pl.col(dst).str.contains(_AMOUNT), _money_reason(src, dst),
                   path)


@dataclass(frozen=True)
class _Limits:
    """What a table's columns can hold, read from ``tables.py``: a migration that widens a
    column widens these checks too."""

    table: str
    kind: str                            # the object the rows come from, for messages
    sources: Mapping[str, str]           # stored column -> where it comes from in the JSONL
    text: tuple[str, ...]                # text columns
    widths: tuple[tuple[str, int | None], ...]  # (column, its length; None: a 32-bit integer)

    @classmethod
    def of(cls, table: str, kind: str, sources: Mapping[str, str], types: Mapping[str, TypeEngine[object]]) -> _Limits:
        widths: list[tuple[str, int | None]] = []
        for col, ctype in types.items():
            if isinstance(ctype, sa.String) and ctype.length:
                widths.append((col, ctype.length))
            elif isinstance(ctype, sa.Integer) and not isinstance(ctype, sa.BigInteger):
                widths.append((col, None))
        text = tuple(col for col, ctype in types.items() if isinstance(ctype, sa.String))
        return cls(table, kind, sources, text, tuple(widths))

    def width_check(self, col: str, length: int | None) -> tuple[pl.Expr, Callable[[Row], str]]:
        src, kind, table = self.sources[col], self.kind, self.table
        if length is not None:
            return (pl.col(col).str.len_chars() > length,
                    lambda r: f"{kind} {r['id']}: {src} is {len(str(r[col]))} characters; "
                              f"{table}.{col} holds at most {length}")
        return (~pl.col(col).is_between(*_INT32),
                lambda r: f"{kind} {r['id']}: {src} {r[col]} is out of range for {table}.{col} (a 32-bit integer)")


_ORDER_LIMITS = _Limits.of(order_header.name, "Order", _ORDER_SOURCES,
                           {c: order_header.c[c].type for c in _ORDER_SOURCES})
_LINE_LIMITS = _Limits.of(order_line_item.name, "LineItem", _LINE_SOURCES,
                          {c: order_line_item.c[c].type for c in _LINE_SOURCES})


def _without_nul(frame: pl.DataFrame, limits: _Limits) -> pl.DataFrame:
    """U+0000 removed from the text columns, on every backend alike: PostgreSQL text cannot
    hold it (COPY fails the chunk), and a stray NUL in a title is no data worth a failed sync.
    One scan per chunk; the columns are rewritten only on a hit."""
    text = limits.text
    if not text or frame.height == 0:
        return frame
    if not frame.select(pl.any_horizontal(pl.col(c).str.contains("\x00", literal=True) for c in text).any()).item():
        return frame
    return frame.with_columns(pl.col(c).str.replace_all("\x00", "", literal=True) for c in text)


def _check_widths(frame: pl.DataFrame, limits: _Limits, path: Path) -> None:
    """Values the table's columns cannot hold fail here, with their line, on every backend
    alike: PostgreSQL and MariaDB would reject them mid-chunk with no line number, and
    SQLite would store them, so a file that loads locally would fail in production. One
    aggregate per chunk; the rows are searched only on a hit."""
    checks = {col: limits.width_check(col, length) for col, length in limits.widths}
    if not checks or frame.height == 0:
        return
    hits = frame.select(bad.any().alias(col) for col, (bad, _) in checks.items()).row(0, named=True)
    for col, (bad, reason) in checks.items():
        if hits[col]:
            fail_first(frame, bad, reason, path)


def _gid_num(expr: pl.Expr, kind: str) -> pl.Expr:
    """Numeric tail of ``gid://shopify/<kind>/<n>`` as Int64, null when it is not one
    (a prefix test and a cast: several times cheaper than a regex over millions of ids)."""
    prefix = f"gid://shopify/{kind}/"
    return (pl.when(expr.str.starts_with(prefix))
            .then(expr.str.slice(len(prefix)).cast(pl.Int64, strict=False)))


def _bad_id_reason(row: Row) -> str:
    m = re.match(_GID, str(row["id"] or ""))
    if m is None:
        return f"id is not a Shopify GID: {row['id']!r:.80}"
    return f"unexpected object type {m.group(1)} ({row['id']}); the orders query yields Order and LineItem lines only"


# -- the three tables ------------------------------------------------------------------------


def _split(raw: pl.DataFrame, path: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(Order lines, LineItem lines), each with its numeric id as ``_num``."""
    fail_first(raw, pl.col("id").is_null(), lambda r: "object without an id", path)
    ids = raw.with_columns(
        pl.coalesce(_gid_num(pl.col("id"), "Order"), _gid_num(pl.col("id"), "LineItem")).alias("_num"),
        pl.col("id").str.starts_with("gid://shopify/Order/").alias("_is_order"),
    )
    fail_first(ids, pl.col("_num").is_null(), _bad_id_reason, path)
    orders_raw = ids.filter(pl.col("_is_order"))
    lines_raw = ids.filter(~pl.col("_is_order"))
    fail_first(orders_raw, pl.col("__parentId").is_not_null(),
               lambda r: f"Order {r['id']} has a __parentId ({r['__parentId']})", path)
    fail_first(lines_raw, pl.col("__parentId").is_null(),
               lambda r: f"LineItem {r['id']} has no __parentId", path)
    return orders_raw, lines_raw


def _orders(orders_raw: pl.DataFrame, shop: str, path: Path, synced_at: datetime) -> pl.DataFrame:
    orders = orders_raw.select(
        pl.lit(shop).alias("shop"),
        pl.col("_num").alias("order_id"),
        pl.col("name").alias("order_name"),
        *[_ts(src).alias(dst) for src, dst in _ORDER_TIMESTAMPS.items()],
        pl.col("test").fill_null(False).alias("test"),
        pl.col("currencyCode").alias("currency_code"),
        pl.col("displayFinancialStatus").alias("financial_status"),
        pl.col("displayFulfillmentStatus").alias("fulfillment_status"),
        *[_money(src).alias(dst) for dst, src in ORDER_MONEY.items()],
        pl.lit(synced_at, dtype=pl.Datetime("us")).alias("synced_at"),
        pl.col("refunds"),
        pl.col("_line"),
        *[pl.col(src) for src in _ORDER_TIMESTAMPS], pl.col("id"),
    )
    fail_first(orders, pl.col("updatedAt").is_null(), lambda r: f"Order {r['id']} has no updatedAt", path)
    _check_timestamps(orders, _ORDER_TIMESTAMPS, path)
    _check_money(orders, ORDER_MONEY, path)
    orders = _without_nul(orders, _ORDER_LIMITS)
    _check_widths(orders, _ORDER_LIMITS, path)
    return orders


def _refunds(orders: pl.DataFrame, path: Path) -> pl.DataFrame:
    refunds = (
        orders.select("shop", "order_id", "_line", "updated_at", "refunds")
        .filter(pl.col("refunds").list.len() > 0)
        .explode("refunds")
        .unnest("refunds")
        .select(
            "shop",
            _gid_num(pl.col("id"), "Refund").alias("refund_id"),
            "order_id",
            _ts("createdAt").alias("created_at"),
            _money("totalRefundedSet").alias("total_refunded"),
            "updated_at", "_line", "id", "createdAt",
        )
    )
    fail_first(refunds, pl.col("refund_id").is_null(),
               lambda r: f"refund id is not a Refund GID: {r['id']!r:.80}", path)
    _check_timestamps(refunds, {"createdAt": "created_at"}, path)
    _check_money(refunds, {"total_refunded": "refunds.totalRefundedSet"}, path)
    return refunds


def _lines(lines_raw: pl.DataFrame, shop: str, path: Path) -> pl.DataFrame:
    lines = lines_raw.select(
        pl.lit(shop).alias("shop"),
        pl.col("_num").alias("line_item_id"),
        pl.col("__parentId").alias("parent_gid"),
        pl.col("product").struct.field("id").alias("_product"),
        pl.col("variant").struct.field("id").alias("_variant"),
        pl.col("sku"),
        pl.col("title"),
        pl.col("quantity"),
        pl.col("currentQuantity").alias("current_quantity"),
        *[_money(src).alias(dst) for dst, src in LINE_MONEY.items()],
        pl.coalesce(
            pl.col("discountedTotalSet").struct.field("shopMoney").struct.field("currencyCode"),
            pl.col("originalUnitPriceSet").struct.field("shopMoney").struct.field("currencyCode"),
        ).alias("currency_code"),
        pl.col("_line"), pl.col("id"),
    ).with_columns(
        _gid_num(pl.col("parent_gid"), "Order").alias("order_id"),
        _gid_num(pl.col("_product"), "Product").alias("product_id"),
        _gid_num(pl.col("_variant"), "ProductVariant").alias("variant_id"),
    )
    fail_first(lines, pl.col("order_id").is_null(),
               lambda r: f"LineItem {r['id']} has a __parentId that is not an Order GID: {r['parent_gid']!r:.80}",
               path)
    fail_first(lines, pl.col("quantity").is_null(), lambda r: f"LineItem {r['id']} has no quantity", path)
    fail_first(lines, pl.col("_product").is_not_null() & pl.col("product_id").is_null(),
               lambda r: f"product id is not a GID: {r['_product']!r:.80}", path)
    fail_first(lines, pl.col("_variant").is_not_null() & pl.col("variant_id").is_null(),
               lambda r: f"variant id is not a GID: {r['_variant']!r:.80}", path)
    _check_money(lines, LINE_MONEY, path)
    lines = _without_nul(lines, _LINE_LIMITS)
    _check_widths(lines, _LINE_LIMITS, path)
    return lines


def prepare(raw: pl.DataFrame, shop: str, path: Path, synced_at: datetime) -> ChunkFrames:
    """The parsed chunk (with its ``_line`` numbers) as the three tables' frames, validated."""
    orders_raw, lines_raw = _split(raw, path)
    orders = _orders(orders_raw, shop, path, synced_at)
    refunds = _refunds(orders, path)
    lines = _lines(lines_raw, shop, path)
    n_orders, n_lines, n_refunds = orders.height, lines.height, refunds.height
    # A key twice in one statement is an error on PostgreSQL (and ambiguous anywhere):
    # keep the newest version of an order, the last occurrence of a child.
    orders = orders.sort("updated_at", "_line").unique("order_id", keep="last", maintain_order=True)
    refunds = refunds.unique("refund_id", keep="last", maintain_order=True)
    lines = lines.unique("line_item_id", keep="last", maintain_order=True)
    return ChunkFrames(
        orders=orders.select(*upsert.HEADER_COLUMNS, "_line"),
        refunds=refunds.select("shop", "refund_id", "order_id", "created_at", "total_refunded"),
        lines=lines.select(*[c for c in upsert.LINE_COLUMNS if c != "order_updated_at"], "_line", "parent_gid"),
        n_orders=n_orders, n_lines=n_lines, n_refunds=n_refunds,
    )
