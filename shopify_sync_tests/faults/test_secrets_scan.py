"""The token scan finds a planted secret wherever it looks (so its empty answer means something)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from shopify_sync.vocab import Mode
from shopify_sync.warehouse import jobs, make_engine
from shopify_sync_tests.faults.secrets_scan import scan_for_secrets

pytestmark = pytest.mark.fault

SECRET = "shpat_planted0123456789"


def test_the_scan_finds_a_planted_secret_in_each_place_it_looks(tmp_path: Path, sqlite_url: str) -> None:
    secrets = {"Shopify token": SECRET, "unset": ""}
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "clean.log").write_text("nothing here")
    assert scan_for_secrets(secrets, roots=[tmp_path]) == []

    (tmp_path / "logs" / "run.log").write_bytes(b"\x00binary " + SECRET.encode() + b" tail")
    (tmp_path / "logs" / f"obj-{SECRET}.json").write_text("{}")
    engine = make_engine(sqlite_url)
    job = jobs.create_job(engine, shop="DE", job_type=Mode.DAILY_INCREMENTAL, partition_key="2026-05-09")
    jobs.fail_job(engine, job.job_id, f"boom {SECRET}")
    engine.dispose()
    with dg.instance_for_test() as instance:
        run = instance.create_run_for_job(dg.JobDefinition(graph_def=dg.GraphDefinition(name="g", node_defs=[])))
        instance.report_engine_event(f"leaked {SECRET}", run)
        hits = scan_for_secrets(secrets, roots=[tmp_path / "logs"], database_url=sqlite_url, instance=instance)
    assert any(h.startswith("Shopify token in ") and h.endswith("run.log") for h in hits)
    assert f"Shopify token in a name in {tmp_path / 'logs'}" in hits
    assert f"Shopify token in sync_job {job.job_id}" in hits
    assert f"Shopify token in event log of run {run.run_id}" in hits
    assert all(SECRET not in h for h in hits)  # labels and places, never the value
