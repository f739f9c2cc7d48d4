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
