"""Engines and schema migrations.

``ensure_schema`` runs ``alembic upgrade head`` programmatically (the alembic env
lives inside the package, so an installed wheel can migrate without an
alembic.ini on disk). It is idempotent and cheap after the first call per
engine, so every entry point can call it: the schema is applied on first use.
"""

from __future__ import annotations

import threading
import weakref
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

from shopify_sync.errors import summarize_error

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# One name for the MySQL GET_LOCK / PostgreSQL advisory lock serialising migrations
# across processes (two Dagster runs starting on an empty database).
_PG_LOCK_KEY = 0x53_48_4F_50_53_59_4E_43  # "SHOPSYNC"
_MYSQL_LOCK_NAME = "shopify_sync_migrations"

# Engines already at head. Weak: an id() could be reused by a new engine on another database.
_ensured: weakref.WeakSet[Engine] = weakref.WeakSet()
_ensured_lock = threading.Lock()


class SchemaError(RuntimeError):
    """The database schema could not be brought to the current version."""


def _normalise_url(url: str | URL) -> URL:
    try:
        parsed = make_url(url)
    except Exception:
        raise ValueError("malformed SQLAlchemy database URL") from None
    backend = parsed.get_backend_name()
    if backend in {"mysql", "mariadb"} and "charset" not in parsed.query:
        # Titles and SKUs are arbitrary Unicode (emoji included): utf8mb4 end to end.
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    if backend not in {"sqlite", "mysql", "mariadb", "postgresql"}:
        raise ValueError(f"unsupported database backend {backend!r} (sqlite, mysql+pymysql, postgresql+psycopg)")
    return parsed


def make_engine(url: str | URL, *, ensure: bool = True, **kwargs: object) -> Engine:
    """Create an engine for the warehouse; with ``ensure`` (default) migrate it to head first."""
    parsed = _normalise_url(url)
    options: dict[str, object] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # Chunks are committed by one writer; readers (API, metrics) must wait on
        # the writer's lock rather than fail with "database is locked" at once.
        options["connect_args"] = {"timeout": 60}
    options.update(kwargs)
    engine = sa.create_engine(parsed, **options)
    if parsed.get_backend_name() == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_on_connect)
    if ensure:
        ensure_schema(engine)
    return engine


def _sqlite_on_connect(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cur = dbapi_conn.cursor()
    try:
        # WAL lets the API read while an ingest writes; NORMAL sync is durable at each
        # commit boundary in WAL mode except on power loss, which a re-run repairs.
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        # 32 MB page cache (default 2 MB): index maintenance of big upserts stays in memory.
        # A larger cache was no faster and used more memory (docs/benchmarks.md).
        cur.execute("PRAGMA cache_size=-32768")
    finally:
        cur.close()


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:
        raise SchemaError("no migrations found in the package")
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def ensure_schema(engine: Engine) -> None:
    """Upgrade the database to the latest migration; a no-op when already there."""
    with _ensured_lock:
        if engine in _ensured:
            return
        head = head_revision()
        if current_revision(engine) != head:
            _upgrade_locked(engine)
        _ensured.add(engine)


def _upgrade_locked(engine: Engine) -> None:
    cfg = _alembic_config()
    dialect = engine.dialect.name
    with engine.connect() as conn:
        try:
            if dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            elif dialect in {"mysql", "mariadb"}:
                got = conn.execute(sa.text("SELECT GET_LOCK(:n, 120)"), {"n": _MYSQL_LOCK_NAME}).scalar()
                if got != 1:
                    raise SchemaError("timed out waiting for another process to finish migrating the schema")
            conn.commit()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()
        except SchemaError:
            raise
        except Exception as exc:
            raise SchemaError(f"schema migration failed: {summarize_error(exc).one_line()}") from exc
        finally:
            try:
                if dialect == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                elif dialect in {"mysql", "mariadb"}:
                    conn.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": _MYSQL_LOCK_NAME})
                conn.commit()
            except Exception:  # noqa: BLE001 - the lock dies with the connection anyway
                pass
