"""The catalog's bulk query is valid for every supported API version and for Shopify's bulk rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shopify_sync.emulator.bulk_rules import bulk_query_errors
from shopify_sync.shopify.queries import catalog_query
from shopify_sync.shopify.schema import load_schema, validate_document

VERSIONS = ["2024-10", "2025-01", "2025-10", "2026-01", "2026-04", "2026-10", "unstable"]
SINCE = datetime(2026, 11, 30, 6, 45, tzinfo=UTC)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("since", [None, SINCE])
def test_catalog_query_validates_against_the_shipped_schema_of_every_version(version: str,
                                                                            since: datetime | None) -> None:
    query = catalog_query(since)
    assert validate_document(query, version) == []
    assert bulk_query_errors(query, load_schema(version)) == []


def test_catalog_query_selects_what_the_warehouse_stores() -> None:
    query = catalog_query()
    for field in ("productVariants", "sku", "title", "price", "compareAtPrice", "inventoryQuantity", "updatedAt",
                  "vendor", "productType", "status"):
        assert field in query
    assert "groupObjects" not in query
    assert "query:" not in query  # a full refresh filters nothing


def test_incremental_catalog_query_filters_on_updated_at() -> None:
    assert "updated_at:>='2026-11-30T06:45:00Z'" in catalog_query(SINCE)


def test_a_sort_key_the_schema_lacks_would_be_caught() -> None:
    # ProductVariantSortKeys has no UPDATED_AT: the validation this module relies on sees it.
    bad = catalog_query().replace("sortKey: ID", "sortKey: UPDATED_AT")
    assert validate_document(bad, "2026-01")
