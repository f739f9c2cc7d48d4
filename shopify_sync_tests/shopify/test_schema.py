"""The shipped (trimmed) Admin schemas and validate_document()."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shopify_sync.shopify import schema
from shopify_sync.shopify.queries import orders_query

REFERENCE = Path("/work/shared/reference/shopify-admin-schema")


@pytest.mark.parametrize(("version", "shipped"), [
    ("2023-10", "2026-01"), ("2025-10", "2026-01"), ("2026-01", "2026-01"), ("2026-04", "2026-01"),
    ("2026-07", "2026-01"), ("2026-10", "2026-10"), ("2027-01", "2026-10"), ("unstable", "2026-10"),
])
def test_version_mapping(version, shipped):
    assert schema.schema_version_for(version) == shipped


@pytest.mark.parametrize("bad", ["2026-13-01", "latest", "26-01", ""])
def test_bad_version_is_a_clear_error(bad):
    with pytest.raises(schema.SchemaError, match="API version must look like"):
        schema.load_schema(bad)


def test_load_schema_is_cached():
    assert schema.load_schema("2026-10") is schema.load_schema("unstable")
    assert schema.load_schema("2025-01") is schema.load_schema("2026-01")
    assert schema.load_schema("2026-10") is not schema.load_schema("2026-01")


def test_orders_query_is_valid_and_typos_are_not():
    q = orders_query("updated_at", datetime(2026, 1, 1, tzinfo=UTC))
    assert schema.validate_document(q, "2026-10") == []
    assert schema.validate_document(q, "2026-01") == []
    errors = schema.validate_document(q.replace("currentQuantity", "currentQty"), "2026-10")
    assert len(errors) == 1 and errors[0].startswith("Cannot query field 'currentQty' on type 'LineItem'.")
    assert schema.validate_document("{ orders {", "2026-10")[0].startswith("Syntax Error")


def test_version_specific_fields():
    # bulkOperation(id:) exists in both snapshots (2026-01+); groupObjects too
    doc = 'query { bulkOperation(id: "gid://shopify/BulkOperation/1") { id status } }'
    assert schema.validate_document(doc, "2026-01") == []
    assert schema.validate_document(doc, "2026-10") == []


def test_shipped_files_are_trimmed_and_small():
    for version in schema.SHIPPED_VERSIONS:
        path = schema.schema_path(version)
        assert path.stat().st_size < 400_000
        data = json.loads(gzip.decompress(path.read_bytes()))
        assert data["__schema"]["queryType"] == {"name": "QueryRoot"}
        types = data["__schema"]["types"]
        assert len(types) > 1000
        assert not any("description" in t for t in types)
        assert not any("description" in f for t in types for f in t.get("fields") or [])


@pytest.mark.skipif(not REFERENCE.exists(), reason="the full reference schemas exist only on dev/CI machines")
def test_regenerate_reproduces_the_shipped_files(tmp_path):
    written = schema.regenerate(REFERENCE, tmp_path)
    for path in written:
        assert path.read_bytes() == (schema.SCHEMA_DIR / path.name).read_bytes(), path.name
