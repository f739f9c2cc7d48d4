"""The committed OpenAPI documents are exactly what the app serves."""

from __future__ import annotations

from pathlib import Path

import yaml

from shopify_sync.api import openapi

REPO = Path(__file__).resolve().parents[2]


def test_committed_documents_match_the_app() -> None:
    rendered = openapi.rendered_documents()
    assert set(rendered) == {"analytics.yaml", "order.yaml"}
    for name, text in rendered.items():
        committed = (REPO / "openapi" / name).read_text()
        assert committed == text, f"openapi/{name} is stale: run .venv/bin/python -m shopify_sync.api.openapi"


def test_documents_split_the_paths_and_are_self_contained() -> None:
    spec = openapi.build_spec()
    docs = {name: yaml.safe_load((REPO / "openapi" / name).read_text()) for name in openapi.DOCS}
    assert set(docs["order.yaml"]["paths"]) == {"/orders", "/orders/{order_id}"}
    assert set(docs["analytics.yaml"]["paths"]) == {
        "/analytics/commerce/overview", "/analytics/commerce/daily", "/analytics/products/top",
        "/analytics/pipelines", "/api/ingest/runs", "/api/performance-metrics/sync"}
    # Together they cover the whole served document, and every $ref resolves inside its file.
    assert set(docs["order.yaml"]["paths"]) | set(docs["analytics.yaml"]["paths"]) == set(spec["paths"])
    for doc in docs.values():
        refs: set[str] = set()
        openapi._refs(doc, refs)
        assert refs and refs <= set(doc["components"]["schemas"])


def test_check_mode_detects_a_stale_file(tmp_path) -> None:
    assert openapi.main(["--dir", str(tmp_path)]) == 0
    assert openapi.main(["--dir", str(tmp_path), "--check"]) == 0
    (tmp_path / "order.yaml").write_text("stale\n")
    assert openapi.main(["--dir", str(tmp_path), "--check"]) == 1
