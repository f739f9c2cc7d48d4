"""Every GraphQL document the client can send is valid against the shipped Admin schemas."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shopify_sync.shopify.client import ClientOptions, ShopifyBulkClient
from shopify_sync.shopify.documents import documents_for, version_at_least
from shopify_sync.shopify.queries import orders_query
from shopify_sync.shopify.schema import validate_document

VERSIONS = ["2024-10", "2025-01", "2025-10", "2026-01", "2026-04", "2026-10", "unstable"]


@pytest.mark.parametrize("version", VERSIONS)
def test_client_documents_validate_against_2026_10_schema(version: str) -> None:
    for name, document in documents_for(version).items():
        assert validate_document(document, "2026-10") == [], name


@pytest.mark.parametrize("version", VERSIONS)
def test_client_documents_never_request_group_objects(version: str) -> None:
    for document in documents_for(version).values():
        assert "groupObjects" not in document


def test_user_error_code_selected_only_from_2025_01() -> None:
    assert "message code" not in documents_for("2024-10")["run_query"]
    assert "message code" in documents_for("2025-01")["run_query"]
    assert "message code" in documents_for("2026-10")["run_query"]


def test_status_query_switches_at_2026_01() -> None:
    assert "node(id: $id)" in documents_for("2025-10")["get"]
    assert "bulkOperation(id: $id)" not in documents_for("2025-10")["get"]
    assert "bulkOperation(id: $id)" in documents_for("2026-01")["get"]
    assert "bulkOperation(id: $id)" in documents_for("unstable")["get"]


def test_version_ordering() -> None:
    assert version_at_least("2026-01", "2026-01")
    assert not version_at_least("2025-10", "2026-01")
    assert version_at_least("unstable", "2099-01")


def test_orders_query_is_a_valid_inner_query() -> None:
    query = orders_query("updated_at", datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
    assert validate_document(query, "2026-10") == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base_url": "shop.myshopify.com"}, "base_url"),
        ({"token": ""}, "token"),
        ({"api_version": "2026-1"}, "api_version"),
        ({"poll_max_attempts": 0}, "poll_max_attempts"),
        ({"poll_interval_seconds": -1}, "poll_interval_seconds"),
    ],
)
def test_bad_constructor_arguments_name_the_cause(kwargs: dict, message: str) -> None:
    target = {"base_url": "http://127.0.0.1:1", "token": "shpat_x", "api_version": "2026-10"}
    with pytest.raises(ValueError, match=message):
        ShopifyBulkClient(**{k: kwargs.get(k, v) for k, v in target.items()},
                          options=ClientOptions(**{k: v for k, v in kwargs.items() if k not in target}))


def test_repr_hides_token() -> None:
    client = ShopifyBulkClient("https://example.myshopify.com", "shpat_super_secret_value", "2026-10")
    try:
        assert "shpat_super_secret_value" not in repr(client)
        assert "redacted" in repr(client)
        assert "shpat_super_secret_value" not in str(vars(client).get("endpoint"))
    finally:
        client.close()


def test_bad_operation_id_is_rejected_before_any_request() -> None:
    client = ShopifyBulkClient("http://127.0.0.1:1", "shpat_x", "2026-10")
    try:
        with pytest.raises(ValueError, match="gid://shopify/BulkOperation"):
            client.get("12345")
    finally:
        client.close()
