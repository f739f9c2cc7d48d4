"""``/analytics/pipelines`` reports open jobs no live run works on as abandoned, with their age
(issue 14 point 9), on the three backends."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from fastapi.testclient import TestClient

from shopify_sync.api import analytics
from shopify_sync.api.app import create_app
from shopify_sync.config import load_settings
from shopify_sync.errors import ErrorSummary
from shopify_sync.storage import open_store
from shopify_sync.telemetry import SyncTelemetry
from shopify_sync.timeutil import naive_utc, utcnow
from shopify_sync.vocab import Initiator, JobStatus, Mode, Step, StepStatus
from shopify_sync.warehouse import jobs, make_engine
from shopify_sync.warehouse.tables import sync_job
from shopify_sync_tests.api.conftest import API_TOKEN


def _open_job(engine: sa.Engine, shop: str, day: str, run_id: str, idle: timedelta) -> str:
    job = jobs.create_job(engine, shop=shop, job_type=Mode.DAILY_INCREMENTAL, partition_key=day, run_id=run_id,
                          initiator=Initiator.CRON.value, status=JobStatus.POLLING)
    with engine.begin() as conn:  # as if the run stopped touching it `idle` ago
        conn.execute(sa.update(sync_job).where(sync_job.c.job_id == job.job_id)
                     .values(updated_at=naive_utc(utcnow() - idle)))
    return job.job_id


def test_open_jobs_of_dead_or_silent_runs_show_as_abandoned(db_url: str, tmp_path: Path) -> None:
    settings = load_settings({
        "SHOPIFY_SHOPS": "DEMO,DA",
        "SHOPIFY_DA_STORE": "https://da.example.test", "SHOPIFY_DA_TOKEN": "shpat_unused",
        "SHOPIFY_SYNC_HOME": str(tmp_path / "home"),
        "SHOPIFY_SYNC_DATABASE_URL": db_url,
        "SHOPIFY_SYNC_STORAGE_URL": f"file://{tmp_path}/objects",
        "SHOPIFY_SYNC_API_TOKEN": API_TOKEN,
    })
    engine = make_engine(db_url)
    try:
        stale = analytics.STALE_AFTER + timedelta(hours=1)
        _open_job(engine, "DEMO", "2026-11-20", "run-silent", stale)
        _open_job(engine, "DEMO", "2026-11-21", "run-busy", timedelta(minutes=2))  # a live run: not reported
        _open_job(engine, "DA", "2026-11-21", "run-killed", timedelta(minutes=5))
        done = _open_job(engine, "DA", "2026-11-19", "run-done", stale)
        jobs.complete_job(engine, done)
    finally:
        engine.dispose()
    # The killed run's telemetry ends "failed" (written by the next CLI start or the run-status sensor).
    SyncTelemetry(open_store(settings.storage_url), run_id="run-killed", shop="DA", job_type=Mode.DAILY_INCREMENTAL,
                  initiator=Initiator.CRON).record(Step.FAILED, StepStatus.FAILED,
                                                   error=ErrorSummary("ProcessDied", "process 1 gone"))

    with TestClient(create_app(settings), raise_server_exceptions=False) as api:
        api.headers["Authorization"] = f"Bearer {API_TOKEN}"
        response = api.get("/analytics/pipelines")
    assert response.status_code == 200, response.text
    health = {h["shop"]: h for h in response.json()["shops"]}
    assert health["DEMO"]["open_jobs"] == 2 and health["DA"]["open_jobs"] == 1

    (silent,) = health["DEMO"]["abandoned_jobs"]
    assert silent["run_id"] == "run-silent" and silent["reason"] == "stale"
    assert silent["status"] == "polling" and silent["partition_key"] == "2026-11-20"
    assert abs(silent["age_seconds"] - stale.total_seconds()) < 120

    (killed,) = health["DA"]["abandoned_jobs"]
    assert killed["run_id"] == "run-killed" and killed["reason"] == "run_failed"
    assert 240 < killed["age_seconds"] < 420
