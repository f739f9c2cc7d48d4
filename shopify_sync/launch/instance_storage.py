"""The embedded instance's storage: Dagster's SQLite storage, with the event log's engines kept.

Dagster's ``SqliteEventLogStorage`` builds a new SQLAlchemy engine for every event it
writes (one per run shard and one per index write), and a run of this project writes
hundreds: a 30-day backfill plans and materializes 9 assets per day, and a daily run
restating 30 days logs 60 restated partitions. Building the engine cost about as much as
the write itself (docs/benchmarks.md, session 8). This storage is the same files, tables
and behaviour, except that it keeps the engines of the last few shards it wrote, each
with its connection open (one per thread) until the run ends, and commits with
``synchronous=NORMAL``. Opening, closing and syncing were about half of an event's cost
(docs/benchmarks.md, session 9).

- The launcher calls ``release_event_log_connections`` after every run: the last
  connection to close checkpoints a file's write-ahead log and deletes it, where a
  process that just exits leaves a 3 MB ``-wal`` beside every run's file.
- The files are in WAL mode (Dagster sets it), where ``NORMAL`` means a commit no longer
  waits for the disk: a crash of the process still loses nothing, a power cut may lose
  the last events but never corrupts the file.

The CLI's in-process runs switch their instance to it (``keep_event_log_engines``); a
deployed instance uses PostgreSQL storage (``deploy/dagster.yaml``) and is left alone.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
import sqlalchemy as sa
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from sqlalchemy.pool import SingletonThreadPool

# Dagster's own busy timeout for its SQLite files.
_BUSY_TIMEOUT_SECONDS = 30
# Engines kept: the index shard and the runs of one process (a CLI's months of a backfill).
_KEPT_ENGINES = 8


class KeptEngineSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` reusing an engine and its connection per shard instead of
    building an engine and opening the file for every event."""

    def __init__(self, base_dir: str, inst_data: Any = None) -> None:
        self._engines: OrderedDict[str, sa.Engine] = OrderedDict()
        self._present: set[tuple[str, str]] = set()
        super().__init__(base_dir, inst_data)

    # Only "present" is remembered: a migration can add a table or column while the process
    # runs, nothing here removes one (``wipe`` forgets them with the files).
    def has_table(self, table_name: str) -> bool:
        if ("table", table_name) in self._present:
            return True
        present = super().has_table(table_name)
        if present:
            self._present.add(("table", table_name))
        return present

    def _has_asset_key_col_on_connection(self, conn: sa.Connection, column_name: str) -> bool:
        if ("asset_keys", column_name) in self._present:
            return True
        present = super()._has_asset_key_col_on_connection(conn, column_name)
        if present:
            self._present.add(("asset_keys", column_name))
        return present

    def _engine(self, shard: str) -> sa.Engine:
        engine = self._engines.pop(shard, None)
        if engine is None:
            engine = sa.create_engine(self.conn_string_for_shard(shard), poolclass=SingletonThreadPool,
                                      connect_args={"timeout": _BUSY_TIMEOUT_SECONDS})
            sa.event.listen(engine, "connect", _normal_sync)
        self._engines[shard] = engine  # most recently used last
        while len(self._engines) > _KEPT_ENGINES:
            _, old = self._engines.popitem(last=False)
            old.dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[sa.Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def release_connections(self) -> None:
        """Close every kept connection (the engines are built again on the next event)."""
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    def wipe(self) -> None:
        self.release_connections()  # the files are deleted: no connection may stay on them
        self._present.clear()
        super().wipe()

    def dispose(self) -> None:
        self.release_connections()
        super().dispose()


def _normal_sync(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def release_event_log_connections(instance: dg.DagsterInstance) -> None:
    """After a run: close the connections ``keep_event_log_engines`` kept open, if any."""
    storage = instance.event_log_storage
    if isinstance(storage, KeptEngineSqliteEventLogStorage):
        storage.release_connections()


def keep_event_log_engines(instance: dg.DagsterInstance) -> None:
    """Let this process's ``instance`` keep its event log's engines, when that log is Dagster's
    per-run SQLite one (the embedded default); any other storage is left as it is.

    The object becomes the subclass in place rather than through ``dagster.yaml``: a custom
    storage class there cannot find the instance's folder without ``DAGSTER_HOME``, which
    Dagster itself does not need to open an instance, and the webserver and daemon gain
    little from it. Same files and rows either way.
    """
    storage = instance.event_log_storage
    if type(storage) is SqliteEventLogStorage:
        storage._engines = OrderedDict()  # type: ignore[attr-defined]
        storage._present = set()  # type: ignore[attr-defined]
        storage.__class__ = KeptEngineSqliteEventLogStorage
