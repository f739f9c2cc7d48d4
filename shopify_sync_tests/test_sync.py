"""The sync's pure rules (modes, initiators, windows, watermark arithmetic; SPEC §3), and
``step_telemetry`` on a real SQLite warehouse and a real local object store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shopify_sync.config import load_settings
from shopify_sync.shopify.errors import BulkOperationFailed, DownloadError
from shopify_sync.storage import LocalObjectStore
from shopify_sync.sync import (
    Initiator,
    Mode,
    RunInfo,
    StepContext,
    Window,
    backfill_window,
    incremental_window,
    initiator_from_tags,
    mode_from_tags,
    next_watermark,
    operation_is_dead,
    step_telemetry,
    stored_window,
    watermark_to_advance,
)
from shopify_sync.telemetry import read_sync_records
from shopify_sync.vocab import JobStatus, Step, StepStatus
from shopify_sync.warehouse import jobs, make_engine

NOW = datetime(2026, 5, 10, 6, 0, tzinfo=UTC)


def test_missing_watermark_starts_at_the_floor():
    w = incremental_window(None, now=NOW, floor_days=128, lookback_minutes=15)
    assert w == Window("updated_at", NOW - timedelta(days=128), None)
    assert "updated_at:>='2026-01-02T06:00:00Z'" in w.query()
    assert "sortKey: UPDATED_AT" in w.query()


def test_watermark_minus_lookback():
    wm = datetime(2026, 5, 9, 12, 0, tzinfo=UTC)
    w = incremental_window(wm, now=NOW, floor_days=128, lookback_minutes=15)
    assert w.start == datetime(2026, 5, 9, 11, 45, tzinfo=UTC)
    assert w.end is None


def test_floor_caps_an_old_watermark_and_naive_db_values_are_utc():
    old = datetime(2025, 1, 1, 0, 0)  # naive, as SQLite/MariaDB return it
    w = incremental_window(old, now=NOW, floor_days=30, lookback_minutes=15)
    assert w.start == NOW - timedelta(days=30)


def test_backfill_window_is_created_at_without_floor():
    w = backfill_window(datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 1, 4, tzinfo=UTC))
    q = w.query()
    assert "created_at:>='2020-01-01T00:00:00Z' AND created_at:<'2020-01-04T00:00:00Z'" in q
    assert "sortKey: CREATED_AT" in q


def test_a_stored_window_keeps_its_field_by_job_type():
    start, end = datetime(2026, 5, 1), datetime(2026, 5, 2)  # naive, as the warehouse returns them
    assert stored_window(Mode.DAILY_INCREMENTAL, start, None) == Window("updated_at", start.replace(tzinfo=UTC))
    assert stored_window(Mode.FULL_BACKFILL_EXECUTE, start, end) == Window(
        "created_at", start.replace(tzinfo=UTC), end.replace(tzinfo=UTC))


def test_next_watermark_never_goes_backwards():
    a = datetime(2026, 5, 1, tzinfo=UTC)
    b = datetime(2026, 5, 2, tzinfo=UTC)
    assert next_watermark(None, None) is None
    assert next_watermark(None, a) == a
    assert next_watermark(a, b) == b
    assert next_watermark(b, a) == b
    assert next_watermark(b, None) == b
    assert next_watermark(datetime(2026, 5, 2), a) == b  # naive from the DB == UTC


def test_the_watermark_moves_only_forward():
    a = datetime(2026, 5, 1, tzinfo=UTC)
    b = datetime(2026, 5, 2, tzinfo=UTC)
    assert watermark_to_advance(None, a) == a
    assert watermark_to_advance(a, b) == b
    assert watermark_to_advance(b, a) is None
    assert watermark_to_advance(b, None) is None
    assert watermark_to_advance(datetime(2026, 5, 2), b) is None  # naive from the DB == UTC
    assert watermark_to_advance(None, None) is None


@pytest.mark.parametrize(
    ("tags", "mode", "initiator"),
    [
        ({}, Mode.DAILY_INCREMENTAL, Initiator.USER),
        ({"dagster/schedule_name": "shopify_sync_daily"}, Mode.DAILY_INCREMENTAL, Initiator.CRON),
        ({"dagster/backfill": "abc"}, Mode.FULL_BACKFILL_EXECUTE, Initiator.BACKFILL),
        ({"shopify_sync/mode": "REPLAY", "shopify_sync/initiator": "user"}, Mode.REPLAY, Initiator.USER),
        ({"shopify_sync/mode": "FULL_BACKFILL_EXECUTE", "shopify_sync/initiator": "backfill"},
         Mode.FULL_BACKFILL_EXECUTE, Initiator.BACKFILL),
    ],
)
def test_mode_and_initiator_from_run_tags(tags, mode, initiator):
    assert mode_from_tags(tags) is mode
    assert initiator_from_tags(tags) is initiator


def test_bad_tags_are_named():
    with pytest.raises(ValueError, match="shopify_sync/mode"):
        mode_from_tags({"shopify_sync/mode": "WEEKLY"})
    with pytest.raises(ValueError, match="shopify_sync/initiator"):
        initiator_from_tags({"shopify_sync/initiator": "robot"})
    with pytest.raises(ValueError, match="replay_of"):
        RunInfo.from_tags("r1", {"shopify_sync/mode": "REPLAY"}, NOW)


def test_only_an_operation_that_ended_for_good_is_forgotten():
    assert operation_is_dead(BulkOperationFailed("ACCESS_DENIED", "gid://shopify/BulkOperation/1"))
    assert not operation_is_dead(DownloadError("the result URL expired", operation_id="gid://shopify/BulkOperation/1"))
    assert not operation_is_dead(RuntimeError("disk full"))


# -- step_telemetry -----------------------------------------------------------------------------


@pytest.fixture
def ctx(tmp_path: Path) -> StepContext:
    engine = make_engine(f"sqlite:///{tmp_path}/warehouse.db")
    run = RunInfo("run-1", Mode.DAILY_INCREMENTAL, Initiator.USER, NOW)
    return StepContext(run=run, settings=load_settings({}), engine=engine,
                       store=LocalObjectStore(tmp_path / "objects"), chunk_rows=100)


def _steps(ctx: StepContext) -> list[tuple[str, str]]:
    return [(str(r["step"]), str(r["status"])) for r in read_sync_records(ctx.store, "run-1", run_date=NOW.date())]


def test_a_step_records_started_then_succeeded_with_what_it_reported(ctx: StepContext) -> None:
    with step_telemetry(ctx, "DE", "2026-05-09", Step.UPSERTING) as rec:
        rec.report(rows={"order_header": 2})
    with step_telemetry(ctx, "DE", "2026-05-09", Step.REQUESTED) as rec:
        rec.record(Step.REQUESTED, StepStatus.SUCCEEDED, bulk_operation_id="gid://shopify/BulkOperation/7")
        rec.advance(Step.POLLING)
    assert _steps(ctx) == [("upserting", "started"), ("upserting", "succeeded"), ("requested", "started"),
                           ("requested", "succeeded"), ("polling", "started"), ("polling", "succeeded")]
    records = read_sync_records(ctx.store, "run-1", run_date=NOW.date())
    assert records[1]["rows"] == {"order_header": 2}
    assert records[-1]["bulk_operation_id"] == "gid://shopify/BulkOperation/7"


def test_the_terminal_step_is_written_once_at_the_end(ctx: StepContext) -> None:
    with step_telemetry(ctx, "DE", "2026-05-09", Step.COMPLETED) as rec:
        assert _steps(ctx) == []  # nothing says "completed" before it is
        rec.report(watermark_after=NOW)
    assert _steps(ctx) == [("completed", "succeeded")]


def test_a_failure_fails_the_job_scrubbed_records_failed_and_propagates(
    ctx: StepContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOPIFY_DE_TOKEN", "shpat_envtoken0123456789")
    job = jobs.create_job(ctx.engine, shop="DE", job_type=Mode.DAILY_INCREMENTAL, partition_key="2026-05-09",
                          run_id="run-1")
    jobs.set_operation(ctx.engine, job.job_id, "gid://shopify/BulkOperation/9")
    with pytest.raises(RuntimeError, match="boom"), step_telemetry(ctx, "DE", "2026-05-09", Step.REQUESTED) as rec:
        rec.advance(Step.POLLING)
        raise RuntimeError("boom with shpat_envtoken0123456789\nTraceback (most recent call last): ...")
    failed = jobs.get_job(ctx.engine, job.job_id)
    assert failed is not None and failed.status is JobStatus.FAILED
    assert failed.last_error == "RuntimeError: boom with <redacted>"
    assert failed.bulk_operation_id == "gid://shopify/BulkOperation/9"  # not dead: re-polled next time
    assert _steps(ctx)[-1] == ("failed", "failed")
    last = read_sync_records(ctx.store, "run-1", run_date=NOW.date())[-1]
    assert last["error"] == {"type": "RuntimeError", "message": "polling: boom with <redacted>"}


def test_a_dead_operation_is_forgotten_so_the_next_attempt_submits_anew(ctx: StepContext) -> None:
    job = jobs.create_job(ctx.engine, shop="DE", job_type=Mode.DAILY_INCREMENTAL, partition_key="2026-05-09")
    jobs.set_operation(ctx.engine, job.job_id, "gid://shopify/BulkOperation/9")
    with pytest.raises(BulkOperationFailed), step_telemetry(ctx, "DE", "2026-05-09", Step.REQUESTED):
        raise BulkOperationFailed("ACCESS_DENIED", "gid://shopify/BulkOperation/9")
    failed = jobs.get_job(ctx.engine, job.job_id)
    assert failed is not None and failed.status is JobStatus.FAILED and failed.bulk_operation_id is None


def test_a_failure_before_any_job_exists_is_still_recorded(ctx: StepContext) -> None:
    with pytest.raises(KeyboardInterrupt), step_telemetry(ctx, "DE", "2026-05-09", Step.INITIATED):
        raise KeyboardInterrupt
    assert _steps(ctx) == [("initiated", "started"), ("failed", "failed")]
