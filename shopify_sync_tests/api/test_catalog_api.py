"""The staff API shows the product catalog: current SKU and stock on order lines, freshness per shop."""

from __future__ import annotations

import sqlalchemy as sa

from shopify_sync.warehouse import make_engine
from shopify_sync.warehouse.tables import product_variant
from shopify_sync_tests.api.conftest import SHOPS, Synced


def _catalog(synced: Synced) -> dict[int, tuple[str | None, int | None]]:
    engine = make_engine(synced.settings.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(product_variant.c.variant_id, product_variant.c.sku,
                                          product_variant.c.inventory_quantity)
                                .where(product_variant.c.shop == "DEMO")).all()
    finally:
        engine.dispose()
    return {int(v): (s, None if q is None else int(q)) for v, s, q in rows}


def test_order_lines_show_the_catalogs_current_sku_and_stock(synced_sqlite: Synced) -> None:
    catalog = _catalog(synced_sqlite)
    assert catalog
    seen = 0
    with synced_sqlite.client() as client:
        for order in synced_sqlite.orders["DEMO"][:15]:
            body = client.get(f"/orders/{order.id}").json()
            for line in body["line_items"]:
                if line["variant_id"] in catalog:
                    seen += 1
                    assert (line["catalog_sku"], line["inventory_quantity"]) == catalog[line["variant_id"]]
                    assert line["variant_deleted"] is False
                else:  # a custom line, or a variant the catalog no longer has
                    assert line["inventory_quantity"] is None and line["variant_deleted"] is None
    assert seen > 0


def test_overview_and_pipelines_include_catalog_freshness(synced_sqlite: Synced) -> None:
    with synced_sqlite.client() as client:
        pipelines = client.get("/analytics/pipelines").json()
        overview = client.get("/analytics/commerce/overview").json()
    for shop in pipelines["shops"]:
        fresh = shop["catalog"]
        assert fresh["shop"] == shop["shop"] and fresh["variants"] > 0
        assert fresh["watermark_at"] and fresh["full_refresh_at"] and fresh["lag_seconds"] >= 0
    assert {c["shop"] for c in overview["catalog"]} == set(SHOPS)


def test_pipelines_never_take_the_catalog_job_for_the_orders_job(db_url: str) -> None:
    """A run's CATALOG job (newer than its orders job, failed, or open) is reported under
    ``catalog``; the shop's last success and open jobs are the orders'; failures name their type."""
    from datetime import UTC, datetime

    from shopify_sync.api.analytics import _failures
    from shopify_sync.api.catalog_view import freshness
    from shopify_sync.vocab import JobStatus, Mode
    from shopify_sync.warehouse import jobs

    engine = make_engine(db_url)
    try:
        orders = jobs.create_job(engine, shop="DE", job_type=Mode.DAILY_INCREMENTAL, partition_key="2026-11-22",
                                 run_id="run-1")
        jobs.complete_job(engine, orders.job_id)
        failed = jobs.create_job(engine, shop="DE", job_type=Mode.CATALOG, partition_key="2026-11-22", run_id="run-1")
        jobs.fail_job(engine, failed.job_id, "ShopifyError: catalog operation FAILED")
        opened = jobs.create_job(engine, shop="DE", job_type=Mode.CATALOG, partition_key="2026-11-23", run_id="run-2",
                                 window_start=datetime(2026, 11, 22, tzinfo=UTC), status=JobStatus.POLLING)
        stats, failures = jobs.pipeline_stats(engine, ["DE"], failure_limit=10)
        assert stats["DE"].last_success_run_id == "run-1" and stats["DE"].open_jobs == 0
        listed = _failures(["DE"], failures, [])["DE"]
        assert [(f.run_id, f.job_type) for f in listed] == [("run-1", "CATALOG")]
        fresh = freshness(engine, ["DE"], datetime.now(UTC))["DE"]
        assert fresh.open_jobs == 1 and fresh.last_job is not None
        assert (fresh.last_job.run_id, fresh.last_job.partition_key, fresh.last_job.status) == (
            "run-2", "2026-11-23", "polling")
        assert fresh.last_job.full_refresh is False and opened.job_id
        jobs.complete_job(engine, opened.job_id)
        stats, _ = jobs.pipeline_stats(engine, ["DE"], failure_limit=10)
        assert stats["DE"].last_success_run_id == "run-1"  # a completed CATALOG job is not the orders' success
    finally:
        engine.dispose()
