"""Bulk JSONL → ``order_header`` / ``order_line_item`` / ``order_refund``: chunked, resumable, idempotent.

How it stays fast with bounded memory: the file is read in big blocks cut after
every ``chunk_rows``-th line (no per-line Python objects), each chunk is parsed by
pyarrow's JSON reader against an explicit schema (what ``shopify.queries`` selects),
then mapped and validated with polars expressions; there is no per-line
``json.loads`` except to explain an error. Orders with no stored row yet (a first
load: all of them) are written with the backend's plain bulk insert, the rest with
guarded upserts (see ``upsert``).

How it stays correct:

- Children are resolved by ``__parentId`` only. Shopify's ungrouped output puts a
  child after its parent but anywhere after it, possibly in a later chunk, so the
  ingest keeps a compact polars frame of every order seen so far (id, updatedAt,
  applied?) and joins children against it; a child whose parent has not appeared
  is malformed input.
- An order is *applied* when its ``updatedAt`` is at least the stored one (one
  SELECT of the chunk's keys, which also yields the change records). Lines and
  refunds of an order that is not applied are skipped, so an older file (a replay,
  an overlapping backfill) changes nothing. Every SQL upsert also carries the guard,
  so a concurrent writer cannot regress a row either.
- Lines and refunds carry the version of the order they were read with
  (``order_updated_at``). When an order is applied, its children read with an older
  version are deleted: lines Shopify no longer returns disappear, while the current
  version's lines (in this chunk or a later one) are upserted with the new version.
- Each chunk commits in one transaction together with ``sync_job.lines_committed``,
  so a crash loses at most the chunk in flight; a resume re-reads the committed
  prefix only to rebuild the parent frame, and ends with the same tables.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gzip
import json
import os
import queue
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import polars as pl
import pyarrow as pa
import pyarrow.json as pj
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shopify_sync.warehouse import upsert
from shopify_sync.warehouse.engine import ensure_schema
from shopify_sync.warehouse.jobs import get_job, record_chunk, reset_ingest
from shopify_sync.warehouse.tables import order_header, order_line_item, sync_job_changes
from shopify_sync.warehouse.types import MONEY_INTEGER_DIGITS, MONEY_SCALE

# -- the JSONL shape (must follow shopify_sync/shopify/queries.py) ---------------------------

_MONEY = pa.struct([("shopMoney", pa.struct([("amount", pa.string()), ("currencyCode", pa.string())]))])
# Where the currency is not stored (orders have their own currencyCode) only the amount
# is parsed: 9 % less parse CPU and 11 % less parsed memory, measured.
_AMOUNT_ONLY = pa.struct([("shopMoney", pa.struct([("amount", pa.string())]))])
_ID = pa.struct([("id", pa.string())])
JSONL_SCHEMA = pa.schema([
    ("id", pa.string()), ("__parentId", pa.string()),
    # Order
    ("name", pa.string()), ("createdAt", pa.string()), ("updatedAt", pa.string()), ("processedAt", pa.string()),
    ("cancelledAt", pa.string()), ("test", pa.bool_()), ("currencyCode", pa.string()),
    ("displayFinancialStatus", pa.string()), ("displayFulfillmentStatus", pa.string()),
    ("currentTotalPriceSet", _AMOUNT_ONLY), ("currentSubtotalPriceSet", _AMOUNT_ONLY),
    ("currentTotalDiscountsSet", _AMOUNT_ONLY), ("currentTotalTaxSet", _AMOUNT_ONLY),
    ("currentShippingPriceSet", _AMOUNT_ONLY), ("totalRefundedSet", _AMOUNT_ONLY),
    ("refunds", pa.list_(pa.struct([("id", pa.string()), ("createdAt", pa.string()),
                                     ("totalRefundedSet", _AMOUNT_ONLY)]))),
    # LineItem
    ("sku", pa.string()), ("title", pa.string()), ("quantity", pa.int64()), ("currentQuantity", pa.int64()),
    ("originalUnitPriceSet", _MONEY), ("discountedUnitPriceAfterAllDiscountsSet", _AMOUNT_ONLY),
    ("discountedTotalSet", _MONEY), ("variant", _ID), ("product", _ID),
])
_PARSE = pj.ParseOptions(explicit_schema=JSONL_SCHEMA, unexpected_field_behavior="ignore")
# One parser thread: on two cores the writer thread and the database server need the
# other one (measured: 178k -> 192k rows/s on PostgreSQL with use_threads=False).
_READ = pj.ReadOptions(block_size=4 << 20, use_threads=False)
# The system allocator hands freed chunk buffers back to the OS; pyarrow's default pool
# (mimalloc) keeps them, which measurably raised the peak RSS of long ingests.
_POOL = pa.system_memory_pool()


def _load_malloc_trim() -> Callable[[], None]:
    """glibc keeps freed memory in per-thread arenas; with the parse thread, pyarrow's workers
    and the driver all allocating, RSS crept up chunk after chunk (measured: +200 MB over
    400k lines on PostgreSQL). ``malloc_trim`` after each chunk hands it back."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def run() -> None:
        trim(0)

    return run


_malloc_trim = _load_malloc_trim()

_GID = r"^gid://shopify/([A-Za-z]+)/(\d{1,18})$"
_AMOUNT = rf"^-?\d{{1,{MONEY_INTEGER_DIGITS}}}(\.\d{{1,{MONEY_SCALE}}})?$"
_TS_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%#z"
_EXPECTED = {
    "id": str, "__parentId": str, "name": str, "createdAt": str, "updatedAt": str, "processedAt": str,
    "cancelledAt": str, "test": bool, "currencyCode": str, "displayFinancialStatus": str,
    "displayFulfillmentStatus": str, "sku": str, "title": str, "quantity": int, "currentQuantity": int,
    "refunds": list, "variant": dict, "product": dict,
}

# Order money fields → order_header columns (SPEC §4: after-returns current*Set, shopMoney).
_ORDER_MONEY = {
    "total_price": "currentTotalPriceSet",
    "subtotal_price": "currentSubtotalPriceSet",
    "total_discounts": "currentTotalDiscountsSet",
    "total_tax": "currentTotalTaxSet",
    "total_shipping": "currentShippingPriceSet",
    "total_refunded": "totalRefundedSet",
}
_LINE_MONEY = {
    "original_unit_price": "originalUnitPriceSet",
    "discounted_unit_price": "discountedUnitPriceAfterAllDiscountsSet",
    "discounted_total": "discountedTotalSet",
}

CHANGE_KINDS = ("created", "status_changed", "refunded", "cancelled")


class IngestError(ValueError):
    """Malformed JSONL (or an unusable job): the message names the line number and the reason."""

    def __init__(self, reason: str, line: int | None = None, path: str | Path | None = None) -> None:
        self.line = line
        self.reason = reason
        where = f"{Path(path).name}, line {line}: " if path is not None and line is not None else (
            f"line {line}: " if line is not None else "")
        super().__init__(f"{where}{reason}")


@dataclass(frozen=True)
class OrderChange:
    """One COMMERCE_TELEMETRY event of an applied order versus its stored row.

    ``kind`` (alias ``event``) is one of ``created``, ``status_changed`` (financial or
    fulfillment status), ``refunded`` (total_refunded grew), ``cancelled``; an order that
    changed in several ways yields one record per kind. ``at`` is the order's updatedAt;
    ``before`` / ``after`` hold the fields that changed (money as Decimal).
    """

    order_id: int
    order_name: str | None
    kind: str
    at: datetime
    before: dict[str, Any] | None
    after: dict[str, Any]

    @property
    def event(self) -> str:
        return self.kind


@dataclass(frozen=True)
class ChunkProgress:
    """Passed to ``on_chunk`` after each committed chunk."""

    start_line: int
    end_line: int
    rows: dict[str, int]
    changes: pl.DataFrame
    seconds: float


@dataclass
class IngestResult:
    objects: int
    rows: dict[str, int]
    max_updated_at: datetime | None
    # Change records, memory-mapped from a temporary Arrow IPC file (file-backed pages, read
    # only when used): a first load has one per order, millions for a big shop.
    changes_table: pa.Table = field(repr=False)
    start_line: int = 0
    lines_committed: int = 0
    chunks: int = 0
    orders_skipped_older: int = 0
    # chunks re-sent in smaller statements after the database refused the size (or dropped
    # the connection while an oversized statement was being sent)
    size_retries: int = 0
    # chunks redone on the upsert path because a row of a "fresh" order existed after all
    fresh_conflicts: int = 0
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase (benchmark insight)
    _changes: list[OrderChange] | None = field(default=None, repr=False)

    @property
    def changes_frame(self) -> pl.DataFrame:
        frame = pl.from_arrow(self.changes_table)
        assert isinstance(frame, pl.DataFrame)
        return frame

    @property
    def changes(self) -> list[OrderChange]:
        """Change records of this call's chunks as a list (see ``iter_changes`` for big loads)."""
        if self._changes is None:
            self._changes = list(self.iter_changes())
        return self._changes

    def iter_changes(self, batch_rows: int = 10_000) -> Iterator[OrderChange]:
        """Change records streamed in batches: bounded memory however many orders changed."""
        for batch in self.changes_table.to_batches(max_chunksize=batch_rows):
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            yield from changes_from_frame(frame)

    @property
    def orders_changed(self) -> int:
        """Applied orders with at least one change (``changes`` may hold several records each)."""
        return self.changes_table.num_rows


# -- reading ---------------------------------------------------------------------------------


def _open(path: Path) -> IO[bytes]:
    """The archive may be gzipped (SPEC §6 allows ``.jsonl.gz``): detected by its magic bytes."""
    with open(path, "rb") as probe:
        magic = probe.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


# 4 MB reads: 16 MB ones measured 40-60 MB more peak RSS at the same speed.
_BLOCK_BYTES = 4 << 20


def _iter_chunks(path: Path, chunk_rows: int) -> Iterator[tuple[int, memoryview, int]]:
    """(index of the chunk's first line, the chunk's bytes, its number of lines).

    The file is read in big blocks and cut after every ``chunk_rows``-th newline, so the
    bytes go to the JSON parser without ever being split into per-line objects (which
    cost 0.7 s per GB). A final line without a newline counts as a line, as it does for a
    line iterator.
    """
    with _open(path) as fh:
        first = 0
        buf, pos = b"", 0          # unconsumed data starts at pos
        end, found = 0, 0          # newlines found so far after pos, and where the last one ends
        eof = False
        while True:
            find = buf.find
            while found < chunk_rows:
                nl = find(b"\n", end)
                if nl < 0:
                    break
                end, found = nl + 1, found + 1
            if found == chunk_rows:
                # A copy, so the chunks in flight do not pin whole read buffers (peak RSS).
                yield first, memoryview(buf[pos:end]), found
                first += found
                pos, found = end, 0
                continue
            if eof:
                if pos < len(buf):
                    yield first, memoryview(buf[pos:]), found + (1 if end < len(buf) else 0)
                return
            block = fh.read(_BLOCK_BYTES)
            eof = not block
            buf, end, pos = buf[pos:] + block, end - pos, 0


def _split_lines(chunk: memoryview | bytes) -> list[bytes]:
    """The chunk's lines (slow path: resume offsets inside a chunk, blank lines, diagnosis)."""
    lines = bytes(chunk).split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def _cut_lines(chunk: memoryview, n: int) -> tuple[memoryview, memoryview]:
    """(the chunk's first ``n`` lines, the rest): only for a resume point inside a chunk."""
    data = bytes(chunk)
    pos = 0
    for _ in range(n):
        nl = data.find(b"\n", pos)
        if nl < 0:
            pos = len(data)
            break
        pos = nl + 1
    view = memoryview(data)
    return view[:pos], view[pos:]


def _diagnose(chunk: memoryview | bytes, first: int, path: Path) -> IngestError:
    """Slow path, only after the fast parser failed: find the first bad line and say why."""
    lines = _split_lines(chunk)
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        line_no = first + i + 1
        try:
            obj = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return IngestError(f"broken JSON ({exc.msg if hasattr(exc, 'msg') else exc})", line_no, path)
        if not isinstance(obj, dict):
            return IngestError(f"expected a JSON object, got {type(obj).__name__}", line_no, path)
        try:
            json.dumps(obj, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            # json.loads accepts "\ud800" alone; Arrow (rightly) does not: it is no character.
            return IngestError("a string holds an unpaired UTF-16 surrogate escape (like \\ud800), "
                               "which is not Unicode text", line_no, path)
        for key, kind in _EXPECTED.items():
            value = obj.get(key)
            if value is None:
                continue
            ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
            if kind is int and ok and not (-(2**63) <= value < 2**63):
                ok = False
            if not ok:
                return IngestError(f"field {key!r} must be {kind.__name__}, got {value!r:.80}", line_no, path)
        for key in (*_ORDER_MONEY.values(), *_LINE_MONEY.values()):
            value = obj.get(key)
            if value is not None and not (isinstance(value, dict) and isinstance(value.get("shopMoney"), dict)
                                          and isinstance(value["shopMoney"].get("amount"), str)):
                return IngestError(f"field {key!r} must be {{shopMoney {{amount currencyCode}}}}, "
                                   f"got {value!r:.80}", line_no, path)
        for r in obj.get("refunds") or []:
            if not isinstance(r, dict) or not isinstance(r.get("id"), str):
                return IngestError(f"malformed refund {r!r:.80}", line_no, path)
    return IngestError(f"could not parse lines {first + 1}-{first + len(lines)}", None, path)


def _parse(chunk: memoryview | bytes, n_lines: int, first: int, path: Path) -> pl.DataFrame:
    try:
        table = pj.read_json(pa.BufferReader(pa.py_buffer(chunk)), read_options=_READ, parse_options=_PARSE,
                             memory_pool=_POOL)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise _diagnose(chunk, first, path) from exc
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    if frame.height == n_lines:
        line_no = pl.int_range(first + 1, first + 1 + frame.height, eager=True, dtype=pl.Int64)
    else:
        # Blank lines are skipped by the parser; keep real line numbers for errors.
        numbers = [first + i + 1 for i, raw in enumerate(_split_lines(chunk)) if raw.strip()]
        if len(numbers) != frame.height:
            raise _diagnose(chunk, first, path)
        line_no = pl.Series(numbers, dtype=pl.Int64)
    return frame.with_columns(line_no.alias("_line"))


# -- mapping and validation ------------------------------------------------------------------


def _fail_first(frame: pl.DataFrame, bad: pl.Expr, reason: Callable[[dict[str, Any]], str], path: Path) -> None:
    hit = frame.filter(bad)
    if hit.height:
        row = hit.row(0, named=True)
        raise IngestError(reason(row), int(row["_line"]), path)


def _ts(col: str) -> pl.Expr:
    return (pl.col(col).str.to_datetime(_TS_FORMAT, time_zone="UTC", strict=False, time_unit="us")
            .dt.replace_time_zone(None))


def _money(struct_col: str) -> pl.Expr:
    return pl.col(struct_col).struct.field("shopMoney").struct.field("amount")


def _check_timestamps(frame: pl.DataFrame, cols: dict[str, str], path: Path) -> None:
    for src, dst in cols.items():
        _fail_first(frame, pl.col(src).is_not_null() & pl.col(dst).is_null(),
                    lambda r, s=src: f"{s} is not an ISO-8601 timestamp: {r[s]!r:.60}", path)


def _check_money(frame: pl.DataFrame, cols: dict[str, str], path: Path) -> None:
    for dst, src in cols.items():
        _fail_first(frame, pl.col(dst).is_not_null() & ~pl.col(dst).str.contains(_AMOUNT),
                    lambda r, s=src, d=dst: f"{s}.shopMoney.amount is not a decimal amount "
                                            f"(at most {MONEY_INTEGER_DIGITS} digits before the point and "
                                            f"{MONEY_SCALE} after): {r[d]!r:.60}", path)


# Where a stored column comes from, for messages about values its column cannot hold.
_ORDER_SOURCES = {"order_name": "name", "currency_code": "currencyCode",
                  "financial_status": "displayFinancialStatus", "fulfillment_status": "displayFulfillmentStatus"}
_LINE_SOURCES = {"sku": "sku", "title": "title", "quantity": "quantity", "current_quantity": "currentQuantity",
                 "currency_code": "discountedTotalSet.shopMoney.currencyCode"}
_INT32 = (-(2**31), 2**31 - 1)


def _without_nul(frame: pl.DataFrame, table: sa.Table, cols: Iterable[str]) -> pl.DataFrame:
    """U+0000 removed from the text columns, on every backend alike: PostgreSQL text cannot
    hold it (COPY fails the chunk), and a stray NUL in a title is no data worth a failed sync.
    One scan per chunk; the columns are rewritten only on a hit."""
    text = [c for c in cols if isinstance(table.c[c].type, sa.String)]
    if not text or frame.height == 0:
        return frame
    if not frame.select(pl.any_horizontal(pl.col(c).str.contains("\x00", literal=True) for c in text).any()).item():
        return frame
    return frame.with_columns(pl.col(c).str.replace_all("\x00", "", literal=True) for c in text)


def _check_widths(frame: pl.DataFrame, table: sa.Table, sources: dict[str, str], kind: str, path: Path) -> None:
    """Values the table's columns cannot hold fail here, with their line, on every backend
    alike: PostgreSQL and MariaDB would reject them mid-chunk with no line number, and
    SQLite would store them, so a file that loads locally would fail in production. The
    limits come from the table definitions, so a migration that widens a column widens
    this check too. One aggregate per chunk; the rows are searched only on a hit."""
    checks: dict[str, tuple[pl.Expr, Callable[[dict[str, Any]], str]]] = {}
    for col, src in sources.items():
        ctype = table.c[col].type
        if isinstance(ctype, sa.String) and ctype.length:
            checks[col] = (pl.col(col).str.len_chars() > ctype.length,
                           lambda r, c=col, s=src, n=ctype.length: (
                               f"{kind} {r['id']}: {s} is {len(r[c])} characters; "
                               f"{table.name}.{c} holds at most {n}"))
        elif isinstance(ctype, sa.Integer) and not isinstance(ctype, sa.BigInteger):
            checks[col] = (~pl.col(col).is_between(*_INT32),
                           lambda r, c=col, s=src: f"{kind} {r['id']}: {s} {r[c]} is out of range for "
                                                   f"{table.name}.{c} (a 32-bit integer)")
    if not checks or frame.height == 0:
        return
    hits = frame.select(bad.any().alias(col) for col, (bad, _) in checks.items()).row(0, named=True)
    for col, (bad, reason) in checks.items():
        if hits[col]:
            _fail_first(frame, bad, reason, path)


@dataclass
class ChunkFrames:
    orders: pl.DataFrame    # header columns + _line
    refunds: pl.DataFrame   # refund columns without order_updated_at (taken from the order)
    lines: pl.DataFrame     # line columns without order_updated_at + _line + parent_gid
    n_orders: int
    n_lines: int
    n_refunds: int


def _gid_num(expr: pl.Expr, kind: str) -> pl.Expr:
    """Numeric tail of ``gid://shopify/<kind>/<n>`` as Int64, null when it is not one
    (prefix test + cast: several times cheaper than a regex over millions of ids)."""
    prefix = f"gid://shopify/{kind}/"
    return (pl.when(expr.str.starts_with(prefix))
            .then(expr.str.slice(len(prefix)).cast(pl.Int64, strict=False)))


def _bad_id_reason(row: dict[str, Any]) -> str:
    m = re.match(_GID, row["id"] or "")
    if m is None:
        return f"id is not a Shopify GID: {row['id']!r:.80}"
    return f"unexpected object type {m.group(1)} ({row['id']}); the orders query yields Order and LineItem lines only"


def _prepare(raw: pl.DataFrame, shop: str, path: Path, synced_at: datetime) -> ChunkFrames:
    _fail_first(raw, pl.col("id").is_null(), lambda r: "object without an id", path)
    ids = raw.with_columns(
        pl.coalesce(_gid_num(pl.col("id"), "Order"), _gid_num(pl.col("id"), "LineItem")).alias("_num"),
        pl.col("id").str.starts_with("gid://shopify/Order/").alias("_is_order"),
    )
    _fail_first(ids, pl.col("_num").is_null(), _bad_id_reason, path)

    orders_raw = ids.filter(pl.col("_is_order"))
    lines_raw = ids.filter(~pl.col("_is_order"))
    _fail_first(orders_raw, pl.col("__parentId").is_not_null(),
                lambda r: f"Order {r['id']} has a __parentId ({r['__parentId']})", path)
    _fail_first(lines_raw, pl.col("__parentId").is_null(),
                lambda r: f"LineItem {r['id']} has no __parentId", path)

    orders = orders_raw.select(
        pl.lit(shop).alias("shop"),
        pl.col("_num").alias("order_id"),
        pl.col("name").alias("order_name"),
        _ts("createdAt").alias("created_at"),
        _ts("updatedAt").alias("updated_at"),
        _ts("processedAt").alias("processed_at"),
        _ts("cancelledAt").alias("cancelled_at"),
        pl.col("test").fill_null(False).alias("test"),
        pl.col("currencyCode").alias("currency_code"),
        pl.col("displayFinancialStatus").alias("financial_status"),
        pl.col("displayFulfillmentStatus").alias("fulfillment_status"),
        *[_money(src).alias(dst) for dst, src in _ORDER_MONEY.items()],
        pl.lit(synced_at, dtype=pl.Datetime("us")).alias("synced_at"),
        pl.col("refunds"),
        pl.col("_line"),
        pl.col("createdAt"), pl.col("updatedAt"), pl.col("processedAt"), pl.col("cancelledAt"), pl.col("id"),
    )
    _fail_first(orders, pl.col("updatedAt").is_null(), lambda r: f"Order {r['id']} has no updatedAt", path)
    _check_timestamps(orders, {"createdAt": "created_at", "updatedAt": "updated_at",
                               "processedAt": "processed_at", "cancelledAt": "cancelled_at"}, path)
    _check_money(orders, _ORDER_MONEY, path)
    orders = _without_nul(orders, order_header, _ORDER_SOURCES)
    _check_widths(orders, order_header, _ORDER_SOURCES, "Order", path)

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
    _fail_first(refunds, pl.col("refund_id").is_null(),
                lambda r: f"refund id is not a Refund GID: {r['id']!r:.80}", path)
    _check_timestamps(refunds, {"createdAt": "created_at"}, path)
    _check_money(refunds, {"total_refunded": "refunds.totalRefundedSet"}, path)

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
        *[_money(src).alias(dst) for dst, src in _LINE_MONEY.items()],
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
    _fail_first(lines, pl.col("order_id").is_null(),
                lambda r: f"LineItem {r['id']} has a __parentId that is not an Order GID: {r['parent_gid']!r:.80}",
                path)
    _fail_first(lines, pl.col("quantity").is_null(), lambda r: f"LineItem {r['id']} has no quantity", path)
    _fail_first(lines, pl.col("_product").is_not_null() & pl.col("product_id").is_null(),
                lambda r: f"product id is not a GID: {r['_product']!r:.80}", path)
    _fail_first(lines, pl.col("_variant").is_not_null() & pl.col("variant_id").is_null(),
                lambda r: f"variant id is not a GID: {r['_variant']!r:.80}", path)
    _check_money(lines, _LINE_MONEY, path)
    lines = _without_nul(lines, order_line_item, _LINE_SOURCES)
    _check_widths(lines, order_line_item, _LINE_SOURCES, "LineItem", path)

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


# -- the database side -----------------------------------------------------------------------

_STORED_SCHEMA = {
    "order_id": pl.Int64, "stored_updated_at": pl.Datetime("us"), "stored_financial_status": pl.String,
    "stored_fulfillment_status": pl.String, "stored_refunded_units": pl.Int64,
    "stored_cancelled_at": pl.Datetime("us"),
}


def _stored_versions(conn: Connection, shop: str, order_ids: pl.Series) -> pl.DataFrame:
    """One SELECT of the chunk's keys: the older-version guard and the change records need it."""
    if order_ids.len() == 0:
        return pl.DataFrame(schema=_STORED_SCHEMA)
    dialect = conn.dialect.name
    if dialect == "sqlite":
        units = "total_refunded"  # already scaled integers
    elif dialect == "postgresql":
        units = f"CAST(total_refunded * {10 ** MONEY_SCALE} AS BIGINT)"
    else:
        units = f"CAST(total_refunded * {10 ** MONEY_SCALE} AS SIGNED)"
    rows: list[tuple[Any, ...]] = []
    if dialect == "postgresql":
        # An array parameter: PostgreSQL plans a long literal IN list slowly (measured 8 s of a
        # 47 s ingest), and the statement text stays constant. It goes as one text literal
        # rendered by polars: psycopg's per-element list adaptation cost more than the lookup.
        ids_text = "{" + order_ids.cast(pl.Int64).cast(pl.String).str.join(",").item() + "}"
        rows.extend(conn.execute(sa.text(
            f"SELECT order_id, updated_at, financial_status, fulfillment_status, {units}, cancelled_at "
            "FROM order_header WHERE shop = :shop AND order_id = ANY(CAST(:ids AS BIGINT[]))"
        ), {"shop": shop, "ids": ids_text}).all())
        return pl.DataFrame(rows, schema=_STORED_SCHEMA, orient="row")
    if dialect == "sqlite":
        # One constant statement with a JSON array: Python's sqlite3 keeps the last 128
        # prepared statements, and distinct literal IN lists made that cache grow with the
        # file (measured +70 MB of RSS over 3.4M lines).
        rows.extend(conn.exec_driver_sql(
            "SELECT order_id, updated_at, financial_status, fulfillment_status, total_refunded, cancelled_at "
            "FROM order_header WHERE shop = ? AND order_id IN (SELECT value FROM json_each(?))",
            (shop, f"[{upsert.id_list(order_ids)}]"),
        ).all())
    for part in upsert._parts(order_ids.to_list() if dialect != "sqlite" else [], 20_000):
        rows.extend(upsert.run_uncached(
            conn,
            f"SELECT order_id, updated_at, financial_status, fulfillment_status, {units}, cancelled_at "
            f"FROM order_header WHERE shop = :shop AND order_id IN ({upsert.id_list(part)})",
            shop,
        ).all())
    if dialect == "sqlite":
        # Raw text() reads return SQLAlchemy's stored text format on SQLite.
        frame = pl.DataFrame(rows, schema={**_STORED_SCHEMA, "stored_updated_at": pl.String,
                                           "stored_cancelled_at": pl.String}, orient="row")
        return frame.with_columns(
            pl.col("stored_updated_at").str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us"),
            pl.col("stored_cancelled_at").str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us", strict=False),
        )
    return pl.DataFrame(rows, schema=_STORED_SCHEMA, orient="row")


def _changes(decided: pl.DataFrame) -> pl.DataFrame:
    refunded_units = pl.col("total_refunded").str.to_decimal(scale=MONEY_SCALE).to_physical().cast(pl.Int64)
    created = pl.col("stored_updated_at").is_null()
    frame = decided.filter(pl.col("applied")).with_columns(
        created.alias("created"),
        (~created & (pl.col("financial_status").ne_missing(pl.col("stored_financial_status"))
                     | pl.col("fulfillment_status").ne_missing(pl.col("stored_fulfillment_status"))))
        .alias("status_changed"),
        (~created & (refunded_units > pl.col("stored_refunded_units").fill_null(0))).alias("refunded"),
        (pl.col("cancelled_at").is_not_null() & pl.col("stored_cancelled_at").is_null()).alias("cancelled"),
    )
    return frame.filter(pl.any_horizontal(*CHANGE_KINDS)).select(
        "order_id", "order_name", *CHANGE_KINDS, "updated_at", "financial_status",
        pl.col("stored_financial_status").alias("previous_financial_status"), "fulfillment_status",
        pl.col("stored_fulfillment_status").alias("previous_fulfillment_status"), "total_refunded",
        pl.col("stored_refunded_units").alias("previous_refunded_units"), "cancelled_at", "currency_code",
    )


_CHANGES_SCHEMA: dict[str, Any] = {
    "order_id": pl.Int64, "order_name": pl.String, **{k: pl.Boolean for k in CHANGE_KINDS},
    "updated_at": pl.Datetime("us"), "financial_status": pl.String, "previous_financial_status": pl.String,
    "fulfillment_status": pl.String, "previous_fulfillment_status": pl.String, "total_refunded": pl.String,
    "previous_refunded_units": pl.Int64, "cancelled_at": pl.Datetime("us"), "currency_code": pl.String,
}


def changes_from_frame(frame: pl.DataFrame) -> list[OrderChange]:
    """Expand the compact change frame into event records (one per order and kind)."""
    out: list[OrderChange] = []
    for r in frame.iter_rows(named=True):
        at = r["updated_at"].replace(tzinfo=UTC)
        refunded = None if r["total_refunded"] is None else Decimal(r["total_refunded"])
        prev_units = r["previous_refunded_units"]
        prev_refunded = None if prev_units is None else Decimal(prev_units).scaleb(-MONEY_SCALE)
        cancelled_at = None if r["cancelled_at"] is None else r["cancelled_at"].replace(tzinfo=UTC)
        status = {"financial_status": r["financial_status"], "fulfillment_status": r["fulfillment_status"]}
        if r["created"]:
            out.append(OrderChange(r["order_id"], r["order_name"], "created", at, None,
                                   {**status, "total_refunded": refunded, "cancelled_at": cancelled_at,
                                    "currency_code": r["currency_code"]}))
        if r["status_changed"]:
            out.append(OrderChange(r["order_id"], r["order_name"], "status_changed", at,
                                   {"financial_status": r["previous_financial_status"],
                                    "fulfillment_status": r["previous_fulfillment_status"]}, status))
        if r["refunded"]:
            out.append(OrderChange(r["order_id"], r["order_name"], "refunded", at,
                                   {"total_refunded": prev_refunded, "currency_code": r["currency_code"]},
                                   {"total_refunded": refunded, "currency_code": r["currency_code"]}))
        if r["cancelled"]:
            out.append(OrderChange(r["order_id"], r["order_name"], "cancelled", at, {"cancelled_at": None},
                                   {"cancelled_at": cancelled_at}))
    return out


_PARENTS_SCHEMA = {"order_id": pl.Int64, "order_updated_at": pl.Datetime("us"), "applied": pl.Boolean,
                   "fresh": pl.Boolean}


class _Parents:
    """Every order seen so far in the file: (id, version, applied, fresh). ~18 bytes per order."""

    def __init__(self) -> None:
        self.frame = pl.DataFrame(schema=_PARENTS_SCHEMA)

    def add(self, chunk: pl.DataFrame) -> None:
        self.frame = pl.concat([self.frame, chunk.select(list(_PARENTS_SCHEMA))], rechunk=False)
        if self.frame.n_chunks() > 64:
            self.frame = self.frame.rechunk()

    def resolve(self, lines: pl.DataFrame, current: pl.DataFrame) -> pl.DataFrame:
        """Attach order_updated_at/applied to lines: this chunk's orders first, then earlier ones."""
        local = lines.join(current.select(list(_PARENTS_SCHEMA)), on="order_id", how="left")
        missing = local.filter(pl.col("applied").is_null())
        if missing.height == 0 or self.frame.height == 0:
            return local
        wanted = missing.get_column("order_id").unique()
        earlier = self.frame.filter(pl.col("order_id").is_in(wanted.implode())).unique("order_id", keep="last")
        fixed = missing.drop(["order_updated_at", "applied", "fresh"]).join(earlier, on="order_id", how="left")
        return pl.concat([local.filter(pl.col("applied").is_not_null()), fixed], how="vertical")


@dataclass
class _ChunkOutcome:
    decided: pl.DataFrame  # order_id, order_updated_at, applied
    changes: pl.DataFrame
    skipped: int


class _Clock:
    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings
        self.t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = self.timings.get(name, 0.0) + now - self.t
        self.t = now


def _decide(orders: pl.DataFrame, stored: pl.DataFrame) -> pl.DataFrame:
    """Join the stored versions: ``applied`` (not older than the stored row) and ``fresh``
    (no stored row at all, so the order and its children can only be inserted)."""
    return orders.join(stored, on="order_id", how="left").with_columns(
        (pl.col("stored_updated_at").is_null() | (pl.col("updated_at") >= pl.col("stored_updated_at")))
        .alias("applied"),
        pl.col("stored_updated_at").is_null().alias("fresh"),
        pl.col("updated_at").alias("order_updated_at"),
    )


def _write_chunk(
    conn: Connection, frames: ChunkFrames, parents: _Parents, shop: str, statement_bytes: int, path: Path,
    clock: _Clock, insert_fresh: bool = True,
) -> _ChunkOutcome:
    """One chunk's writes. Rows of *fresh* orders (no stored header when the chunk began)
    can only be new, so with ``insert_fresh`` they take the backend's plain bulk insert
    (PostgreSQL: ``COPY`` straight into the table), measured 35-45 % cheaper than the
    guarded upsert. Should one exist after all (a concurrent sync of the same shop, a
    child id repeated in the file), the insert fails on the key and the caller redoes the
    chunk with ``insert_fresh=False``: the upsert path for every row."""
    writer = upsert.writer_for(conn, statement_bytes)
    orders = frames.orders
    stored = _stored_versions(conn, shop, orders.get_column("order_id"))
    clock.lap("select_stored")
    decided = _decide(orders, stored)
    applied = decided.filter(pl.col("applied"))

    lines = parents.resolve(frames.lines, decided)
    _fail_first(lines, pl.col("applied").is_null(),
                lambda r: f"LineItem parent {r['parent_gid']} does not appear before this line "
                          "(children must follow their parent)", path)
    lines = lines.filter(pl.col("applied"))
    refunds = frames.refunds.join(applied.select("order_id", "order_updated_at", "fresh"), on="order_id",
                                  how="inner")
    changes = _changes(decided)
    clock.lap("decide")

    def write(spec: upsert.TableSpec, frame: pl.DataFrame) -> None:
        fresh = frame.get_column("fresh").sum() if insert_fresh else 0
        if fresh == frame.height:  # a first load: no split needed
            writer.insert(spec, frame)
        elif fresh == 0:
            writer.upsert(spec, frame)
        else:
            writer.insert(spec, frame.filter(pl.col("fresh")))
            writer.upsert(spec, frame.filter(~pl.col("fresh")))

    write(upsert.HEADERS, applied)
    clock.lap("upsert_order_header")
    # Only a strictly newer version can leave stale children behind: a new order has none
    # (children are written after their header), an equal version wrote the same ones.
    replaced = applied.filter(pl.col("stored_updated_at").is_not_null()
                              & (pl.col("updated_at") > pl.col("stored_updated_at")))
    replaced_ids = replaced.get_column("order_id").to_list()
    writer.delete_stale("order_line_item", shop, replaced_ids)
    writer.delete_stale("order_refund", shop, replaced_ids)
    clock.lap("delete_stale")
    write(upsert.REFUNDS, refunds)
    clock.lap("upsert_order_refund")
    write(upsert.LINES, lines)
    clock.lap("upsert_order_line_item")
    return _ChunkOutcome(
        decided=decided.select(list(_PARENTS_SCHEMA)),
        changes=changes,
        skipped=decided.height - applied.height,
    )


def _retryable(exc: BaseException) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return "deadlock" in text or "could not serialize" in text or "database is locked" in text


def _rebuild_parents(engine: Engine, path: Path, shop: str, start_line: int, chunk_rows: int,
                     parents: _Parents) -> tuple[dict[str, int], datetime | None, int]:
    """Resume: re-read the committed prefix (no writes) to know every earlier parent again."""
    rows = {"order_header": 0, "order_line_item": 0, "order_refund": 0}
    max_updated: datetime | None = None
    seen = 0
    for first, chunk, n_lines in _iter_chunks(path, chunk_rows):
        if first >= start_line:
            break
        if first + n_lines > start_line:
            chunk, _ = _cut_lines(chunk, start_line - first)
            n_lines = start_line - first
        frames = _prepare(_parse(chunk, n_lines, first, path), shop, path, datetime.now(UTC).replace(tzinfo=None))
        seen += frames.n_orders + frames.n_lines  # every non-blank line is one or the other
        with engine.connect() as conn:
            stored = _stored_versions(conn, shop, frames.orders.get_column("order_id"))
        parents.add(_decide(frames.orders, stored))
        rows["order_header"] += frames.n_orders
        rows["order_line_item"] += frames.n_lines
        rows["order_refund"] += frames.n_refunds
        chunk_max = frames.orders.get_column("updated_at").max()
        if chunk_max is not None and (max_updated is None or chunk_max > max_updated):  # type: ignore[operator]
            max_updated = chunk_max  # type: ignore[assignment]
    return rows, max_updated, seen


class _WalCheckpointer:
    """SQLite in WAL mode: checkpoints from a thread of its own while the ingest writes.

    By default the committing connection checkpoints itself once the WAL passes 1,000
    pages, which on a bulk load means after nearly every chunk: copying the pages into
    the database file and two fsyncs sit on the writer's path (measured 2.9 of 13.9 s for
    the 846 MB file). Passive checkpoints from another connection do the same work while
    the writer goes on (WAL allows one checkpointer beside one writer): 112k against
    107k rows/s, four alternating runs each, commit phase 0.7 s instead of 2.9 s.

    The WAL restarts from its beginning only when a write transaction starts reading
    with every frame already checkpointed, which a busy writer rarely meets by chance:
    so once ``wal_frames`` passes ``_WAL_RESTART_FRAMES`` the writer catches up itself
    (a small checkpoint: the thread did the rest) before its next chunk.
    """

    def __init__(self, engine: Engine, interval: float = 0.25) -> None:
        self.engine, self.interval = engine, interval
        self.wal_frames = 0  # frames in the WAL at the last checkpoint
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ingest-wal-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            while not self._stop.wait(self.interval):
                # (busy, frames in the WAL, frames checkpointed); PASSIVE never waits for the writer.
                self.wal_frames = int(cur.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
            cur.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except Exception:  # noqa: BLE001 - checkpoints are an optimisation; SQLite checkpoints later anyway
            pass
        finally:
            raw.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _wal_mode(engine: Engine) -> bool:
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return False
    with engine.connect() as conn:
        return str(conn.exec_driver_sql("PRAGMA journal_mode").scalar()).lower() == "wal"


# 64 MB of 4 KB pages: the WAL file's size while a bulk load runs.
_WAL_RESTART_FRAMES = 16_384


@contextmanager
def _chunk_transaction(engine: Engine, checkpointer: _WalCheckpointer | None) -> Iterator[Connection]:
    """``engine.begin()``; with a checkpointer, the connection's own automatic checkpoint
    is off for the commit and restored afterwards (the setting belongs to the pooled
    connection, which other code reuses)."""
    with engine.connect() as conn:
        if checkpointer is None:
            with conn.begin():
                yield conn
            return
        # On a DBAPI cursor: a PRAGMA is no transaction, and SQLAlchemy's autobegin would
        # otherwise refuse the begin() below.
        cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        if checkpointer.wal_frames > _WAL_RESTART_FRAMES:
            cur.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            checkpointer.wal_frames = 0
        previous = int(cur.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
        cur.execute("PRAGMA wal_autocheckpoint=0")
        try:
            with conn.begin():
                yield conn
        finally:
            try:
                cur.execute(f"PRAGMA wal_autocheckpoint={previous}")
                cur.close()
            except Exception:  # noqa: BLE001 - a dead connection is discarded by the pool
                pass


_DONE = object()


class _Prefetch:
    """Reads, parses and maps the next chunk in a thread while the database writes the current
    one: pyarrow and polars release the GIL, and the drivers wait on sockets, so the two
    overlap. At most two chunks are alive (the one being written, the next one parsed),
    which bounds the memory; errors surface in line order."""

    def __init__(self, path: Path, chunk_rows: int, start_line: int, shop: str) -> None:
        self.path, self.chunk_rows, self.start_line, self.shop = path, chunk_rows, start_line, shop
        self.timings: dict[str, float] = {}
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._slots = threading.Semaphore(2)  # released by the consumer when a chunk is done
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ingest-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        clock = _Clock(self.timings)
        try:
            for first, chunk, n_lines in _iter_chunks(self.path, self.chunk_rows):
                if first + n_lines <= self.start_line:
                    continue
                if first < self.start_line:  # a resume point inside this chunk (chunk_rows changed)
                    _, chunk = _cut_lines(chunk, self.start_line - first)
                    first, n_lines = self.start_line, first + n_lines - self.start_line
                clock.lap("read")
                while not self._slots.acquire(timeout=0.1):
                    if self._stop.is_set():
                        return
                clock.lap("wait")  # the writer is behind: parsing is not the bottleneck
                parsed = _parse(chunk, n_lines, first, self.path)
                clock.lap("parse")
                frames = _prepare(parsed, self.shop, self.path, datetime.now(UTC).replace(tzinfo=None))
                del parsed
                clock.lap("prepare")
                del chunk
                if not self._put((first, n_lines, frames)):
                    return
                clock.lap("wait")
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised in order
            self._put(exc)
            return
        self._put(_DONE)

    def done(self) -> None:
        """The consumer finished a chunk: the producer may parse one more."""
        self._slots.release()

    def __iter__(self) -> Iterator[tuple[int, int, ChunkFrames]]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class _ChangeSink:
    """Change records of a run, appended to a temporary Arrow IPC file and memory-mapped back.

    A first load makes one record per order, and a polars frame filtered from a chunk
    keeps that chunk's whole string buffers alive (string views), so holding the records
    in memory would grow RSS with the file. Written in the oldest compat level (plain
    strings) only the bytes actually referenced go to disk.
    """

    def __init__(self) -> None:
        self._path: str | None = None
        self._writer: pa.ipc.RecordBatchFileWriter | None = None

    def add(self, table: pa.Table | None) -> None:
        if table is None:
            return
        if self._writer is None:
            fd, self._path = tempfile.mkstemp(prefix="shopify_sync_changes_", suffix=".arrow")
            os.close(fd)
            self._writer = pa.ipc.new_file(self._path, table.schema)
        self._writer.write_table(table)

    def table(self) -> pa.Table:
        if self._writer is None or self._path is None:
            return pl.DataFrame(schema=_CHANGES_SCHEMA).to_arrow(compat_level=pl.CompatLevel.oldest())
        self._writer.close()
        try:
            return pa.ipc.open_file(pa.memory_map(self._path)).read_all()  # zero-copy, file-backed
        finally:
            # The mapping keeps the data readable after the unlink (Linux keeps the inode).
            os.unlink(self._path)

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._path is not None and os.path.exists(self._path):
            os.unlink(self._path)


_CHANGES_IPC = pa.ipc.IpcWriteOptions(compression="zstd")


def _changes_arrow(changes: pl.DataFrame) -> pa.Table | None:
    """A chunk's change records as Arrow (None when there are none), for the run's IPC file
    and the job's stored copy alike; plain strings (oldest compat level), so only the bytes
    referenced are written, not whole shared string buffers."""
    if changes.height == 0:
        return None
    return changes.cast(_CHANGES_SCHEMA).to_arrow(compat_level=pl.CompatLevel.oldest())


def _store_changes(conn: Connection, job_id: str, start_line: int, end_line: int, table: pa.Table | None) -> None:
    """The chunk's change records, in the chunk's transaction: committed exactly with its rows."""
    if table is None:
        return
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_CHANGES_IPC) as writer:
        writer.write_table(table)
    conn.execute(sa.insert(sync_job_changes).values(job_id=job_id, start_line=start_line, end_line=end_line,
                                                    payload=sink.getvalue().to_pybytes()))


def iter_job_changes(engine: Engine, job_id: str) -> Iterator[OrderChange]:
    """Every change record a job's committed chunks produced, in file order, whichever run
    committed them (an attempt that crashed included); one chunk in memory at a time."""
    with engine.connect() as conn:
        starts = conn.execute(sa.select(sync_job_changes.c.start_line)
                              .where(sync_job_changes.c.job_id == job_id)
                              .order_by(sync_job_changes.c.start_line)).scalars().all()
    for start in starts:
        with engine.connect() as conn:
            payload = conn.execute(sa.select(sync_job_changes.c.payload).where(
                sync_job_changes.c.job_id == job_id, sync_job_changes.c.start_line == start)).scalar_one()
        frame = pl.from_arrow(pa.ipc.open_stream(payload).read_all())
        assert isinstance(frame, pl.DataFrame)
        yield from changes_from_frame(frame)


def delete_job_changes(engine: Engine, job_id: str) -> None:
    """Drop a job's stored change records once its events are written."""
    with engine.begin() as conn:
        conn.execute(sa.delete(sync_job_changes).where(sync_job_changes.c.job_id == job_id))


def restart_job_ingest(conn: Connection, job_id: str) -> None:
    """The job's archive was replaced by a newly fetched file: its committed line count
    belongs to the old file, and resuming the new one there would skip lines that were never
    written. The next ingest starts at line 0 (re-writing what the old file committed is
    idempotent). The change records of the chunks already committed are kept, moved below
    every start line an ingest uses (whose restart deletes its own from the resume point
    on), and still in the order they were made: their events happened in the warehouse, and
    the new file, holding the same versions, would not report them again."""
    bounds = conn.execute(sa.select(sa.func.min(sync_job_changes.c.start_line),
                                    sa.func.max(sync_job_changes.c.end_line))
                          .where(sync_job_changes.c.job_id == job_id)).one()
    if bounds[0] is not None:
        low, high = min(int(bounds[0]), 0), int(bounds[1])
        # One shift past every existing key: no row ever lands on one not yet moved, which
        # a per-row unique check (PostgreSQL, SQLite) could refuse, whatever the row order.
        shift = high - low + 1
        conn.execute(sync_job_changes.update().where(sync_job_changes.c.job_id == job_id).values(
            start_line=sync_job_changes.c.start_line - shift, end_line=sync_job_changes.c.end_line - shift))
    reset_ingest(conn, job_id)


def ingest_jsonl(
    engine: Engine,
    path: str | Path,
    *,
    shop: str,
    job_id: str | None,
    chunk_rows: int,
    start_line: int | None = None,
    on_chunk: Callable[[ChunkProgress], None] | None = None,
    statement_bytes: int | None = None,
) -> IngestResult:
    """Upsert a bulk JSONL file into the order tables, ``chunk_rows`` lines per transaction.

    ``start_line=None`` resumes after ``sync_job.lines_committed`` of ``job_id`` (0
    without a job). Each chunk's rows and the job's ``lines_committed`` /
    ``max_updated_at`` / ``rows_json`` commit together. Raises ``IngestError`` for
    malformed input (earlier chunks stay committed and consistent).
    """
    began = time.perf_counter()
    path = Path(path)
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    if not path.is_file():
        raise IngestError(f"JSONL file not found: {path}")
    ensure_schema(engine)
    if job_id is not None:
        job = get_job(engine, job_id)
        if job is None:
            raise IngestError(f"no sync_job with job_id {job_id!r}")
        if job.shop != shop:
            raise IngestError(f"sync_job {job_id} belongs to shop {job.shop}, not {shop}")
        if start_line is None:
            start_line = int(job.lines_committed or 0)
    start_line = int(start_line or 0)
    if start_line < 0:
        raise ValueError(f"start_line must be >= 0, got {start_line}")

    if job_id is not None:
        # Change records past the resume point belong to chunks about to be written again.
        with engine.begin() as conn:
            conn.execute(sa.delete(sync_job_changes).where(sync_job_changes.c.job_id == job_id,
                                                          sync_job_changes.c.start_line >= start_line))
    parents = _Parents()
    rows, max_updated, objects = {"order_header": 0, "order_line_item": 0, "order_refund": 0}, None, 0
    if start_line:
        rows, max_updated, objects = _rebuild_parents(engine, path, shop, start_line, chunk_rows, parents)
    if statement_bytes is None:
        with engine.connect() as conn:
            statement_bytes = upsert.default_statement_bytes(conn)

    sink = _ChangeSink()
    timings: dict[str, float] = {}
    clock = _Clock(timings)
    chunks = skipped = size_retries = fresh_conflicts = 0
    lines_committed = start_line
    prefetch = _Prefetch(path, chunk_rows, start_line, shop)
    checkpointer = _WalCheckpointer(engine) if _wal_mode(engine) else None
    try:
        for first, n_lines, frames in prefetch:
            t0 = time.perf_counter()
            clock.lap("wait_for_parse")
            chunk_rows_seen = {"order_header": frames.n_orders, "order_line_item": frames.n_lines,
                               "order_refund": frames.n_refunds}
            chunk_max = frames.orders.get_column("updated_at").max()
            new_max = max_updated
            if chunk_max is not None and (new_max is None or chunk_max > new_max):  # type: ignore[operator]
                new_max = chunk_max  # type: ignore[assignment]
            total_rows = {k: rows[k] + chunk_rows_seen[k] for k in rows}
            end_line = first + n_lines

            batch_bytes = statement_bytes
            attempts = 0
            insert_fresh = True
            while True:
                attempts += 1
                try:
                    with _chunk_transaction(engine, checkpointer) as conn:
                        outcome = _write_chunk(conn, frames, parents, shop, batch_bytes, path, clock, insert_fresh)
                        changes_arrow = _changes_arrow(outcome.changes)
                        if job_id is not None:
                            _store_changes(conn, job_id, first, end_line, changes_arrow)
                            record_chunk(conn, job_id, lines_committed=end_line, max_updated_at=new_max,
                                         rows=total_rows)
                    clock.lap("commit")
                    break
                except IngestError:
                    raise
                except upsert.FreshRowExists:
                    if not insert_fresh:
                        raise
                    insert_fresh = False  # a "fresh" row exists after all: upsert every row
                    fresh_conflicts += 1
                    continue
                except sa.exc.DBAPIError as exc:
                    shrinkable = batch_bytes > 16 << 10 and size_retries < 8
                    if shrinkable and (upsert._is_size_error(exc) or upsert.is_disconnect(exc)):
                        batch_bytes //= 4  # rejected for size: same chunk, smaller statements
                        size_retries += 1
                        continue
                    if _retryable(exc) and attempts < 4:
                        time.sleep(0.2 * attempts)
                        continue
                    raise
            parents.add(outcome.decided)
            rows, max_updated = total_rows, new_max
            objects += frames.n_orders + frames.n_lines
            lines_committed = end_line
            skipped += outcome.skipped
            chunks += 1
            sink.add(changes_arrow)
            if on_chunk is not None:
                on_chunk(ChunkProgress(first, end_line, chunk_rows_seen, outcome.changes,
                                       time.perf_counter() - t0))
            clock.lap("on_chunk")
            del frames, outcome, changes_arrow
            _malloc_trim()
            prefetch.done()
    except BaseException:
        sink.discard()
        raise
    finally:
        prefetch.close()
        if checkpointer is not None:
            checkpointer.close()
    for name, seconds in prefetch.timings.items():
        timings[f"prefetch_{name}"] = seconds

    changes = sink.table()
    return IngestResult(
        objects=objects, rows=rows,
        max_updated_at=max_updated.replace(tzinfo=UTC) if max_updated is not None else None,
        changes_table=changes, start_line=start_line, lines_committed=lines_committed, chunks=chunks,
        orders_skipped_older=skipped, size_retries=size_retries, fresh_conflicts=fresh_conflicts,
        seconds=time.perf_counter() - began,
        timings={k: round(v, 3) for k, v in timings.items()},
    )


__all__ = ["ChunkProgress", "IngestError", "IngestResult", "OrderChange", "delete_job_changes", "ingest_jsonl",
           "iter_job_changes", "JSONL_SCHEMA", "restart_job_ingest"]
