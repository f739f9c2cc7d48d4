"""How the warehouse server's memory compares with what the runs read.

Only InnoDB needs this: PostgreSQL and SQLite read through the operating system's page
cache, InnoDB (with ``O_DIRECT``, the default) through its own buffer pool alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from shopify_sync.warehouse.tables import ORDER_TABLES


@dataclass(frozen=True)
class CacheFootprint:
    """InnoDB's buffer pool against the bytes of the order tables (data and indexes)."""

    buffer_pool_bytes: int
    order_tables_bytes: int

    def shortfall(self) -> str | None:
        """A warning when the order tables no longer fit in the buffer pool, else None."""
        if self.buffer_pool_bytes <= 0 or self.order_tables_bytes <= self.buffer_pool_bytes:
            return None
        return (f"InnoDB's buffer pool (innodb_buffer_pool_size, {self.buffer_pool_bytes >> 20} MB) is smaller than "
                f"the order tables ({self.order_tables_bytes >> 20} MB): every run reads the rows it touches from "
                "disk again, once per pass; size the server as docs/deploy.md ('Sizing the warehouse server') says")


def cache_footprint(engine: sa.Engine) -> CacheFootprint | None:
    """On MySQL/MariaDB, the buffer pool and the order tables' size (None elsewhere).

    Debian's default pool is 128 MB, read with O_DIRECT: at 1M orders (about 650 MB of
    order tables) a daily run of 5,000 changed orders took 15.8 s of project time against
    7.2 s with a 1 GB pool, and the product check 4.5 s against 1.0 s (docs/benchmarks.md,
    session 10). PostgreSQL and SQLite read through the operating system's cache instead.
    """
    if engine.dialect.name not in {"mysql", "mariadb"}:
        return None
    sizes = sa.text("SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables "
                    "WHERE table_schema = DATABASE() AND table_name IN :names"
                    ).bindparams(sa.bindparam("names", expanding=True))
    with engine.connect() as conn:
        pool = conn.exec_driver_sql("SELECT @@innodb_buffer_pool_size").scalar()
        tables = conn.execute(sizes, {"names": list(ORDER_TABLES)}).scalar()
    return CacheFootprint(int(pool or 0), int(tables or 0))
