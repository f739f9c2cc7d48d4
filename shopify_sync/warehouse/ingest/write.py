"""The chunk transaction: decide, write, store the changes and the job's progress, commit.

Each chunk commits in one transaction together with its change records and
``sync_job.lines_committed``, so a crash loses at most the chunk in flight; a resume
re-reads the committed prefix only to rebuild the parent frame, and ends with the same
tables. When an order is applied, its children read with an older version are deleted:
lines Shopify no longer returns disappear, while the current version's lines (in this
chunk or a later one) are upserted with the new version.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shopify_sync.warehouse import rollup
from shopify_sync.warehouse.dirty import mark_days
from shopify_sync.warehouse.ingest import upsert
from shopify_sync.warehouse.ingest.change_store import store_changes
from shopify_sync.warehouse.ingest.decide import Decision, Parents, decide_chunk, parent_versions
from shopify_sync.warehouse.ingest.model import ChunkFrames, Clock
from shopify_sync.warehouse.jobs import record_chunk
from shopify_sync.warehouse.rollup import lines as rollup_lines
from shopify_sync.warehouse.sizing import cache_footprint

# 64 MB of 4 KB pages: the WAL file's size while a bulk load runs.
_WAL_RESTART_FRAMES = 16_384
# Statements are not split below this size when the database refuses one for its size.
_MIN_STATEMENT_BYTES = 16 << 10
_MAX_SIZE_RETRIES = 8
_MAX_ATTEMPTS = 4
# Stored orders a chunk writes at a time (``Decision.pieces``) where the pages it reads outgrow
# the database's cache: about 1,100 orders' pages fitted MariaDB's default 128 MB pool in
# session 13's chunk-size experiment; 500 and 2,000 did no better (docs/benchmarks.md).
STORED_ORDERS_PER_PIECE = 1000


@dataclass(frozen=True)
class Committed:
    """What the loop keeps of a committed chunk."""

    parents: pl.DataFrame  # the chunk's orders as ``Parents`` keeps them
    skipped: int           # orders older than their stored row


@dataclass(frozen=True)
class JobMark:
    """What a chunk's transaction records on its job besides the rows."""

    job_id: str
    start_line: int
    end_line: int
    max_updated_at: datetime | None
    rows: dict[str, int]


class WalCheckpointer:
    """SQLite in WAL mode: checkpoints from a thread of its own while the ingest writes.

    By default the committing connection checkpoints itself once the WAL passes 1,000
    pages, which on a bulk load means after nearly every chunk: copying the pages into
    the database file and two fsyncs sit on the writer's path. Passive checkpoints from
    another connection do the same work while the writer goes on (WAL allows one
    checkpointer beside one writer); docs/benchmarks.md has the figures.

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
                cur.execute("PRAGMA wal_checkpoint(PASSIVE)")
                row = cur.fetchone()
                self.wal_frames = int(row[1]) if row is not None else self.wal_frames
            cur.execute("PRAGMA wal_checkpoint(PASSIVE)")
            cur.fetchall()
        except Exception:  # noqa: BLE001 - checkpoints are an optimisation; SQLite checkpoints later anyway
            pass
        finally:
            raw.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def wal_mode(engine: Engine) -> bool:
    """A SQLite file in WAL mode, where the checkpointer thread helps."""
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return False
    with engine.connect() as conn:
        return str(conn.exec_driver_sql("PRAGMA journal_mode").scalar()).lower() == "wal"


@contextmanager
def chunk_transaction(engine: Engine, checkpointer: WalCheckpointer | None) -> Iterator[Connection]:
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
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        cur = dbapi.cursor()
        if checkpointer.wal_frames > _WAL_RESTART_FRAMES:
            cur.execute("PRAGMA wal_checkpoint(PASSIVE)")
            cur.fetchall()
            checkpointer.wal_frames = 0
        cur.execute("PRAGMA wal_autocheckpoint")
        row = cur.fetchone()
        assert row is not None
        previous = int(row[0])
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


def stored_per_piece(engine: Engine) -> int | None:
    """``STORED_ORDERS_PER_PIECE`` where InnoDB's buffer pool is smaller than the order tables,
    else None (a chunk's writes at once). Only there do the passes over a day's edits read
    their pages from disk again; where the pages stay cached (a pool that holds the tables;
    PostgreSQL and SQLite, read through the operating system's cache) the pieces' extra
    statements cost 5-20 % of a re-ingest of newer versions (docs/benchmarks.md, session 14)."""
    footprint = cache_footprint(engine)
    return STORED_ORDERS_PER_PIECE if footprint is not None and footprint.shortfall() is not None else None


def _retryable(exc: BaseException) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return "deadlock" in text or "could not serialize" in text or "database is locked" in text


def _write_rows(conn: Connection, decision: Decision, shop: str, statement_bytes: int, insert_fresh: bool,
                resent: pl.Series, clock: Clock) -> None:
    """One chunk's writes. Rows of *fresh* orders (no stored header when the chunk began)
    can only be new, so with ``insert_fresh`` they take the backend's plain bulk insert
    (PostgreSQL: ``COPY`` straight into the table), cheaper than the guarded upsert. Should
    one exist after all (a concurrent sync of the same shop, a child id repeated in the
    file), the insert raises ``FreshRowExists`` and the caller redoes the chunk with
    ``insert_fresh=False``: the upsert path for every row. ``resent``: the stored lines the
    chunk sends again under the same order, which the line upsert updates in place
    (``BulkWriter.delete_stale_lines``)."""
    writer = upsert.writer_for(conn, statement_bytes)

    def write(spec: upsert.TableSpec, frame: pl.DataFrame) -> None:
        fresh = frame.get_column("fresh").sum() if insert_fresh else 0
        if fresh == frame.height:  # a first load: no split needed
            writer.insert(spec, frame)
        elif fresh == 0:
            writer.upsert(spec, frame)
        else:
            writer.insert(spec, frame.filter(pl.col("fresh")))
            writer.upsert(spec, frame.filter(~pl.col("fresh")))

    write(upsert.HEADERS, decision.applied)
    clock.lap("upsert_order_header")
    replaced_ids = decision.replaced_ids
    writer.delete_stale_lines(shop, replaced_ids, resent)
    writer.delete_stale("order_refund", shop, replaced_ids)
    clock.lap("delete_stale")
    write(upsert.REFUNDS, decision.refunds)
    clock.lap("upsert_order_refund")
    write(upsert.LINES, decision.lines)
    clock.lap("upsert_order_line_item")


def _touched_orders(conn: Connection, shop: str, decision: Decision, fresh_ids: pl.Series
                    ) -> tuple[pl.Series, pl.Series]:
    """For ``measurement_day_sum``: the ids of the stored orders whose counted lines the
    decision's writes may change, to read before and after them. Second, from the same read,
    the decision's lines stored under the same order (line ids), for the stale-line delete.

    ``fresh_ids``: the chunk's new orders, whose rows are inserted: had any of their lines
    existed, the insert would have failed (``FreshRowExists``); without that guarantee (the
    chunk redone with upserts) none are fresh and their lines count as upserted. A stored
    order changes with a newer version of its header, or with a line upserted that is not
    stored yet, is stored under another order (whose order is read too) or with another
    order version. An equal version rewriting the same rows changes nothing, as for
    ``measurement_dirty``: a replay or an overlapping backfill reads no lines here
    (docs/benchmarks.md, session 8)."""
    applied, lines = decision.applied, decision.lines
    newer = applied.filter(pl.col("stored_updated_at").is_not_null()
                           & (pl.col("updated_at") > pl.col("stored_updated_at"))).get_column("order_id")
    # Every line but those of this chunk's new orders (a new order's lines in a later chunk
    # are not stored yet: that makes its order read).
    upserted = lines.filter(~pl.col("order_id").is_in(fresh_ids.implode())).select(
        "line_item_id", "order_id", "order_updated_at")
    stored = upserted.join(rollup_lines.stored_line_versions(conn, shop, upserted.get_column("line_item_id")),
                           on="line_item_id", how="left")
    moved = stored.filter(pl.col("stored_order_id").ne_missing(pl.col("order_id"))
                          | pl.col("stored_version").ne_missing(pl.col("order_updated_at")))
    touched = pl.concat([newer, moved.get_column("order_id"),
                         moved.get_column("stored_order_id").drop_nulls()]).unique()
    resent = stored.filter(pl.col("stored_order_id") == pl.col("order_id")).get_column("line_item_id")
    return touched.filter(~touched.is_in(fresh_ids.implode())).sort(), resent


class _StoredLines:
    """The counted lines of the stored orders a chunk's pieces touch, before and after.

    Only the pieces that touch an order change its lines (``_touched_orders``), so its
    lines before are those read by the first piece touching it, and after, those read by
    the last."""

    def __init__(self) -> None:
        self.seen = pl.Series("order_id", [], pl.Int64())
        self.before: list[pl.DataFrame] = []
        self.after: list[pl.DataFrame] = []
        self.touched: list[pl.DataFrame] = []

    def read_before(self, conn: Connection, shop: str, order_ids: pl.Series) -> None:
        self.before.append(rollup_lines.lines_of_orders(conn, shop, order_ids.filter(
            ~order_ids.is_in(self.seen.implode()))))
        self.seen = pl.concat([self.seen, order_ids])

    def read_after(self, conn: Connection, shop: str, order_ids: pl.Series) -> None:
        piece = len(self.after)
        self.after.append(rollup_lines.lines_of_orders(conn, shop, order_ids).with_columns(piece=pl.lit(piece)))
        self.touched.append(pl.DataFrame({"order_id": order_ids, "piece": piece}, schema_overrides={
            "order_id": pl.Int64(), "piece": pl.Int32()}))

    def lines_before(self) -> pl.DataFrame:
        return pl.concat(self.before)

    def lines_after(self) -> pl.DataFrame:
        if len(self.after) == 1:
            return self.after[0].drop("piece")
        last = pl.concat(self.touched).group_by("order_id").agg(pl.col("piece").max())
        return pl.concat(self.after).join(last, on=["order_id", "piece"], how="semi").drop("piece")


class ChunkWriter:
    """Commits chunks, one transaction each, retrying what a retry can fix: a statement
    refused for its size (sent again in smaller statements), a "fresh" row that existed
    after all (redone as upserts), a deadlock or a busy SQLite file (after a pause)."""

    def __init__(self, engine: Engine, shop: str, path: Path, statement_bytes: int, clock: Clock) -> None:
        self.engine, self.shop, self.path, self.statement_bytes, self.clock = engine, shop, path, statement_bytes, clock
        self.size_retries = 0
        self.fresh_conflicts = 0
        self.stored_per_piece = stored_per_piece(engine)
        self._checkpointer = WalCheckpointer(engine) if wal_mode(engine) else None

    def _write_pieces(self, conn: Connection, decision: Decision, fresh_ids: pl.Series, statement_bytes: int,
                      insert_fresh: bool) -> _StoredLines:
        """The chunk's writes, piece by piece (``Decision.pieces``), with the stored lines they change."""
        stored = _StoredLines()
        for piece in decision.pieces(self.stored_per_piece) if self.stored_per_piece else [decision]:
            stored_ids, resent = _touched_orders(conn, self.shop, piece, fresh_ids)
            self.clock.lap("line_versions")
            stored.read_before(conn, self.shop, stored_ids)
            self.clock.lap("lines_before")
            _write_rows(conn, piece, self.shop, statement_bytes, insert_fresh, resent, self.clock)
            stored.read_after(conn, self.shop, stored_ids)
            self.clock.lap("lines_after")
        return stored

    def _attempt(self, frames: ChunkFrames, parents: Parents, mark: JobMark | None, statement_bytes: int,
                 insert_fresh: bool) -> Committed:
        with chunk_transaction(self.engine, self._checkpointer) as conn:
            rollup.lock_shop(conn, self.shop)  # before any read: chunks of a shop commit in turn
            decision = decide_chunk(conn, frames, parents, self.shop, self.path, self.clock)
            fresh = decision.applied.filter(pl.col("fresh")) if insert_fresh else decision.applied.clear()
            stored = self._write_pieces(conn, decision, fresh.get_column("order_id"), statement_bytes, insert_fresh)
            after = pl.concat([stored.lines_after(), rollup_lines.lines_of_frames(fresh, decision.lines)])
            rollup.apply(conn, self.shop, stored.lines_before(), after)
            self.clock.lap("day_sums")
            # With the rows: a crash before the transform leaves the days pending, never lost.
            mark_days(conn, self.shop, decision.dirty)
            if mark is not None:
                store_changes(conn, mark.job_id, mark.start_line, mark.end_line, decision.changes)
                record_chunk(conn, mark.job_id, lines_committed=mark.end_line, max_updated_at=mark.max_updated_at,
                             rows=mark.rows)
            committed = Committed(parent_versions(decision.decided), decision.skipped)
            # The chunk's joined and filtered frames go before the commit, not after: the
            # prefetch thread is parsing the next chunk meanwhile (peak RSS).
            del decision
        self.clock.lap("commit")
        return committed

    def commit(self, frames: ChunkFrames, parents: Parents, mark: JobMark | None) -> Committed:
        """Write and commit one chunk (with ``mark``, its change records and the job's progress)."""
        statement_bytes, attempts, insert_fresh = self.statement_bytes, 0, True
        while True:
            attempts += 1
            try:
                return self._attempt(frames, parents, mark, statement_bytes, insert_fresh)
            except upsert.FreshRowExists:
                if not insert_fresh:
                    raise
                insert_fresh = False  # a "fresh" row exists after all: upsert every row
                self.fresh_conflicts += 1
            except sa.exc.DBAPIError as exc:
                shrinkable = statement_bytes > _MIN_STATEMENT_BYTES and self.size_retries < _MAX_SIZE_RETRIES
                if shrinkable and (upsert.is_size_error(exc) or upsert.is_disconnect(exc)):
                    statement_bytes //= 4  # rejected for size: same chunk, smaller statements
                    self.size_retries += 1
                elif _retryable(exc) and attempts < _MAX_ATTEMPTS:
                    time.sleep(0.2 * attempts)
                else:
                    raise

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
