"""The staff API's access log never records a secret put in a query string (issue 14, point 10)."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
import uvicorn.config

from shopify_sync.api.app import AccessLogScrubber, access_log_config, scrub_request_target
from shopify_sync_tests.api.served import served_api

TOKEN = "test-api-token-123"
PASTED = "pasted-by-mistake-0123456789"


@pytest.mark.parametrize("target, logged", [
    ("/orders", "/orders"),
    ("/orders?shop=DEMO&start=2026-01-01&limit=5", "/orders?shop=DEMO&start=2026-01-01&limit=5"),
    (f"/orders?token={PASTED}&shop=DEMO", "/orders?token=<redacted>&shop=DEMO"),
    (f"/orders?access_token={PASTED}", "/orders?access_token=<redacted>"),
    (f"/api/ingest/runs?X-Amz-Signature={PASTED}&days=2", "/api/ingest/runs?X-Amz-Signature=<redacted>&days=2"),
    ("/orders?shop=shpat_0123456789abcdef", "/orders?shop=<redacted>"),  # a known parameter, a token's shape
    (f"/orders/1?{PASTED}", "/orders/1?<redacted>"),  # a value pasted without a name
    (f"/orders/1?{PASTED}=x&shop=DE", "/orders/1?<redacted>&shop=DE"),
])
def test_query_values_other_than_the_apis_parameters_are_not_logged(target: str, logged: str) -> None:
    assert scrub_request_target(target) == logged


def test_the_filter_rewrites_uvicorns_access_record() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", f"/orders?token={PASTED}", "1.1", 401), None)
    assert AccessLogScrubber().filter(record)
    assert PASTED not in record.getMessage() and "/orders?token=<redacted>" in record.getMessage()
    config = access_log_config(uvicorn.config.LOGGING_CONFIG)
    assert "scrub_query" in config["handlers"]["access"]["filters"]
    assert "filters" not in uvicorn.config.LOGGING_CONFIG["handlers"]["access"]  # uvicorn's own is untouched


def test_served_api_logs_no_query_secret(tmp_path: Path) -> None:
    with served_api(tmp_path, TOKEN) as api:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.get(f"{api.base}/orders?token={PASTED}", timeout=10).status_code == 401
        assert httpx.get(f"{api.base}/orders?shop=DEMO&access_token={PASTED}", headers=auth,
                         timeout=30).status_code == 422
        assert httpx.get(f"{api.base}/orders?shop=DEMO&limit=3", headers=auth, timeout=30).status_code == 200
    assert PASTED not in api.output and TOKEN not in api.output
    assert '"GET /orders?token=<redacted> HTTP/1.1" 401' in api.output, api.output
    assert '"GET /orders?shop=DEMO&limit=3 HTTP/1.1" 200' in api.output, api.output
