"""The catalog through the real sync job: emulator over HTTP, a real database (all three backends),
a local object store, a Dagster instance. Full refresh, incremental, deleted variant, crash and
re-run, concurrent operations on 2026-01 and serialisation on 2025-10; backfills leave it alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shopify_sync.storage.keys import performance_key, sales_key
from shopify_sync.sync import TAG_FULL_CATALOG
from shopify_sync.vocab import JobStatus, Mode
from shopify_sync.warehouse import catalog, jobs
from shopify_sync.warehouse.tables import product, product_variant
from shopify_sync_tests.defs.conftest import Harness, make_harness, yesterday


@pytest.fixture
def catalog_harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str) -> Iterator[Harness]:
    # Operations take half a second, so two of them can be seen running at once.
    yield from make_harness(tmp_path, monkeypatch, db_url, extra_env={"SHOPIFY_API_VERSION": "2026-01"},
                            completion_seconds=0.5)


def catalog_ops(h: Harness) -> list[Any]:
    return [op for op in h.emulator.operations("DEMO") if "productVariants" in op.query]


def order_ops(h: Harness) -> list[Any]:
    return [op for op in h.emulator.operations("DEMO") if "orders(" in op.query]


def overlap(a: Any, b: Any) -> bool:
    return a.created_at < b.complete_at and b.created_at < a.complete_at


def variants(h: Harness) -> dict[int, dict[str, Any]]:
    engine = h.engine()
    try:
        with engine.connect() as conn:
            return {int(r["variant_id"]): dict(r) for r in conn.execute(sa.select(product_variant)).mappings()}
    finally:
        engine.dispose()


def test_full_then_incremental_then_deleted_with_concurrent_operations(catalog_harness: Harness) -> None:
    h, day = catalog_harness, yesterday()
    # The catalog's operation takes a few seconds (as a real one takes minutes): long enough
    # for the orders' operation to start while it runs, whatever the database's speed.
    h.emulator.faults.add("slow_completion", shop="DEMO", root="productVariants", seconds=4)
    h.emulator.faults.add("slow_completion", shop="DEMO", root="orders", seconds=3)
    assert h.daily("DEMO", day).success
    served = h.emulator.product_catalog.variants("DEMO")
    stored = variants(h)
    assert set(stored) == {v.id for v in served}  # full refresh: every variant of the catalog
    assert stored[served[0].id]["price"] == served[0].price
    # 2026-01: the catalog's operation ran while the orders' did
    (cat_op,), (ord_op,) = catalog_ops(h), order_ops(h)
    assert overlap(cat_op, ord_op) and "query:" not in cat_op.query
    engine = h.engine()
    try:
        with engine.connect() as conn:
            missing = conn.execute(sa.select(sa.func.count()).select_from(product)
                                   .where(product.c.vendor.is_(None))).scalar()
        assert missing == 0  # every product of the catalog carries vendor / type / stock

        changed, gone = served[5], served[6]
        h.emulator.product_catalog.set_stock("DEMO", changed.id, 4321)
        h.emulator.product_catalog.delete_variant("DEMO", gone.id)
        assert h.daily("DEMO", day).success
        second = catalog_ops(h)[-1]
        assert "updated_at:>=" in second.query and second.result.object_count < len(served) - 1
        stored = variants(h)
        assert stored[changed.id]["inventory_quantity"] == 4321
        assert stored[gone.id]["deleted_at"] is None  # an incremental run cannot see a deletion

        assert h.daily("DEMO", day, **{TAG_FULL_CATALOG: "true"}).success
        assert "query:" not in catalog_ops(h)[-1].query
        stored = variants(h)
        assert stored[gone.id]["deleted_at"] is not None and stored[changed.id]["deleted_at"] is None
        assert catalog.variants_without_product(engine, ["DEMO"]) == []
        assert catalog.get_state(engine, "DEMO").full_refresh_at is not None
    finally:
        engine.dispose()


def test_a_crash_mid_catalog_ingest_is_resumed_by_the_next_run(catalog_harness: Harness,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    h, day = catalog_harness, yesterday()
    original = catalog.ingest_catalog

    def crash_after_first_chunk(*args: Any, **kwargs: Any) -> Any:
        def on_chunk(line: int) -> None:
            raise RuntimeError(f"killed after line {line}")
        return original(*args, **{**kwargs, "on_chunk": on_chunk})

    monkeypatch.setattr(catalog, "ingest_catalog", crash_after_first_chunk)
    first = h.daily("DEMO", day)
    # The run is failed by the check catalog_synced, after its last asset: the orders' work landed.
    assert not first.success
    failures = [e for e in first.all_events if e.is_step_failure]
    assert [e.step_key for e in failures] == ["measurement_performance_catalog_synced"]
    engine = h.engine()
    try:
        orders = jobs.latest_job_of_shop(engine, "DEMO")
        assert orders is not None and orders.job_type is Mode.DAILY_INCREMENTAL
        assert orders.status is JobStatus.COMPLETED and orders.open_lane is None
        assert h.watermark("DEMO") is not None
        assert h.store().exists(performance_key("DEMO", day)) and h.store().exists(sales_key("DEMO", day))
        failed = jobs.latest_job(engine, shop="DEMO", job_type=Mode.CATALOG, partition_key=orders.partition_key)
        assert failed is not None and failed.status is JobStatus.FAILED and "killed after line" in str(failed.last_error)
        assert 0 < failed.lines_committed < (failed.object_count or 0)
        monkeypatch.setattr(catalog, "ingest_catalog", original)
        ops_before = len(catalog_ops(h))
        assert h.daily("DEMO", day).success
        resumed = jobs.get_job(engine, failed.job_id)
        assert resumed is not None and resumed.status is JobStatus.COMPLETED and resumed.attempts == 2
        assert resumed.lines_committed == resumed.object_count == resumed.rows["product_variant"]
        assert len(catalog_ops(h)) == ops_before  # the archived file was reused: no new operation
        assert len(variants(h)) == len(h.emulator.product_catalog.variants("DEMO"))
    finally:
        engine.dispose()


def test_operations_are_serialised_before_2026_01(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 sqlite_url: str) -> None:
    for h in make_harness(tmp_path, monkeypatch, sqlite_url, extra_env={"SHOPIFY_API_VERSION": "2025-10"},
                          completion_seconds=0.5):
        assert h.daily("DEMO", yesterday()).success
        (cat_op,), (ord_op,) = catalog_ops(h), order_ops(h)
        assert not overlap(cat_op, ord_op)
        # one submission each: nothing was refused for running beside another operation
        assert len(h.run_queries("DEMO")) == len(h.run_queries("DEMO", "productVariants")) == 1


def test_a_backfill_does_not_fetch_the_catalog(harness: Harness) -> None:
    day = yesterday()
    assert harness.backfill("DEMO", day, day).success
    assert catalog_ops(harness) == []
    assert variants(harness) == {}
