"""Shared fixtures: real database servers, one fresh database per test.

MariaDB and PostgreSQL tests use the real servers (never a mock). On a machine
without them the tests skip with the reason; in CI (``CI=true``) an unreachable
server is a failure, because `.ci/run` has already started them.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

MYSQL_URL = os.environ.get("SHOPIFY_SYNC_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
POSTGRES_URL = os.environ.get("SHOPIFY_SYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# A suite started in the background (`nohup`, `cmd &` in a non-interactive shell) inherits
# SIGINT/SIGTERM set to "ignore", and every subprocess a test starts inherits that too: the
# tests that stop a server with SIGINT or SIGTERM would then wait for a process that cannot
# hear them. Seen here: both emulator subprocess tests timed out under `nohup pytest &`.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
if signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

_reachable: dict[str, str | None] = {}


def _server_problem(url: str) -> str | None:
    if url not in _reachable:
        try:
            engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            engine.dispose()
            _reachable[url] = None
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            _reachable[url] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return _reachable[url]


def _require(url: str, name: str) -> None:
    problem = _server_problem(url)
    if problem:
        if IN_CI:
            pytest.fail(f"{name} server at {sa.make_url(url).render_as_string(hide_password=True)} "
                        f"is not reachable in CI: {problem}")
        pytest.skip(f"{name} server not reachable ({problem}); set SHOPIFY_SYNC_TEST_*_URL to run")


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/warehouse.db"


@pytest.fixture
def mysql_url() -> Iterator[str]:
    _require(MYSQL_URL, "MariaDB")
    name = f"ss_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(MYSQL_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    try:
        yield sa.make_url(MYSQL_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    _require(POSTGRES_URL, "PostgreSQL")
    with fresh_postgres_database() as url:
        yield url


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new empty database on the test server, dropped (with its sessions) afterwards."""
    name = f"ss_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "mariadb", "postgres"])
def db_url(request) -> str:
    """A fresh, empty database on each backend in turn (same code path for all three)."""
    return request.getfixturevalue({"sqlite": "sqlite_url", "mariadb": "mysql_url",
                                    "postgres": "postgres_url"}[request.param])


@pytest.fixture
def emulator_server():
    """A fresh Shopify emulator on loopback (real HTTP), stopped after the test.

    ``emulator_server.base_url`` / ``.shop_base_url(code)`` / ``.token`` / ``.emulator``
    (state, ``request_log``, ``faults``, ``orders(shop)``). For a custom config, build
    ``EmulatorServer(EmulatorConfig(...))`` in the test instead.
    """
    from shopify_sync.emulator import EmulatorConfig, EmulatorServer

    with EmulatorServer(EmulatorConfig()) as server:
        yield server
