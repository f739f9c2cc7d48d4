"""Which orders of a chunk change the warehouse, and the change records they make.

An order is *applied* when its ``updatedAt`` is at least the stored one (one SELECT of
the chunk's keys, which also yields the change records). Lines and refunds of an order
that is not applied are skipped, so an older file (a replay, an overlapping backfill)
changes nothing. Children are resolved by ``__parentId`` only: Shopify's ungrouped
output puts a child after its parent but anywhere after it, possibly in a later chunk,
so ``Parents`` keeps a compact frame of every order seen so far.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl
from sqlalchemy.engine import Connection

from shopify_sync.vocab import ChangeKind
from shopify_sync.warehouse.ingest import upsert
from shopify_sync.warehouse.ingest.mapping import fail_first
from shopify_sync.warehouse.ingest.model import ChunkFrames, Clock
from shopify_sync.warehouse.types import MONEY_SCALE

CHANGE_KINDS = tuple(kind.value for kind in ChangeKind)

_STORED_SCHEMA = pl.Schema({
    "order_id": pl.Int64(), "stored_updated_at": pl.Datetime("us"), "stored_financial_status": pl.String(),
    "stored_fulfillment_status": pl.String(), "stored_refunded_units": pl.Int64(),
    "stored_cancelled_at": pl.Datetime("us"), "stored_processed_at": pl.Datetime("us"), "stored_test": pl.Boolean(),
})
# One row per applied order that changed, a flag per kind: compact, expanded by the reader.
CHANGES_SCHEMA = pl.Schema({
    "order_id": pl.Int64(), "order_name": pl.String(), **{k: pl.Boolean() for k in CHANGE_KINDS},
    "updated_at": pl.Datetime("us"), "financial_status": pl.String(), "previous_financial_status": pl.String(),
    "fulfillment_status": pl.String(), "previous_fulfillment_status": pl.String(),
    "total_refunded": pl.String(), "previous_refunded_units": pl.Int64(), "cancelled_at": pl.Datetime("us"),
    "currency_code": pl.String(),
})
_PARENTS_SCHEMA = pl.Schema({
    "order_id": pl.Int64(), "order_updated_at": pl.Datetime("us"), "applied": pl.Boolean(), "fresh": pl.Boolean(),
})
_STORED_COLUMNS = "order_id, updated_at, financial_status, fulfillment_status"


def _refunded_units(dialect: str) -> str:
    """``total_refunded`` as an integer count of 10^-MONEY_SCALE units."""
    if dialect == "sqlite":
        return "total_refunded"  # already scaled integers
    if dialect == "postgresql":
        return f"CAST(total_refunded * {10 ** MONEY_SCALE} AS BIGINT)"
    return f"CAST(total_refunded * {10 ** MONEY_SCALE} AS SIGNED)"


def stored_versions(conn: Connection, shop: str, order_ids: pl.Series) -> pl.DataFrame:
    """One SELECT of the chunk's keys: the older-version guard and the change records need it."""
    if order_ids.len() == 0:
        return pl.DataFrame(schema=_STORED_SCHEMA)
    dialect = conn.dialect.name
    select = (f"SELECT {_STORED_COLUMNS}, {_refunded_units(dialect)}, cancelled_at, processed_at, "
              "CASE WHEN test THEN 1 ELSE 0 END FROM order_header")
    rows = upsert.rows_for_orders(conn, select, shop, order_ids)
    if dialect == "sqlite":
        # Raw reads return SQLAlchemy's stored text format on SQLite.
        frame = pl.DataFrame(rows, schema={**_STORED_SCHEMA, "stored_updated_at": pl.String(),
                                           "stored_cancelled_at": pl.String(), "stored_processed_at": pl.String(),
                                           "stored_test": pl.Int64()}, orient="row")
        return frame.with_columns(
            pl.col("stored_updated_at").str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us"),
            pl.col("stored_cancelled_at").str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us", strict=False),
            pl.col("stored_processed_at").str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us", strict=False),
            pl.col("stored_test").cast(pl.Boolean),
        )
    frame = pl.DataFrame(rows, schema={**_STORED_SCHEMA, "stored_test": pl.Int64()}, orient="row")
    return frame.with_columns(pl.col("stored_test").cast(pl.Boolean))


def decide(orders: pl.DataFrame, stored: pl.DataFrame) -> pl.DataFrame:
    """Join the stored versions: ``applied`` (not older than the stored row) and ``fresh``
    (no stored row at all, so the order and its children can only be inserted)."""
    return orders.join(stored, on="order_id", how="left").with_columns(
        (pl.col("stored_updated_at").is_null() | (pl.col("updated_at") >= pl.col("stored_updated_at")))
        .alias("applied"),
        pl.col("stored_updated_at").is_null().alias("fresh"),
        pl.col("updated_at").alias("order_updated_at"),
    )


def dirty_days(decided: pl.DataFrame) -> list[date]:
    """The UTC days whose counted lines this chunk changes (SPEC §5 "Restatement").

    An order changes them when it is new or replaces an older stored version (an equal
    version rewrites the same rows; an older one is skipped): its lines are rewritten,
    added or deleted, and its refunds, cancellation, test flag and ``processed_at`` may
    have moved. Both its stored day and its new day are marked, each only where the
    order counts there (a test order that stays a test order changes no figure).
    """
    changed = decided.filter(pl.col("applied") & (pl.col("stored_updated_at").is_null()
                                                   | (pl.col("updated_at") > pl.col("stored_updated_at"))))
    new_counted = ~pl.col("test").fill_null(False) & pl.col("cancelled_at").is_null()
    old_counted = (pl.col("stored_updated_at").is_not_null() & ~pl.col("stored_test").fill_null(False)
                   & pl.col("stored_cancelled_at").is_null())
    days = pl.concat([
        changed.filter(new_counted).select(pl.col("processed_at").dt.date().alias("day")),
        changed.filter(old_counted).select(pl.col("stored_processed_at").dt.date().alias("day")),
    ])
    return sorted(d for d in days.get_column("day").unique().to_list() if d is not None)


def parent_versions(decided: pl.DataFrame) -> pl.DataFrame:
    """What ``Parents`` keeps of a decided chunk."""
    return decided.select(list(_PARENTS_SCHEMA))


def changes(decided: pl.DataFrame) -> pl.DataFrame:
    """The change records of the applied orders (``CHANGES_SCHEMA``), one row per order."""
    refunded_units = pl.col("total_refunded").str.to_decimal(scale=MONEY_SCALE).to_physical().cast(pl.Int64)
    created = pl.col("stored_updated_at").is_null()
    frame = decided.filter(pl.col("applied")).with_columns(
        created.alias(ChangeKind.CREATED.value),
        (~created & (pl.col("financial_status").ne_missing(pl.col("stored_financial_status"))
                     | pl.col("fulfillment_status").ne_missing(pl.col("stored_fulfillment_status"))))
        .alias(ChangeKind.STATUS_CHANGED.value),
        (~created & (refunded_units > pl.col("stored_refunded_units").fill_null(0))).alias(ChangeKind.REFUNDED.value),
        (pl.col("cancelled_at").is_not_null() & pl.col("stored_cancelled_at").is_null())
        .alias(ChangeKind.CANCELLED.value),
    )
    return frame.filter(pl.any_horizontal(*CHANGE_KINDS)).select(
        "order_id", "order_name", *CHANGE_KINDS, "updated_at", "financial_status",
        pl.col("stored_financial_status").alias("previous_financial_status"), "fulfillment_status",
        pl.col("stored_fulfillment_status").alias("previous_fulfillment_status"), "total_refunded",
        pl.col("stored_refunded_units").alias("previous_refunded_units"), "cancelled_at", "currency_code",
    )


class Parents:
    """Every order seen so far in the file: (id, version, applied, fresh), about 18 bytes each."""

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
class Decision:
    """One chunk decided against the stored rows."""

    decided: pl.DataFrame   # the chunk's orders with the stored version, applied, fresh
    applied: pl.DataFrame   # orders to write
    lines: pl.DataFrame     # lines of applied orders, with order_updated_at and fresh
    refunds: pl.DataFrame   # refunds of applied orders, with order_updated_at and fresh
    changes: pl.DataFrame   # CHANGES_SCHEMA rows
    dirty: list[date]       # UTC days whose counted lines change (measurement_dirty)

    @property
    def skipped(self) -> int:
        return self.decided.height - self.applied.height

    @property
    def replaced_ids(self) -> list[int]:
        """Orders stored with a strictly older version. Only these can leave stale children
        behind: a new order has none (children are written after their header), an equal
        version wrote the same ones."""
        replaced = self.applied.filter(pl.col("stored_updated_at").is_not_null()
                                       & (pl.col("updated_at") > pl.col("stored_updated_at")))
        return replaced.get_column("order_id").to_list()

    def pieces(self, stored_per_piece: int) -> list[Decision]:
        """The decision cut by order id into ranges holding at most ``stored_per_piece`` of
        the orders it replaces (``replaced_ids``), each range with every row of its orders.

        Written piece by piece, the passes over a range's stored rows (line versions, lines
        before, the writes, lines after) find its pages still cached. All at once, the pages
        of a day's edits scattered over a large warehouse (5,000 orders: about 11,000 pages)
        outgrow a small cache (MariaDB's default pool holds 8,192), and every pass reads
        them from disk again (docs/benchmarks.md, session 14). A first load, a replay or an
        overlapping backfill replaces nothing: one piece. ``changes`` and ``dirty`` stay
        with the whole decision.
        """
        stored = pl.Series("order_id", self.replaced_ids, pl.Int64()).sort()
        if stored.len() <= stored_per_piece:
            return [self]
        bounds = [None, *stored.gather(range(stored_per_piece, stored.len(), stored_per_piece)).to_list(), None]
        out = []
        for low, high in itertools.pairwise(bounds):
            within = pl.lit(True)
            if low is not None:
                within &= pl.col("order_id") >= low
            if high is not None:
                within &= pl.col("order_id") < high
            out.append(Decision(decided=self.decided.filter(within), applied=self.applied.filter(within),
                                lines=self.lines.filter(within), refunds=self.refunds.filter(within),
                                changes=self.changes.clear(), dirty=[]))
        return out


def decide_chunk(conn: Connection, frames: ChunkFrames, parents: Parents, shop: str, path: Path,
                 clock: Clock) -> Decision:
    """Read the stored versions of the chunk's orders and decide what to write."""
    stored = stored_versions(conn, shop, frames.orders.get_column("order_id"))
    clock.lap("select_stored")
    decided = decide(frames.orders, stored)
    applied = decided.filter(pl.col("applied"))
    lines = parents.resolve(frames.lines, decided)
    fail_first(lines, pl.col("applied").is_null(),
               lambda r: f"LineItem parent {r['parent_gid']} does not appear before this line "
                         "(children must follow their parent)", path)
    refunds = frames.refunds.join(applied.select("order_id", "order_updated_at", "fresh"), on="order_id",
                                  how="inner")
    decision = Decision(decided=decided, applied=applied, lines=lines.filter(pl.col("applied")), refunds=refunds,
                        changes=changes(decided), dirty=dirty_days(decided))
    clock.lap("decide")
    return decision
