"""The emulator's catalog: productVariants from the seeded dataset, its changes, the per-version
concurrency limit with Shopify's message, and faults aimed at catalog operations."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from shopify_sync.emulator import EmulatorConfig, EmulatorServer
from shopify_sync.emulator.catalog import HOT_PERIOD_SECONDS
from shopify_sync.emulator.dataset import catalog
from shopify_sync.shopify.queries import catalog_query, orders_query

ANCHOR = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.fixture
def emulator():
    with EmulatorServer(EmulatorConfig(seed=5, orders_per_shop=20, anchor=ANCHOR)) as server:
        yield server.emulator


def result_lines(emulator, shop: str, query: str, version: str = "2026-01") -> list[dict]:
    op, errors = emulator.run_query(shop, version, query, False)
    assert errors == [] and op is not None
    op = emulator.get_op(shop, op.num)
    assert op.status == "COMPLETED"
    if op.result.object_count == 0:
        return []
    with open(op.result.path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def test_product_variants_serve_the_seeded_catalog(emulator) -> None:
    lines = result_lines(emulator, "DEMO", catalog_query())
    deleted = emulator.product_catalog.seeded_deleted("DEMO")
    sold = {v.id for p in catalog(5, "DEMO") for v in p.variants}
    served = {int(line["id"].rsplit("/", 1)[1]) for line in lines}
    assert deleted and not deleted & served  # deleted variants are not returned
    assert sold - deleted <= served
    assert any(line["sku"] is None for line in lines)  # variants without a SKU
    per_product: dict[str, int] = {}
    for line in lines:
        assert "__parentId" not in line and line["product"]["vendor"]
        per_product[line["product"]["id"]] = per_product.get(line["product"]["id"], 0) + 1
    assert max(per_product.values()) > 1  # products with several variants
    assert {line["product"]["status"] for line in lines} >= {"ACTIVE", "DRAFT"}


def test_incremental_query_returns_only_changed_variants(emulator) -> None:
    since = emulator.now() - timedelta(seconds=HOT_PERIOD_SECONDS * 2)
    before = {line["id"] for line in result_lines(emulator, "DEMO", catalog_query(since))}
    target = next(iter(v for v in emulator.product_catalog.variants("DEMO") if f"/{v.id}" not in str(before)))
    emulator.product_catalog.set_stock("DEMO", target.id, 3)
    changed = result_lines(emulator, "DEMO", catalog_query(since))
    mine = [line for line in changed if line["id"].endswith(f"/{target.id}")]
    assert mine and mine[0]["inventoryQuantity"] == 3
    assert len(changed) == len(before) + 1
    emulator.product_catalog.delete_variant("DEMO", target.id)
    assert not any(line["id"].endswith(f"/{target.id}") for line in result_lines(emulator, "DEMO", catalog_query()))


def test_concurrent_bulk_queries_are_limited_per_version_with_shopifys_message() -> None:
    config = EmulatorConfig(seed=5, orders_per_shop=5, anchor=ANCHOR, completion_seconds=60)
    with EmulatorServer(config) as server:
        em = server.emulator
        first, _ = em.run_query("DEMO", "2025-10", catalog_query(), True)
        _, errors = em.run_query("DEMO", "2025-10", orders_query("updated_at", ANCHOR), True)
        assert errors == [{"field": None, "message": "A bulk query operation for this app and shop is already in "
                           f"progress: {first.gid}.", "code": "OPERATION_IN_PROGRESS"}]
    with EmulatorServer(config) as server:
        em = server.emulator
        ops = [em.run_query("DEMO", "2026-01", catalog_query(), False)[0] for _ in range(5)]
        assert all(op is not None for op in ops)
        _, errors = em.run_query("DEMO", "2026-01", orders_query("updated_at", ANCHOR), False)
        assert errors[0]["message"] == ("A bulk query operation for this app and shop is already in progress: "
                                        + ", ".join(op.gid for op in ops) + ".")


def test_faults_can_target_the_catalog_operations(emulator) -> None:
    emulator.faults.add("bulk_failed", shop="DEMO", root="productVariants", error_code="INTERNAL_SERVER_ERROR")
    orders, _ = emulator.run_query("DEMO", "2026-01", orders_query("updated_at", ANCHOR - timedelta(days=3)), False)
    assert emulator.get_op("DEMO", orders.num).status == "COMPLETED"
    variants, _ = emulator.run_query("DEMO", "2026-01", catalog_query(), False)
    assert emulator.get_op("DEMO", variants.num).status == "FAILED"
