"""A private MariaDB server for a benchmark, with the buffer pool asked for, so that a
figure says which server it was measured on.

The machine's shared server runs at Debian's defaults (a 128 MB InnoDB buffer pool, read
with ``O_DIRECT``): a million orders' tables (about 650 MB) do not fit, and every pass
over rows a run touches goes to the disk again. A warehouse server is sized to hold them
(docs/deploy.md); ``bench/e2e.py --mariadb-buffer-pool 1G`` measures that server beside
the shared one without changing the shared one's settings. The server is the fault
suite's ``PrivateMariaDB`` (its own data folder, a free loopback port), here with the
shared server's durable commits, so that only the pool differs.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

# The test helpers are not installed with the package: the checkout's root holds them.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shopify_sync_tests.faults.private_servers import PrivateMariaDB  # noqa: E402


@contextmanager
def private_mariadb(buffer_pool: str) -> Iterator[PrivateMariaDB]:
    """A started server (``.url()``: an admin URL); stopped and its data deleted afterwards."""
    missing = PrivateMariaDB.missing()
    if missing:
        raise RuntimeError(f"no private MariaDB server can be started here ({missing}): install mariadb-server")
    server = PrivateMariaDB(buffer_pool=buffer_pool, flush_log_at_trx_commit=1)
    try:
        yield server
    finally:
        server.close()


def server_settings(url: str) -> str:
    """The server's version and the settings that decide its speed at scale, as one line."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            version, pool, flush = conn.exec_driver_sql(
                "SELECT @@version, @@innodb_buffer_pool_size, @@innodb_flush_method").one()
    finally:
        engine.dispose()
    return f"MariaDB {version}, innodb_buffer_pool_size {int(pool) >> 20} MB, innodb_flush_method {flush}"
