"""Migrations and column types on the three real backends (same code path)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from shopify_sync.warehouse import Money, ensure_schema, make_engine
from shopify_sync.warehouse.engine import current_revision, head_revision
from shopify_sync.warehouse.tables import metadata, order_header, order_line_item

SPEC_COLUMNS = {
    "order_header": {"shop", "order_id", "order_name", "created_at", "updated_at", "processed_at", "cancelled_at",
                     "test", "currency_code", "financial_status", "fulfillment_status", "total_price",
                     "subtotal_price", "total_discounts", "total_tax", "total_shipping", "total_refunded",
                     "synced_at"},
    "order_line_item": {"shop", "line_item_id", "order_id", "product_id", "variant_id", "sku", "title", "quantity",
                        "current_quantity", "original_unit_price", "discounted_unit_price", "discounted_total",
                        "currency_code"},
    "order_refund": {"shop", "refund_id", "order_id", "created_at", "total_refunded"},
    "product": {"shop", "product_id", "title", "units_7d", "net_sales_7d", "orders_7d", "units_30d",
                "net_sales_30d", "orders_30d", "metrics_as_of"},
    "sync_watermark": {"shop", "watermark_at", "run_id", "updated_at"},
    "sync_job": {"run_id", "shop", "job_type", "window_start", "window_end", "status", "bulk_operation_id",
                 "object_count", "archive_key", "lines_committed", "attempts", "last_error", "created_at",
                 "updated_at"},
}


def test_migrations_apply_on_empty_db_and_are_idempotent(db_url: str) -> None:
    engine = make_engine(db_url, ensure=False)
    try:
        assert current_revision(engine) is None
        ensure_schema(engine)
        assert current_revision(engine) == head_revision()
        inspector = sa.inspect(engine)
        for table, columns in SPEC_COLUMNS.items():
            present = {c["name"] for c in inspector.get_columns(table)}
            assert columns <= present, f"{table} misses {columns - present}"
        # A second engine (another process, in effect) runs the upgrade path again: no-op.
        other = make_engine(db_url, ensure=False)
        ensure_schema(other)
        assert current_revision(other) == head_revision()
        other.dispose()
        # The migration and tables.py describe the same schema.
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_money_reads_back_exactly_as_decimal(db_url: str) -> None:
    engine = make_engine(db_url)
    amounts = [Decimal("0.1"), Decimal("0.2"), Decimal("19.99"), Decimal("-3.3333"), Decimal("123456789012.5")]
    now = datetime(2026, 11, 22, 10, 0, 0, 123456)
    try:
        with engine.begin() as conn:
            conn.execute(order_line_item.insert(), [
                {"shop": "DEMO", "line_item_id": i, "order_id": 1, "original_unit_price": a,
                 "discounted_unit_price": "2.50", "discounted_total": a, "order_updated_at": now}
                for i, a in enumerate(amounts)
            ])
            conn.execute(order_header.insert(), {"shop": "DEMO", "order_id": 1, "updated_at": now, "test": False,
                                                 "total_price": Decimal("1e-4")})
        with engine.connect() as conn:
            got = [r[0] for r in conn.execute(sa.select(order_line_item.c.original_unit_price)
                                              .order_by(order_line_item.c.line_item_id))]
            total = conn.execute(sa.select(sa.func.sum(order_line_item.c.original_unit_price))).scalar_one()
            header = conn.execute(sa.select(order_header.c.total_price, order_header.c.updated_at)).one()
            filtered = conn.execute(sa.select(sa.func.count()).where(
                order_line_item.c.original_unit_price > Decimal("19.98"))).scalar_one()
            weighted = conn.execute(sa.select(sa.func.sum(
                sa.type_coerce(order_line_item.c.discounted_unit_price * 3, Money())))).scalar_one()
            if engine.dialect.name == "sqlite":
                storage = conn.exec_driver_sql(
                    "SELECT DISTINCT typeof(original_unit_price) FROM order_line_item").scalars().all()
                assert storage == ["integer"]  # scaled integers, never REAL
        assert all(isinstance(v, Decimal) for v in got)
        assert got == amounts
        assert isinstance(total, Decimal) and total == sum(amounts)
        assert header.total_price == Decimal("0.0001")
        assert header.updated_at == now  # microseconds kept on every backend
        assert filtered == 2
        assert weighted == Decimal("2.50") * 3 * len(amounts)
    finally:
        engine.dispose()


def test_money_refuses_floats_and_excess_precision(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    now = datetime.now(UTC)
    for bad in (0.1, "1.00001", "abc", "100000000000000", "-922337203685477.5808"):  # SQLite's int64 ends first
        with pytest.raises(sa.exc.StatementError) as info, engine.begin() as conn:
            conn.execute(order_header.insert(), {"shop": "DEMO", "order_id": 1, "updated_at": now, "test": False,
                                                 "total_price": bad})
        assert "money" in str(info.value) or "amount" in str(info.value)
    engine.dispose()


def test_bad_database_url_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unsupported database backend 'oracle'"):
        make_engine("oracle://scott@localhost/x")


def test_mysql_tables_are_utf8mb4_whatever_the_database_default(mysql_url: str, tmp_path) -> None:
    """Upstream MariaDB before 11.6 and MySQL 5.7 default to latin1: tables created there
    refused emoji and most non-Western letters. Old latin1 tables are converted, text kept."""
    from alembic import command

    from shopify_sync.warehouse import ingest_jsonl
    from shopify_sync.warehouse.engine import _alembic_config
    from shopify_sync_tests.warehouse.jsonl_builder import Line, Ord, write

    engine = make_engine(mysql_url, ensure=False)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("ALTER DATABASE CHARACTER SET latin1 COLLATE latin1_swedish_ci")
            cfg = _alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0004_sync_job_events_key")  # the schema as it was, in latin1
            conn.exec_driver_sql(
                "INSERT INTO order_line_item (shop, line_item_id, order_id, title, order_updated_at) "
                "VALUES ('DEMO', 1, 1, 'Café crème', '2026-11-20 10:00:00')")
            conn.commit()

        def charsets() -> set[str]:
            with engine.connect() as conn:
                return set(conn.exec_driver_sql(
                    "SELECT DISTINCT c.character_set_name FROM information_schema.tables t "
                    "JOIN information_schema.collation_character_set_applicability c "
                    "ON c.collation_name = t.table_collation "
                    "WHERE t.table_schema = DATABASE() AND t.table_name <> 'alembic_version'").scalars())

        assert charsets() == {"latin1"}
        ensure_schema(engine)
        assert charsets() == {"utf8mb4"}
        title = "😀 Łódź 漢字 Ωμέγα"
        path = write(tmp_path / "u.jsonl", [Ord(2, lines=[Line(20, title=title, sku="SKU-Ś")])])
        ingest_jsonl(engine, path, shop="DEMO", job_id=None, chunk_rows=100)
        with engine.connect() as conn:
            stored = dict(conn.execute(sa.select(order_line_item.c.line_item_id, order_line_item.c.title)).all())
        assert stored == {1: "Café crème", 20: title}
    finally:
        engine.dispose()
