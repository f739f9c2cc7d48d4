"""The staff API's access log never records a secret put in a query string (issue 14, point 10)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import uvicorn.config

from shopify_sync.api.app import AccessLogScrubber, access_log_config, scrub_request_target

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
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOPIFY_", "DAGSTER_"))}
    env.update({"SHOPIFY_SYNC_HOME": str(tmp_path), "SHOPIFY_SYNC_API_TOKEN": TOKEN})
    proc = subprocess.Popen([sys.executable, "-m", "shopify_sync.cli", "api", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                if httpx.get(f"{base}/openapi.json", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.3)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.get(f"{base}/orders?token={PASTED}", timeout=10).status_code == 401
        assert httpx.get(f"{base}/orders?shop=DEMO&access_token={PASTED}", headers=auth, timeout=30).status_code == 422
        assert httpx.get(f"{base}/orders?shop=DEMO&limit=3", headers=auth, timeout=30).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    log = out.decode()
    assert PASTED not in log and TOKEN not in log
    assert '"GET /orders?token=<redacted> HTTP/1.1" 401' in log, log
    assert '"GET /orders?shop=DEMO&limit=3 HTTP/1.1" 200' in log, log
