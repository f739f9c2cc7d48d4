"""The API's read side of SYNC_TELEMETRY, on a real local object store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shopify_sync.api.telemetry_view import parse_error, recent_runs
from shopify_sync.storage import open_store
from shopify_sync.telemetry import SyncTelemetry

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _tel(store, run_id: str, shop: str, created: datetime) -> SyncTelemetry:
    return SyncTelemetry(store, run_id=run_id, shop=shop, job_type="FULL_BACKFILL_EXECUTE", initiator="backfill",
                         run_created_at=created)


def test_runs_per_shop_newest_first_and_bounded_by_days(tmp_path) -> None:
    store = open_store(f"file://{tmp_path}")
    # A ranged run over two shops: one finished, the other failed mid-way.
    a, b = _tel(store, "run-new", "DA", NOW), _tel(store, "run-new", "DE", NOW)
    a.record("initiated", "started")
    b.record("initiated", "started")
    a.record("completed", "succeeded", object_count=12)
    b.record("failed", "failed", error=RuntimeError("download expired"))
    old = _tel(store, "run-old", "DA", NOW - timedelta(days=3))
    old.record("initiated", "started")
    old.record("polling", "started")
    ancient = _tel(store, "run-ancient", "DA", NOW - timedelta(days=30))
    ancient.record("completed", "succeeded")

    runs = recent_runs(store, days=7, limit=50, today=NOW.date())
    assert [(r.run_id, r.shop, r.status) for r in runs] == [
        ("run-new", "DA", "completed"), ("run-new", "DE", "failed"), ("run-old", "DA", "running")]
    de = runs[1]
    assert de.error is not None and de.error.type == "RuntimeError" and "download expired" in (de.error.message or "")
    assert runs[0].error is None and runs[0].object_count == 12
    assert (runs[0].job_type, runs[0].initiator) == ("FULL_BACKFILL_EXECUTE", "backfill")
    # Filters: one shop; and a limit met by today's runs never lists older days.
    assert [r.run_id for r in recent_runs(store, days=7, shop="DE", today=NOW.date())] == ["run-new"]
    assert {r.run_id for r in recent_runs(store, days=7, limit=1, today=NOW.date())} == {"run-new"}
    assert [r.run_id for r in recent_runs(store, days=40, today=NOW.date())][-1] == "run-ancient"


def test_unreadable_records_are_skipped(tmp_path) -> None:
    store = open_store(f"file://{tmp_path}")
    _tel(store, "run-x", "DA", NOW).record("initiated", "started")
    store.put_bytes(f"telemetry/sync/date={NOW.date()}/run-x/000001-polling.json", b"{not json")
    (run,) = recent_runs(store, days=1, today=NOW.date())
    assert run.status == "running" and run.last_step == "initiated"


def test_parse_error_forms() -> None:
    assert parse_error("AccessDenied: missing read_orders").model_dump() == {
        "type": "AccessDenied", "message": "missing read_orders"}
    assert parse_error('{"type": "Timeout", "message": "slow"}').model_dump() == {"type": "Timeout", "message": "slow"}
    assert parse_error("plain words: with a colon").model_dump() == {"type": None, "message": "plain words: with a colon"}
    assert parse_error(None) is None and parse_error("") is None
