"""Run-status sensors add the telemetry record a run could not write itself.

Runs are real (``execute_in_process`` on an isolated ``instance_for_test``), the
sensors are the real definitions evaluated on a context built from the run's own
status event, and the telemetry goes to a real local object store.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from shopify_sync.defs.sensors import (
    run_shops,
    sensors,
    sync_telemetry_on_cancel,
    sync_telemetry_on_failure,
    sync_telemetry_on_start,
    sync_telemetry_on_success,
)
from shopify_sync.errors import ErrorSummary
from shopify_sync.storage.resource import ObjectStoreResource
from shopify_sync.sync import TAG_INITIATOR, TAG_MODE, TAG_SHOP

SHOP_TOKEN = "shpat_0123456789abcdef0123456789abcdef"
DB_PASSWORD = "hunter2-very-secret"


class BrokenWarehouse(dg.ConfigurableResource):
    """Fails while starting, the way a warehouse with a wrong host or password does."""

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        raise ConnectionError(
            f"cannot connect to mysql+pymysql://app:{DB_PASSWORD}@db.internal/shop "
            f"(shop token {SHOP_TOKEN} rejected)"
        )


class FineWarehouse(dg.ConfigurableResource):
    pass


@dg.asset
def probe_with_broken_resource(warehouse: BrokenWarehouse) -> None:
    raise AssertionError("never reached: the resource fails first")


@dg.asset
def probe_ok(warehouse: FineWarehouse) -> None:
    """Succeeds without writing any telemetry (as a run of a partial selection would)."""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("SHOPIFY_DEMO_TOKEN", SHOP_TOKEN)
    monkeypatch.setenv("SHOPIFY_SYNC_DATABASE_URL", f"mysql+pymysql://app:{DB_PASSWORD}@db.internal/shop")
    store_resource = ObjectStoreResource(url=f"file://{tmp_path}/objects")
    with dg.instance_for_test() as instance:
        yield {"instance": instance, "store_resource": store_resource, "store": store_resource.get_store()}


def _run(instance: dg.DagsterInstance, asset: dg.AssetsDefinition, resource: Any,
         tags: dict[str, str]) -> dg.DagsterRun:
    job = dg.define_asset_job("probe_job", selection=[asset])
    defs = dg.Definitions(assets=[asset], jobs=[job], resources={"warehouse": resource})
    result = defs.resolve_job_def("probe_job").execute_in_process(instance=instance, tags=tags,
                                                                   raise_on_error=False)
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    return run


def _status_event(instance: dg.DagsterInstance, run_id: str, kind: dg.DagsterEventType) -> dg.DagsterEvent:
    records = instance.get_records_for_run(run_id, of_type=kind).records
    assert records, f"run {run_id} has no {kind} event"
    event = records[-1].event_log_entry.dagster_event
    assert event is not None
    return event


def _context(env: dict[str, Any], sensor: Any, run: dg.DagsterRun, kind: dg.DagsterEventType) -> Any:
    return dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_event=_status_event(env["instance"], run.run_id, kind),
        dagster_instance=env["instance"],
        dagster_run=run,
        resources={"object_store": env["store_resource"]},
    )


def _records(env: dict[str, Any], run_id: str) -> list[dict[str, Any]]:
    from shopify_sync.telemetry import read_sync_records

    return list(read_sync_records(env["store"], run_id=run_id))


DAILY_TAGS = {
    "dagster/partition": "2026-11-22|DEMO",
    "dagster/partition/date": "2026-11-22",
    "dagster/partition/shop": "DEMO",
    TAG_MODE: "DAILY_INCREMENTAL",
    TAG_INITIATOR: "user",
    TAG_SHOP: "DEMO",
}


def test_resource_start_failure_gets_a_failed_record(env: dict[str, Any]) -> None:
    run = _run(env["instance"], probe_with_broken_resource, BrokenWarehouse(), DAILY_TAGS)
    assert run.status == dg.DagsterRunStatus.FAILURE
    assert _records(env, run.run_id) == []  # the run never got to write anything

    ctx = _context(env, sync_telemetry_on_failure, run, dg.DagsterEventType.RUN_FAILURE).for_run_failure()
    sync_telemetry_on_failure(ctx)

    records = _records(env, run.run_id)
    assert len(records) == 1
    rec = records[0]
    assert rec["run_id"] == run.run_id
    assert rec["shop"] == "DEMO"
    assert rec["job_type"] == "DAILY_INCREMENTAL"
    assert rec["initiator"] == "user"
    assert rec["step"] == "failed" and rec["status"] == "failed"
    assert rec["recorded_by"] == "run_status_sensor"
    assert rec["error"]["type"] == "ConnectionError"
    assert "cannot connect to mysql+pymysql://app:" in rec["error"]["message"]
    # The secrets in the exception never reach the object store.
    raw = b"".join(env["store"].get_bytes(k) for k in env["store"].list_keys("telemetry/"))
    assert DB_PASSWORD.encode() not in raw and SHOP_TOKEN.encode() not in raw
    assert b"<redacted>" in raw

    # Idempotent: evaluating the same failure again (a retried tick) adds nothing.
    sync_telemetry_on_failure(ctx)
    assert len(_records(env, run.run_id)) == 1


def test_failure_record_of_a_backfill_run_names_mode_and_initiator(env: dict[str, Any]) -> None:
    tags = {
        TAG_MODE: "FULL_BACKFILL_EXECUTE",
        TAG_INITIATOR: "backfill",
        TAG_SHOP: "NL",
        "dagster/asset_partition_range_start": "2026-11-01|NL",
        "dagster/asset_partition_range_end": "2026-11-07|NL",
    }
    run = _run(env["instance"], probe_with_broken_resource, BrokenWarehouse(), tags)
    sync_telemetry_on_failure(_context(env, sync_telemetry_on_failure, run,
                                       dg.DagsterEventType.RUN_FAILURE).for_run_failure())
    (rec,) = _records(env, run.run_id)
    assert (rec["shop"], rec["job_type"], rec["initiator"], rec["step"]) == (
        "NL", "FULL_BACKFILL_EXECUTE", "backfill", "failed")


def test_run_that_reported_its_own_end_is_left_alone(env: dict[str, Any]) -> None:
    from shopify_sync.telemetry import SyncTelemetry

    run = _run(env["instance"], probe_with_broken_resource, BrokenWarehouse(), DAILY_TAGS)
    tel = SyncTelemetry(env["store"], run_id=run.run_id, shop="DEMO", job_type="DAILY_INCREMENTAL",
                        initiator="user", process_initiated_at=datetime.now(UTC))
    tel.record("initiated", "started")
    tel.record("failed", "failed", error=ErrorSummary("AccessDenied", "missing scope read_orders"))
    before = _records(env, run.run_id)
    sync_telemetry_on_failure(_context(env, sync_telemetry_on_failure, run,
                                       dg.DagsterEventType.RUN_FAILURE).for_run_failure())
    assert _records(env, run.run_id) == before


def test_success_without_a_terminal_record_gets_completed(env: dict[str, Any]) -> None:
    run = _run(env["instance"], probe_ok, FineWarehouse(), DAILY_TAGS)
    assert run.status == dg.DagsterRunStatus.SUCCESS
    ctx = _context(env, sync_telemetry_on_success, run, dg.DagsterEventType.RUN_SUCCESS)
    sync_telemetry_on_success(ctx)
    sync_telemetry_on_success(ctx)
    records = _records(env, run.run_id)
    assert [(r["step"], r["status"]) for r in records] == [("completed", "succeeded")]
    assert "error" not in records[0] or not records[0]["error"]


def test_start_records_initiated_only_for_a_silent_run(env: dict[str, Any]) -> None:
    from shopify_sync.telemetry import SyncTelemetry

    run = _run(env["instance"], probe_ok, FineWarehouse(), DAILY_TAGS)
    ctx = _context(env, sync_telemetry_on_start, run, dg.DagsterEventType.RUN_START)
    sync_telemetry_on_start(ctx)
    sync_telemetry_on_start(ctx)
    assert [r["step"] for r in _records(env, run.run_id)] == ["initiated"]

    # A run already reporting gets nothing from the start sensor.
    other = _run(env["instance"], probe_ok, FineWarehouse(), {**DAILY_TAGS, TAG_SHOP: "NL",
                                                               "dagster/partition/shop": "NL",
                                                               "dagster/partition": "2026-11-22|NL"})
    SyncTelemetry(env["store"], run_id=other.run_id, shop="NL", job_type="DAILY_INCREMENTAL", initiator="user",
                  process_initiated_at=datetime.now(UTC) - timedelta(seconds=5)).record("requested", "started")
    sync_telemetry_on_start(_context(env, sync_telemetry_on_start, other, dg.DagsterEventType.RUN_START))
    assert [r["step"] for r in _records(env, other.run_id)] == ["requested"]


def test_cancelled_run_gets_failed_with_run_canceled(env: dict[str, Any]) -> None:
    instance = env["instance"]
    run = _run(instance, probe_ok, FineWarehouse(), DAILY_TAGS)
    # A real cancellation needs a launcher; report the cancel events the way the
    # run coordinator does, on a real run record.
    instance.report_run_canceling(run)
    instance.report_run_canceled(run)
    canceled = instance.get_run_by_id(run.run_id)
    assert canceled is not None and canceled.status == dg.DagsterRunStatus.CANCELED
    sync_telemetry_on_cancel(_context(env, sync_telemetry_on_cancel, canceled, dg.DagsterEventType.RUN_CANCELED))
    (rec,) = [r for r in _records(env, run.run_id) if r["step"] == "failed"]
    assert rec["error"]["type"] == "RunCanceled"


def test_non_sync_runs_are_ignored(env: dict[str, Any]) -> None:
    run = _run(env["instance"], probe_with_broken_resource, BrokenWarehouse(), {})
    sync_telemetry_on_failure(_context(env, sync_telemetry_on_failure, run,
                                       dg.DagsterEventType.RUN_FAILURE).for_run_failure())
    assert env["store"].list_keys("telemetry/") == []


def test_run_shops_from_tags() -> None:
    assert run_shops(DAILY_TAGS) == ["DEMO"]
    assert run_shops({"dagster/partition": "2026-11-22|DA"}) == ["DA"]
    assert run_shops({"dagster/asset_partition_range_start": "2026-11-01|DA",
                      "dagster/asset_partition_range_end": "2026-11-03|DE"}) == ["DA", "DE"]
    assert run_shops({"dagster/partition": "2026-11-22"}) == []


def test_definitions_include_the_sensors() -> None:
    from shopify_sync.config import load_settings
    from shopify_sync.defs import build_definitions

    defs = build_definitions(load_settings({}))
    names = {s.name for s in sensors}
    assert names == {"sync_telemetry_on_start", "sync_telemetry_on_success", "sync_telemetry_on_failure",
                     "sync_telemetry_on_cancel"}
    for name in names:
        sensor = defs.resolve_sensor_def(name)
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_sensor_ticks_pick_up_the_failure_like_the_daemon(env: dict[str, Any]) -> None:
    """Evaluated tick by tick with the cursor carried over, as the daemon does."""
    instance, resources = env["instance"], {"object_store": env["store_resource"]}
    job = dg.define_asset_job("probe_job", selection=[probe_with_broken_resource])
    defs = dg.Definitions(assets=[probe_with_broken_resource], jobs=[job], sensors=[sync_telemetry_on_failure],
                          resources={"warehouse": BrokenWarehouse(), **resources})
    repo = defs.get_repository_def()

    def tick(cursor: str | None) -> str | None:
        ctx = dg.build_sensor_context(instance=instance, repository_def=repo, cursor=cursor, resources=resources)
        return sync_telemetry_on_failure.evaluate_tick(ctx).cursor

    cursor = tick(None)  # the first tick only positions the cursor
    result = defs.resolve_job_def("probe_job").execute_in_process(instance=instance, tags=DAILY_TAGS,
                                                                   raise_on_error=False)
    assert not result.success
    cursor = tick(cursor)
    (rec,) = _records(env, result.run_id)
    assert (rec["step"], rec["error"]["type"], rec["recorded_by"]) == ("failed", "ConnectionError", "run_status_sensor")
    tick(cursor)  # nothing new happened: nothing new is written
    assert len(_records(env, result.run_id)) == 1
