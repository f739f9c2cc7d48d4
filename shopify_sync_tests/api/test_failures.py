"""Failures surface in the API: a real sync refused by Shopify (ACCESS_DENIED)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from fastapi.testclient import TestClient

from shopify_sync.api.app import create_app
from shopify_sync.config import load_settings
from shopify_sync_tests.api.conftest import API_TOKEN, SHOP_TOKEN


def test_failed_sync_shows_in_pipelines_and_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from shopify_sync.defs import build_definitions
    from shopify_sync.emulator import EmulatorConfig, EmulatorServer
    from shopify_sync.launch.plan import SYNC_JOB_NAME, daily_launch

    for name in list(os.environ):
        if name.startswith(("SHOPIFY_", "DAGSTER_")):
            monkeypatch.delenv(name)
    base_env = {
        "SHOPIFY_SHOPS": "DEMO",
        "SHOPIFY_SYNC_HOME": str(tmp_path / "home"),
        "SHOPIFY_SYNC_DATABASE_URL": f"sqlite:///{tmp_path}/warehouse.db",
        "SHOPIFY_SYNC_STORAGE_URL": f"file://{tmp_path}/objects",
        "SHOPIFY_SYNC_START_DATE": (datetime.now(UTC).date() - timedelta(days=30)).isoformat(),
        "SHOPIFY_SYNC_API_TOKEN": API_TOKEN,
    }
    day = datetime.now(UTC).date() - timedelta(days=1)
    with EmulatorServer(EmulatorConfig(seed=3, orders_per_shop=10, days=5)) as server, \
            dg.instance_for_test() as instance:
        for k, v in {**base_env, "SHOPIFY_POLL_INTERVAL_SECONDS": "0.05",
                     "SHOPIFY_DEMO_STORE": server.emulator.shop_base_url("DEMO"),
                     "SHOPIFY_DEMO_TOKEN": SHOP_TOKEN}.items():
            monkeypatch.setenv(k, v)
        job = build_definitions(load_settings()).resolve_job_def(SYNC_JOB_NAME)
        _, tags, pkey = daily_launch("DEMO", day)
        ok = job.execute_in_process(instance=instance, partition_key=pkey, tags=tags, raise_on_error=False)
        assert ok.success
        server.emulator.faults.add("bulk_failed", times=None, error_code="ACCESS_DENIED")
        failed = job.execute_in_process(instance=instance, partition_key=pkey, tags=tags, raise_on_error=False)
        assert not failed.success

    with TestClient(create_app(load_settings(base_env)), raise_server_exceptions=False) as api:
        api.headers["Authorization"] = f"Bearer {API_TOKEN}"
        (health,) = api.get("/analytics/pipelines").json()["shops"]
        runs = {r["run_id"]: r for r in api.get("/api/ingest/runs").json()["runs"]}
    # The watermark and last success still belong to the good run.
    assert health["last_success_run_id"] == ok.run_id and health["watermark_at"] is not None
    assert [f["run_id"] for f in health["recent_failures"]] == [failed.run_id]
    error = health["recent_failures"][0]["error"]
    assert error["type"] == "AccessDenied" and "read_orders" in error["message"]
    assert runs[failed.run_id]["status"] == "failed"
    assert runs[failed.run_id]["error"]["type"] == "AccessDenied"
    assert runs[ok.run_id]["status"] == "completed" and runs[ok.run_id]["error"] is None
    assert SHOP_TOKEN not in str(health) + str(runs)
