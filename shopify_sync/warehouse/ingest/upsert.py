"""Per-dialect bulk writes with the "never older" guard, and stale-child deletes.

Two write shapes per backend, each measured by ``bench/ingest.py``:

- ``insert``: rows of orders that had no stored header (a first load is all of them),
  which can only be new. A key that exists after all raises ``FreshRowExists`` and the
  ingest redoes the chunk with ``upsert``.
- ``upsert``: everything else, guarded so an older version never overwrites a newer one.

Per backend:

- SQLite: ``executemany`` of ``INSERT`` / ``INSERT … ON CONFLICT DO UPDATE … WHERE
  excluded.guard >= t.guard`` (money as scaled integers, timestamps in SQLAlchemy's text
  format, so ORM reads agree).
- PostgreSQL: ``COPY`` (CSV rendered by polars) straight into the table for inserts; for
  upserts into a temp table, then one ``INSERT … SELECT … ON CONFLICT DO UPDATE … WHERE``.
  No per-value Python work either way.
- MySQL / MariaDB: multi-row ``INSERT`` (``… ON DUPLICATE KEY UPDATE`` for upserts) whose
  VALUES text is rendered vectorised by polars (escaped as MySQL's string literal rules
  require). ``LOAD DATA`` is not used (PlanetScale refuses it). MySQL evaluates the
  assignments left to right, so every ``col = IF(VALUES(guard) >= guard, …)`` comes before
  the guard column itself is assigned.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopify_sync.warehouse.types import MONEY_SCALE

HEADER_COLUMNS = (
    "shop", "order_id", "order_name", "created_at", "updated_at", "processed_at", "cancelled_at", "test",
    "currency_code", "financial_status", "fulfillment_status", "total_price", "subtotal_price",
    "total_discounts", "total_tax", "total_shipping", "total_refunded", "synced_at",
)
LINE_COLUMNS = (
    "shop", "line_item_id", "order_id", "product_id", "variant_id", "sku", "title", "quantity",
    "current_quantity", "original_unit_price", "discounted_unit_price", "discounted_total", "currency_code",
    "order_updated_at",
)
REFUND_COLUMNS = ("shop", "refund_id", "order_id", "created_at", "total_refunded", "order_updated_at")

MONEY_COLUMNS = frozenset({
    "total_price", "subtotal_price", "total_discounts", "total_tax", "total_shipping", "total_refunded",
    "original_unit_price", "discounted_unit_price", "discounted_total",
})


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    guard: str
    # Columns that only change when the version is strictly newer (re-ingesting the
    # same file must leave the row byte-for-byte unchanged).
    only_if_newer: tuple[str, ...] = ()


HEADERS = TableSpec("order_header", HEADER_COLUMNS, ("shop", "order_id"), "updated_at", ("synced_at",))
LINES = TableSpec("order_line_item", LINE_COLUMNS, ("shop", "line_item_id"), "order_updated_at")
REFUNDS = TableSpec("order_refund", REFUND_COLUMNS, ("shop", "refund_id"), "order_updated_at")


def lines_by_order_index(dialect: str) -> str:
    """The index hint that follows ``order_line_item`` in a read by order (MySQL; ``rows_for_orders``)."""
    return "FORCE INDEX (ix_order_line_item_shop_order)" if dialect in ("mysql", "mariadb") else ""


class FreshRowExists(Exception):
    """An insert-only write met an existing key: redo the chunk on the upsert path."""


class StatementTooLarge(Exception):
    """The database rejected a statement for its size; the caller retries with smaller batches."""


def _in_chain(exc: BaseException, hit: Callable[[BaseException], bool]) -> bool:
    """Whether ``hit`` holds for ``exc`` or anything it wraps (driver error, context, cause)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if hit(e):
            return True
        todo.extend([getattr(e, "orig", None), e.__context__, e.__cause__])
    return False


def _code(e: BaseException) -> object:
    args = getattr(e, "args", ())
    return args[0] if args else None


def is_size_error(exc: BaseException) -> bool:
    """True when the database refused a statement for its size. The chain is walked because
    MySQL drops the connection after such an error, so the rollback can fail on top of it."""
    return _in_chain(exc, lambda e: _code(e) in (1153, 1301) or any(m in str(e).lower() for m in _SIZE_MARKERS))


def is_disconnect(exc: BaseException) -> bool:
    """The connection died under the statement. MySQL may reset the socket while an oversized
    packet is still being sent, so the client sees "server has gone away" instead of 1153."""
    return _in_chain(exc, lambda e: bool(getattr(e, "connection_invalidated", False)) or _code(e) in (2006, 2013))


_SIZE_MARKERS = ("max_allowed_packet", "too many sql variables", "string or blob too big",
                 "too many terms in compound select")


def id_list(ids: Sequence[int] | pl.Series) -> str:
    """An integer IN list rendered inline: ids are ints (validated), so this is injection-safe
    and avoids the per-backend parameter-count limits."""
    values = ids.cast(pl.Int64) if isinstance(ids, pl.Series) else pl.Series(ids, dtype=pl.Int64)
    return ",".join(str(int(v)) for v in values.to_list())


class BulkWriter:
    """Writes prepared chunk frames (money as decimal text, timestamps as naive UTC datetimes)."""

    def __init__(self, conn: Connection, statement_bytes: int) -> None:
        self.conn = conn
        self.statement_bytes = statement_bytes

    # -- API used by the ingest -------------------------------------------------------------

    # Rows go in key order: B-trees append instead of splitting pages (InnoDB's clustered key
    # above all; docs/benchmarks.md), and concurrent writers of one shop
    # lock keys in the same order, so they wait for each other instead of deadlocking.

    def upsert(self, spec: TableSpec, frame: pl.DataFrame) -> None:
        if frame.height:
            self._upsert(spec, frame.select(spec.columns).sort(spec.key))

    def insert(self, spec: TableSpec, frame: pl.DataFrame) -> None:
        """Rows the caller believes new; a key that exists after all raises ``FreshRowExists``
        (the transaction is then unusable: the caller rolls back and upserts instead)."""
        if not frame.height:
            return
        try:
            self._insert(spec, frame.select(spec.columns).sort(spec.key))
        except sa.exc.IntegrityError as exc:
            raise FreshRowExists(f"{spec.name}: a row believed new already exists ({type(exc).__name__})") from exc

    def _insert(self, spec: TableSpec, frame: pl.DataFrame) -> None:
        # Without a cheaper insert-only statement the guarded upsert is just as right.
        self._upsert(spec, frame)

    def delete_stale(self, table: str, shop: str, ids: Sequence[int], column: str = "order_id") -> None:
        """Delete the children (of these orders, or with these ``column`` ids) written with an
        older order version than the stored header."""
        for part in parts(list(ids), 20_000):
            self._delete_stale(table, shop, id_list(part), column)

    def delete_stale_lines(self, shop: str, order_ids: Sequence[int], resent: pl.Series) -> None:
        """``delete_stale`` of these orders' lines, but for the lines the chunk sends again under
        the same order (``resent``, line ids): the upsert that follows updates those in place.

        The end state is the same as deleting them and inserting them again: such a line is
        stored with at most the order's old version, below the new one, so the upsert's guard
        takes it (and where it would not, the stale test would not have deleted it either).
        Deleted and re-inserted, a 5,000-order daily's lines cost MariaDB about 1 s at 128 MB
        (docs/benchmarks.md, session 13). Candidates come from the (shop, order_id) index; the
        header join runs on those left over (lines dropped, or of a later chunk)."""
        if not order_ids:
            return
        hint = lines_by_order_index(self.conn.dialect.name)
        stored = rows_for_orders(self.conn, f"SELECT line_item_id FROM order_line_item {hint}", shop,
                                 pl.Series(order_ids, dtype=pl.Int64), by_index=True)
        candidates = pl.Series([r[0] for r in stored], dtype=pl.Int64)
        stale = candidates.filter(~candidates.is_in(resent.cast(pl.Int64).implode()))
        self.delete_stale("order_line_item", shop, stale.sort().to_list(), column="line_item_id")

    def _upsert(self, spec: TableSpec, frame: pl.DataFrame) -> None:
        raise NotImplementedError

    def _delete_stale(self, table: str, shop: str, ids: str, column: str) -> None:
        run_uncached(
            self.conn,
            f"DELETE FROM {table} WHERE shop = :shop AND {column} IN ({ids}) AND order_updated_at < "
            f"(SELECT h.updated_at FROM order_header h WHERE h.shop = {table}.shop "
            f"AND h.order_id = {table}.order_id)",
            shop,
        )


def run_uncached(conn: Connection, sql: str, shop: str) -> sa.CursorResult[tuple[object, ...]]:
    """Execute SQL with one ``:shop`` parameter, bypassing SQLAlchemy's compiled-statement
    cache: statements with inline id lists are all different, and caching them (up to 500
    large entries) made the RSS grow with the file."""
    style = conn.dialect.paramstyle
    placeholder = {"qmark": "?", "format": "%s", "pyformat": "%(shop)s", "named": ":shop"}.get(style)
    if placeholder is None:
        raise ValueError(f"unsupported DBAPI paramstyle {style!r}")
    params: dict[str, str] | tuple[str] = {"shop": shop} if style in {"pyformat", "named"} else (shop,)
    return conn.exec_driver_sql(sql.replace(":shop", placeholder), params)


def rows_for_orders(conn: Connection, select: str, shop: str, order_ids: pl.Series, alias: str = "",
                    suffix: str = "", column: str = "order_id", by_index: bool = False) -> list[Sequence[object]]:
    """``{select} WHERE {alias}shop = <shop> AND {alias}{column} IN <order_ids>{suffix}``: the rows.

    The ids go the way each backend takes a long list best (docs/benchmarks.md): PostgreSQL as
    one array parameter (a long literal IN list is planned slowly; psycopg's per-element
    adaptation cost more than the lookup), SQLite as one JSON array (sqlite3's statement cache
    grew with distinct literal lists), MySQL as inline lists of 20,000. ``by_index``: the
    ``select`` names the index (``lines_by_order_index``) and MySQL gets 999 ids at a time (under
    ``in_predicate_conversion_threshold``): a lookup per id, whatever the statistics say (200
    orders' lines: 5 s against 6 ms; session 14)."""
    if order_ids.len() == 0:
        return []
    dialect = conn.dialect.name
    where = f"{select} WHERE {alias}shop = :shop AND {alias}{column}"
    rows: list[Sequence[object]] = []
    if dialect == "postgresql":
        ids_text = "{" + order_ids.cast(pl.Int64).cast(pl.String).str.join(",").item() + "}"
        rows.extend(conn.execute(sa.text(f"{where} = ANY(CAST(:ids AS BIGINT[])){suffix}"),
                                 {"shop": shop, "ids": ids_text}).all())
    elif dialect == "sqlite":
        rows.extend(sqlite_rows(conn, f"{where.replace(':shop', '?')} IN (SELECT value FROM json_each(?)){suffix}",
                                (shop, f"[{id_list(order_ids)}]")))
    else:
        for part in parts(order_ids.to_list(), 999 if by_index else 20_000):
            rows.extend(run_uncached(conn, f"{where} IN ({id_list(part)}){suffix}", shop).all())
    return rows


def sqlite_batches(conn: Connection, sql: str, params: Sequence[object] | dict[str, object],
                   size: int) -> Iterator[list[tuple[object, ...]]]:
    """The rows of ``sql``, ``size`` at a time, read on the transaction's own sqlite3 connection.

    SQLAlchemy wraps each fetched row in a ``Row``: about 0.5 µs a row, as much again as
    SQLite's own fetch of these narrow rows (240k version rows: 0.36 s against 0.24 s;
    docs/benchmarks.md, session 12). Untyped SQL gets the driver's values either way.
    """
    cursor: sqlite3.Cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        with driver_errors(conn, sql):
            cursor.execute(sql, params)
            while batch := cursor.fetchmany(size):
                yield batch
    finally:
        cursor.close()


@contextmanager
def driver_errors(conn: Connection, sql: str) -> Iterator[None]:
    """Errors of the driver's own cursor raised as SQLAlchemy's, as ``conn.execute`` raises
    them: the chunk writer retries a deadlock or a busy SQLite file, and shrinks a statement
    refused for its size, only for a ``DBAPIError``; ``insert`` turns SQLAlchemy's
    ``IntegrityError`` into ``FreshRowExists``. The statement is cut before its values: a
    MySQL statement carries megabytes of rendered rows (titles, SKUs), not for a log line."""
    dbapi = conn.dialect.loaded_dbapi
    try:
        yield
    except dbapi.Error as exc:
        head, cut, _ = sql.partition(" VALUES ")
        statement = f"{head} VALUES …" if cut else sql
        invalidated = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, None)
        raise sa.exc.DBAPIError.instance(statement, None, exc, dbapi.Error, hide_parameters=True,
                                         connection_invalidated=invalidated, dialect=conn.dialect) from exc


def sqlite_rows(conn: Connection, sql: str, params: Sequence[object] | dict[str, object]) -> list[tuple[object, ...]]:
    return [row for batch in sqlite_batches(conn, sql, params, 20_000) for row in batch]


def parts(items: list[int], size: int) -> list[list[int]]:
    return [items[i:i + size] for i in range(0, len(items), size)] if items else []


def _ts_text(col: str) -> pl.Expr:
    return pl.col(col).dt.strftime("%Y-%m-%d %H:%M:%S%.6f")


def scaled_money(col: str) -> pl.Expr:
    """Decimal text → integer count of 10^-4 units (exact; the text was validated)."""
    return pl.col(col).str.to_decimal(scale=MONEY_SCALE).to_physical().cast(pl.Int64)


class SqliteWriter(BulkWriter):
    def _delete_stale(self, table: str, shop: str, ids: str, column: str) -> None:
        # A constant statement with a JSON array: Python's sqlite3 caches the last 128 prepared
        # statements, and distinct literal id lists made that cache grow with the file.
        self.conn.exec_driver_sql(
            f"DELETE FROM {table} WHERE shop = ? AND {column} IN (SELECT value FROM json_each(?)) "
            f"AND order_updated_at < (SELECT h.updated_at FROM order_header h WHERE h.shop = {table}.shop "
            f"AND h.order_id = {table}.order_id)",
            (shop, f"[{ids}]"),
        )

    def _insert(self, spec: TableSpec, frame: pl.DataFrame) -> None:
        cols = ", ".join(spec.columns)
        marks = ", ".join("?" for _ in spec.columns)
        self._executemany(f"INSERT INTO {spec.name} ({cols}) VALUES ({marks})", spec, frame)

    def _upsert(self, spec: TableSpec, frame: pl.DataFrame) -> None:
        cols = ", ".join(spec.columns)
        marks = ", ".join("?" for _ in spec.columns)
        self._executemany(f"INSERT INTO {spec.name} ({cols}) VALUES ({marks}) {_on_conflict(spec)}", spec, frame)

    def _executemany(self, sql: str, spec: TableSpec, frame: pl.DataFrame) -> None:
        exprs = []
        for c in spec.columns:
            dtype = frame.schema[c]
            if c in MONEY_COLUMNS:
                exprs.append(scaled_money(c))
            elif dtype == pl.Datetime("us"):
                exprs.append(_ts_text(c))
            elif dtype == pl.Boolean:
                exprs.append(pl.col(c).cast(pl.Int8))
            else:
                exprs.append(pl.col(c))
        values = frame.select(exprs)
        dbapi = self.conn.connection.dbapi_connection
        assert isinstance(dbapi, sqlite3.Connection)
        cur = dbapi.cursor()
        try:
            with driver_errors(self.conn, sql):
                # Slices bound the Python objects alive at once (memory), at no cost in speed.
                # Rows are zipped from per-column lists: about half the conversion CPU of
                # ``DataFrame.rows()`` (docs/benchmarks.md).
                for part in values.iter_slices(5_000):
                    cur.executemany(sql, zip(*(s.to_list() for s in part.get_columns()), strict=True))
        finally:
            cur.close()


def _on_conflict(spec: TableSpec) -> str:
    """``ON CONFLICT … DO UPDATE … WHERE`` with the "never older" guard (SQLite and PostgreSQL)."""
    sets = []
    for c in spec.columns:
        if c in spec.key:
            continue
        if c in spec.only_if_newer:
            sets.append(f"{c} = CASE WHEN excluded.{spec.guard} > {spec.name}.{spec.guard} "
                        f"THEN excluded.{c} ELSE {spec.name}.{c} END")
        else:
            sets.append(f"{c} = excluded.{c}")
    return (f"ON CONFLICT ({', '.join(spec.key)}) DO UPDATE SET {', '.join(sets)} "
            f"WHERE excluded.{spec.guard} >= {spec.name}.{spec.guard}")


def _pg_csv(frame: pl.DataFrame) -> bytes:
    return frame.write_csv(include_header=False, datetime_format="%Y-%m-%d %H:%M:%S%.6f",
                           null_value="").encode("utf-8")


class _CopySink(Protocol):
    """What ``_copy_csv`` needs of psycopg's ``Copy``."""

    def write(self, buffer: bytes) -> None: ...


def _copy_csv(copy: _CopySink, frame: pl.DataFrame) -> None:
    # Rendered and sent in slices: the server parses and inserts one slice while the
    # next is rendered, instead of idling until the whole chunk's CSV exists.
    for part in frame.iter_slices(_COPY_SLICE_ROWS):
        copy.write(_pg_csv(part))


_COPY_SLICE_ROWS = 2_000


class PostgresWriter(BulkWriter):
    def _insert(self, spec: TableSpec, frame: pl.DataFrame) -> None:
        # COPY straight into the table: no staging pass, no conflict arbitration.
        raw = self.conn.connection.dbapi_connection
        sql = f"COPY {spec.name} ({', '.join(spec.columns)}) FROM STDIN (FORMAT csv)"
        with raw.cursor() as cur, driver_errors(self.conn, sql):  # type: ignore[union-attr]
            with cur.copy(sql) as copy:
                _copy_csv(copy, frame)

    def _upsert(self, spec: TableSpec, frame: pl.DataFrame) -> None:
        stage = f"_stage_{spec.name}"
        cols = ", ".join(spec.columns)
        raw = self.conn.connection.dbapi_connection
        with raw.cursor() as cur, driver_errors(self.conn, f"upsert into {spec.name} via {stage}"):  # type: ignore[union-attr]
            # Per-connection staging table; ON COMMIT DELETE ROWS empties it at each chunk's commit.
            cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {spec.name}) ON COMMIT DELETE ROWS")
            cur.execute(f"TRUNCATE {stage}")
            with cur.copy(f"COPY {stage} ({cols}) FROM STDIN (FORMAT csv)") as copy:
                _copy_csv(copy, frame)
            cur.execute(f"INSERT INTO {spec.name} ({cols}) SELECT {cols} FROM {stage} {_on_conflict(spec)}")

    def delete_stale(self, table: str, shop: str, ids: Sequence[int], column: str = "order_id") -> None:
        if not ids:
            return
        self.conn.execute(
            sa.text(
                f"DELETE FROM {table} c USING order_header h WHERE h.shop = c.shop AND h.order_id = c.order_id "
                f"AND c.shop = :shop AND c.{column} = ANY(:ids) AND c.order_updated_at < h.updated_at"
            ),
            {"shop": shop, "ids": [int(i) for i in ids]},
        )


_MYSQL_ESCAPES = (["\\", "'", "\x00", "\n", "\r", "\x1a"], ["\\\\", "\\'", "\\0", "\\n", "\\r", "\\Z"])


class MysqlWriter(BulkWriter):
    def __init__(self, conn: Connection, statement_bytes: int, no_backslash_escapes: bool = False) -> None:
        super().__init__(conn, statement_bytes)
        self.no_backslash_escapes = no_backslash_escapes

    def _literal(self, frame: pl.DataFrame, c: str) -> pl.Expr:
        dtype = frame.schema[c]
        if c in MONEY_COLUMNS:
            expr = pl.col(c)  # validated decimal text: an exact DECIMAL literal as is
        elif dtype == pl.Datetime("us"):
            expr = pl.lit("'") + _ts_text(c) + pl.lit("'")
        elif dtype == pl.Boolean:
            expr = pl.col(c).cast(pl.Int8).cast(pl.String)
        elif dtype == pl.String:
            if self.no_backslash_escapes:
                escaped = pl.col(c).str.replace_all("'", "''", literal=True)
            else:
                escaped = pl.col(c).str.replace_many(*_MYSQL_ESCAPES)
            expr = pl.lit("'") + escaped + pl.lit("'")
        else:
            expr = pl.col(c).cast(pl.String)
        return expr.fill_null(pl.lit("NULL"))

    def _insert(self, spec: TableSpec, frame: pl.DataFrame) -> None:
        self._send(spec, frame, "")

    def _upsert(self, spec: TableSpec, frame: pl.DataFrame) -> None:
        sets = []
        for c in spec.columns:
            if c in spec.key or c == spec.guard:
                continue
            cond = ">" if c in spec.only_if_newer else ">="
            sets.append(f"{c} = IF(VALUES({spec.guard}) {cond} {spec.guard}, VALUES({c}), {c})")
        # Assigned last: every IF above must still see the stored guard value.
        sets.append(f"{spec.guard} = GREATEST({spec.guard}, VALUES({spec.guard}))")
        self._send(spec, frame, f" ON DUPLICATE KEY UPDATE {', '.join(sets)}")

    def _send(self, spec: TableSpec, frame: pl.DataFrame, suffix: str) -> None:
        tuples = frame.select(
            (pl.lit("(") + pl.concat_str([self._literal(frame, c) for c in spec.columns], separator=",")
             + pl.lit(")")).alias("t")
        ).to_series()
        prefix = f"INSERT INTO {spec.name} ({', '.join(spec.columns)}) VALUES "
        lengths = tuples.str.len_bytes()
        total = int(lengths.sum()) + tuples.len()
        n_statements = max(1, -(-total // max(1, self.statement_bytes - len(prefix) - len(suffix))))
        per = -(-tuples.len() // n_statements)
        raw = self.conn.connection.dbapi_connection
        cur = raw.cursor()  # type: ignore[union-attr]
        try:
            with driver_errors(self.conn, prefix):
                for start in range(0, tuples.len(), per):
                    body = tuples.slice(start, per).str.join(",").item()
                    # No args: pymysql then sends the text as is (no %-interpolation).
                    cur.execute(prefix + body + suffix)
        finally:
            cur.close()

    def _delete_stale(self, table: str, shop: str, ids: str, column: str) -> None:
        run_uncached(
            self.conn,
            f"DELETE c FROM {table} c JOIN order_header h ON h.shop = c.shop AND h.order_id = c.order_id "
            f"WHERE c.shop = :shop AND c.{column} IN ({ids}) AND c.order_updated_at < h.updated_at",
            shop,
        )


def writer_for(conn: Connection, statement_bytes: int) -> BulkWriter:
    name = conn.dialect.name
    if name == "sqlite":
        return SqliteWriter(conn, statement_bytes)
    if name == "postgresql":
        # Safe to skip the WAL flush wait: sync_job.lines_committed commits in the same
        # transaction, so a server crash that loses a chunk also loses its progress mark
        # and the resume simply redoes it.
        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
        return PostgresWriter(conn, statement_bytes)
    if name in {"mysql", "mariadb"}:
        mode = conn.exec_driver_sql("SELECT @@SESSION.sql_mode").scalar() or ""
        return MysqlWriter(conn, statement_bytes, no_backslash_escapes="NO_BACKSLASH_ESCAPES" in str(mode))
    raise ValueError(f"unsupported database backend {name!r}")


def default_statement_bytes(conn: Connection) -> int:
    """Largest statement we send: a quarter of MySQL's max_allowed_packet, 8 MB elsewhere."""
    if conn.dialect.name in {"mysql", "mariadb"}:
        packet = int(conn.exec_driver_sql("SELECT @@max_allowed_packet").scalar() or 4 << 20)
        return max(64 << 10, min(packet // 4, 16 << 20))
    return 8 << 20
