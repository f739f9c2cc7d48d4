"""Auth, the one error shape, and bad input → 4xx (never a 500)."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from fastapi.testclient import TestClient

from shopify_sync.api.app import create_app, serve
from shopify_sync.config import ConfigError, load_settings
from shopify_sync_tests.api.served import served_api

TOKEN = "test-api-token-123"


@pytest.fixture
def client(tmp_path) -> TestClient:
    settings = load_settings({
        "SHOPIFY_SHOPS": "DEMO,NL",
        "SHOPIFY_NL_STORE": "emulator",
        "SHOPIFY_SYNC_HOME": str(tmp_path),
        "SHOPIFY_SYNC_API_TOKEN": TOKEN,
        # Nothing listens here: launching must fail with a clear 503.
        "SHOPIFY_SYNC_DAGSTER_URL": "http://127.0.0.1:9",
    })
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        c.headers["Authorization"] = f"Bearer {TOKEN}"
        yield c


def _cursor(payload: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def _error(resp, status: int, code: str | None = None) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    if code is not None:
        assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]["message"]


@pytest.mark.parametrize("path", ["/orders", "/orders/1", "/analytics/commerce/overview",
                                  "/analytics/pipelines", "/api/ingest/runs"])
def test_protected_routes_need_the_token(client: TestClient, path: str) -> None:
    no_auth = client.get(path, headers={"Authorization": ""})
    _error(no_auth, 401, "unauthorized")
    assert no_auth.headers["www-authenticate"] == "Bearer"
    _error(client.get(path, headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")
    _error(client.get(path, headers={"Authorization": f"Basic {TOKEN}"}), 401, "unauthorized")
    _error(client.get(path, headers={"Authorization": f"Bearer {TOKEN}x"}), 401, "unauthorized")


@pytest.mark.parametrize("path", ["/orders?limit=0", "/orders/abc", "/orders?strat=1", "/orders?shop=NOPE"])
def test_auth_is_checked_before_input(client: TestClient, path: str) -> None:
    # An anonymous caller learns nothing about parameters or shops.
    _error(client.get(path, headers={"Authorization": ""}), 401, "unauthorized")


def test_post_sync_needs_the_token(client: TestClient) -> None:
    _error(client.post("/api/performance-metrics/sync", headers={"Authorization": ""}), 401, "unauthorized")


def test_openapi_is_public_and_declares_bearer(client: TestClient) -> None:
    resp = client.get("/openapi.json", headers={"Authorization": ""})
    assert resp.status_code == 200
    spec = resp.json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert set(spec["paths"]) == {"/orders", "/orders/{order_id}", "/analytics/commerce/overview",
                                  "/analytics/pipelines", "/api/ingest/runs", "/api/performance-metrics/sync",
                                  "/analytics/commerce/daily", "/analytics/products/top"}


def test_framework_errors_use_our_shape(client: TestClient) -> None:
    assert "no such endpoint" in _error(client.get("/nope"), 404, "not_found")
    _error(client.delete("/orders"), 405, "method_not_allowed")
    _error(client.get("/orders/abc"), 422, "invalid_request")


@pytest.mark.parametrize("query, status, code", [
    ("limit=0", 422, "invalid_request"),
    ("limit=501", 422, "invalid_request"),
    ("limit=ten", 422, "invalid_request"),
    ("start=2026-13-01", 422, "invalid_request"),
    ("start=yesterday", 422, "invalid_request"),
    ("start=1700000000", 422, "invalid_request"),  # not a Unix timestamp either
    ("end=2026-1-5", 422, "invalid_request"),
    ("start=2026-03-02&end=2026-03-01", 400, "invalid_range"),
    ("shop=XX", 400, "unknown_shop"),
    ("shop=demo", 400, "unknown_shop"),
    ("cursor=not-a-cursor", 400, "bad_cursor"),
    ("cursor=eyJ2IjoxfQ", 400, "bad_cursor"),  # valid base64 JSON, missing fields
    # Well-formed but forged: an order id beyond BIGINT must not reach the database.
    ("cursor=" + _cursor({"v": 1, "p": "2026-01-01T00:00:00+00:00", "s": "DEMO", "o": 2**70,
                          "f": [None, None, None]}), 400, "bad_cursor"),
    # Forged instants with no UTC datetime (OverflowError in astimezone).
    ("cursor=" + _cursor({"v": 1, "p": "0001-01-01T00:00:00+05:00", "s": "DEMO", "o": 1,
                          "f": [None, None, None]}), 400, "bad_cursor"),
    ("cursor=" + _cursor({"v": 1, "p": "9999-12-31T23:59:59-05:00", "s": "DEMO", "o": 1,
                          "f": [None, None, None]}), 400, "bad_cursor"),
    ("cursor=" + _cursor({"v": 1, "p": 20261201, "s": "DEMO", "o": 1, "f": [None, None, None]}), 400, "bad_cursor"),
    ("cursor=" + "A" * 1001, 422, "invalid_request"),
    ("strat=2026-01-01", 422, "invalid_request"),  # a misspelt filter is not silently ignored
])
def test_orders_bad_input_is_4xx(client: TestClient, query: str, status: int, code: str) -> None:
    _error(client.get(f"/orders?{query}"), status, code)


@pytest.mark.parametrize("path, status, code", [
    ("/orders/0", 422, "invalid_request"),
    ("/orders/-5", 422, "invalid_request"),
    ("/orders/99999999999999999999", 422, "invalid_request"),
    ("/orders/123?shop=ZZ", 400, "unknown_shop"),
    ("/analytics/commerce/overview?start=2026-02-30", 422, "invalid_request"),
    ("/analytics/commerce/overview?start=2026-03-02&end=2026-03-01", 400, "invalid_range"),
    ("/analytics/commerce/overview?shop=NOPE", 400, "unknown_shop"),
    ("/api/ingest/runs?days=0", 422, "invalid_request"),
    ("/api/ingest/runs?limit=100000", 422, "invalid_request"),
    ("/api/ingest/runs?shop=NOPE", 400, "unknown_shop"),
])
def test_other_bad_input_is_4xx(client: TestClient, path: str, status: int, code: str) -> None:
    _error(client.get(path), status, code)


@pytest.mark.parametrize("query", ["end=0001-01-02", "start=9999-12-31&end=9999-12-31"])
def test_extreme_dates_do_not_overflow(client: TestClient, query: str) -> None:
    resp = client.get(f"/analytics/commerce/overview?{query}")
    assert resp.status_code == 200, resp.text
    assert resp.json()["shops"] == []


def test_sync_with_unknown_shop_is_400(client: TestClient) -> None:
    _error(client.post("/api/performance-metrics/sync?shop=NOPE"), 400, "unknown_shop")


def test_sync_without_dagster_is_503(client: TestClient) -> None:
    message = _error(client.post("/api/performance-metrics/sync"), 503, "dagster_unavailable")
    assert "127.0.0.1:9" in message


def test_missing_order_is_404(client: TestClient) -> None:
    assert "order 42 not found" in _error(client.get("/orders/42"), 404, "order_not_found")


def test_serve_refuses_without_token(tmp_path) -> None:
    settings = load_settings({"SHOPIFY_SYNC_HOME": str(tmp_path)})
    with pytest.raises(ConfigError) as err:
        serve("127.0.0.1", 0, settings=settings)
    assert err.value.variable == "SHOPIFY_SYNC_API_TOKEN"
    assert "\n" not in str(err.value)


def test_bad_dagster_url_is_a_config_error(tmp_path) -> None:
    settings = load_settings({"SHOPIFY_SYNC_HOME": str(tmp_path), "SHOPIFY_SYNC_API_TOKEN": TOKEN,
                              "SHOPIFY_SYNC_DAGSTER_URL": "localhost:3000"})
    with pytest.raises(ConfigError) as err:
        create_app(settings)
    assert err.value.variable == "SHOPIFY_SYNC_DAGSTER_URL"


def test_cli_api_refuses_without_token(tmp_path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOPIFY_", "DAGSTER_"))}
    env["SHOPIFY_SYNC_HOME"] = str(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "shopify_sync.cli", "api", "--port", "0"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "SHOPIFY_SYNC_API_TOKEN" in lines[0], proc.stderr


def test_cli_api_serves_over_uvicorn(tmp_path) -> None:
    with served_api(tmp_path, TOKEN) as api:
        assert httpx.get(f"{api.base}/orders", timeout=10).status_code == 401
        resp = httpx.get(f"{api.base}/orders", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        assert resp.status_code == 200 and resp.json() == {"orders": [], "next_cursor": None}
    # The token never shows in the server's output (access log included).
    assert TOKEN not in api.output
