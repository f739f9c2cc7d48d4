"""The warehouse server's memory against the order tables (``warehouse.sizing``), on the real backends."""

from __future__ import annotations

from shopify_sync.warehouse import make_engine
from shopify_sync.warehouse.sizing import CacheFootprint, cache_footprint


def test_the_cache_footprint_is_read_from_innodb_only(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        footprint = cache_footprint(engine)
        if engine.dialect.name not in {"mysql", "mariadb"}:
            assert footprint is None  # PostgreSQL and SQLite read through the OS cache
            return
        with engine.connect() as conn:
            pool = int(conn.exec_driver_sql("SELECT @@GLOBAL.innodb_buffer_pool_size").scalar_one())
        assert footprint is not None and footprint.buffer_pool_bytes == pool
        # Three InnoDB tables with a secondary index each: at least a page per index.
        assert footprint.order_tables_bytes >= 6 * 16384
        assert footprint.shortfall() is None  # empty tables fit
    finally:
        engine.dispose()


def test_a_shortfall_names_both_sizes_and_where_to_read_on() -> None:
    text = CacheFootprint(128 << 20, 615 << 20).shortfall()
    assert text is not None and "128 MB" in text and "615 MB" in text and "docs/deploy.md" in text
    assert CacheFootprint(1 << 30, 615 << 20).shortfall() is None
    assert CacheFootprint(615 << 20, 615 << 20).shortfall() is None  # exactly full still fits
    assert CacheFootprint(0, 615 << 20).shortfall() is None  # a server that did not say
