"""The metrics with the catalog: a line without a SKU takes the catalog's; ``product.title`` is the
catalog's when the catalog knows the product, the line title otherwise. All three backends."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from shopify_sync.metrics.measurements import performance_frame, refresh_products, sales_frame
from shopify_sync.metrics.restate import performance_frames, sales_frames
from shopify_sync.vocab import Mode
from shopify_sync.warehouse import catalog, dirty, jobs, make_engine, rollup
from shopify_sync.warehouse.tables import order_header, order_line_item, product
from shopify_sync_tests.warehouse.test_catalog import variant_line, write

DAY = date(2026, 11, 20)
AT = datetime(2026, 11, 20, 12, tzinfo=UTC)


def _line(lid: int, pid: int, vid: int, sku: str | None, title: str) -> dict[str, object]:
    return {"shop": "DE", "line_item_id": lid, "order_id": 1, "product_id": pid, "variant_id": vid, "sku": sku,
            "title": title, "quantity": 1, "current_quantity": 1, "original_unit_price": Decimal("10.00"),
            "discounted_unit_price": Decimal("10.00"), "discounted_total": Decimal("10.00"),
            "currency_code": "EUR", "order_updated_at": AT}


def test_sales_sku_and_product_title_come_from_the_catalog(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(order_header.insert().values(shop="DE", order_id=1, updated_at=AT, processed_at=AT,
                                                      created_at=AT, test=False, currency_code="EUR"))
            conn.execute(order_line_item.insert(), [_line(11, 7, 70, None, "Mug (line)"),
                                                    _line(12, 8, 80, "PEN-1", "Pen (line)")])
        rollup.rebuild(engine, "DE")  # the lines were written past the ingest
        refresh_products(engine, "DE", DAY)
        job = jobs.create_job(engine, shop="DE", job_type=Mode.CATALOG, partition_key=str(DAY))
        catalog.ingest_catalog(engine, write(tmp_path / "c.jsonl", [variant_line(70, 7, sku="MUG-1", title="Mug")]),
                               shop="DE", job_id=job.job_id, chunk_rows=10, synced_at=AT)
        # The catalog changed product 7's title and variant 70's SKU: the day's objects are stale.
        assert [d.day for d in dirty.pending(engine, "DE")] == [DAY]
        refresh_products(engine, "DE", DAY)
        frame = sales_frame(engine, "DE", DAY)
        assert dict(zip(frame["variant_id"].to_list(), frame["sku"].to_list(), strict=True)) == {
            70: "MUG-1", 80: "PEN-1"}
        # What the assets write (one pass over many days) says the same as the one-day frames.
        assert sales_frames(engine, "DE", [DAY])[DAY].equals(frame)
        perf = performance_frames(engine, "DE", [DAY])[DAY]
        assert perf.equals(performance_frame(engine, "DE", DAY))
        assert dict(zip(perf["product_id"].to_list(), perf["title"].to_list(), strict=True)) == {
            7: "Mug", 8: "Pen (line)"}
        with engine.connect() as conn:
            titles = dict(conn.execute(sa.select(product.c.product_id, product.c.title)).all())
            units = dict(conn.execute(sa.select(product.c.product_id, product.c.units_7d)).all())
        assert titles == {7: "Mug", 8: "Pen (line)"}
        assert units == {7: 1, 8: 1}  # the catalog's upsert kept the figures
    finally:
        engine.dispose()
