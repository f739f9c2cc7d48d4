"""``sync_job.last_error`` never stores a secret (issue 14, point 10).

A failing step closes its job through ``sync.step_telemetry.fail_step`` → ``jobs.fail_job``
with ``errors.summarize_error``'s line: database and store URL passwords, tokens in a
query string and the configured secrets must be scrubbed from it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from shopify_sync.config import load_settings
from shopify_sync.storage.object_store import LocalObjectStore
from shopify_sync.sync.context import StepContext
from shopify_sync.sync.rules import RunInfo
from shopify_sync.sync.step_telemetry import step_telemetry
from shopify_sync.telemetry import read_sync_records
from shopify_sync.vocab import Initiator, JobStatus, Mode, Step
from shopify_sync.warehouse import jobs, make_engine

NOW = datetime(2026, 5, 10, 6, 0, tzinfo=UTC)
DB_PASSWORD = "Db/Pass%word-4711"  # in the URL percent-encoded, in a driver's message decoded
STORE_PASSWORD = "wJalr/XUtnFEMI-K7MDENG"
TOKEN = "shpat_0123456789abcdefSECRET"


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StepContext:
    monkeypatch.setenv("SHOPIFY_SYNC_DATABASE_URL", "mysql+pymysql://app:Db%2FPass%25word-4711@db.internal/shop")
    monkeypatch.setenv("SHOPIFY_SYNC_S3_ENDPOINT_URL", f"https://AKIAEXAMPLE:{STORE_PASSWORD}@r2.example.com")
    engine = make_engine(f"sqlite:///{tmp_path}/warehouse.db")
    run = RunInfo("run-1", Mode.DAILY_INCREMENTAL, Initiator.USER, NOW)
    return StepContext(run=run, settings=load_settings({}), engine=engine,
                       store=LocalObjectStore(tmp_path / "objects"), chunk_rows=100)


@pytest.mark.parametrize("message, secret", [
    ("cannot connect to mysql+pymysql://app:Db%2FPass%25word-4711@db.internal/shop", "Db%2FPass%25word-4711"),
    (f"(1045, \"Access denied for user 'app' (password '{DB_PASSWORD}')\")", DB_PASSWORD),
    (f"upload failed: https://AKIAEXAMPLE:{STORE_PASSWORD}@r2.example.com/bucket/raw", STORE_PASSWORD),
    (f"store s3+https://k:{STORE_PASSWORD}@minio.local:9000 refused", STORE_PASSWORD),
    ("db mysql+pymysql://app:p@ss-w0rd-9@db.internal/shop", "ss-w0rd-9"),
    (f"401 for url 'https://x.myshopify.com/admin/api/2026-10/graphql.json?token={TOKEN}'", TOKEN),
    ("GET https://storage.googleapis.com/b/o.jsonl?X-Goog-Signature=9f8e7d6c5b4a&X-Goog-Date=1 expired",
     "9f8e7d6c5b4a"),
    (f"rejected header X-Shopify-Access-Token: {TOKEN}", TOKEN),
])
def test_a_failed_step_stores_no_secret_in_last_error(ctx: StepContext, message: str, secret: str) -> None:
    job = jobs.create_job(ctx.engine, shop="DE", job_type=Mode.DAILY_INCREMENTAL, partition_key="2026-05-09",
                          run_id="run-1")
    with pytest.raises(ConnectionError), step_telemetry(ctx, "DE", "2026-05-09", Step.REQUESTED):
        raise ConnectionError(message)
    failed = jobs.get_job(ctx.engine, job.job_id)
    assert failed is not None and failed.status is JobStatus.FAILED
    assert failed.last_error and failed.last_error.startswith("ConnectionError: ")
    assert "<redacted>" in failed.last_error
    assert secret not in failed.last_error, failed.last_error
    # The telemetry's failed record is scrubbed alike.
    records = read_sync_records(ctx.store, "run-1", run_date=NOW.date())
    assert secret not in repr(records[-1]["error"])
