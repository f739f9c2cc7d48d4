"""SPEC §5 Restatement through the real job: after backfills, daily syncs and replays every
stored measurement object equals a recomputation over the warehouse as it stands.

Orders of earlier days are refunded, cancelled, flagged test, lose a line or move to
another day in the emulator; the next daily sync must rewrite the partitions they touch
(and only stored ones), list them in telemetry and show them as materializations.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from shopify_sync.defs.checks import evaluate_measurements_current
from shopify_sync.defs.partitions import ShopDays
from shopify_sync.launch.inprocess import replay_launches
from shopify_sync.launch.plan import daily_launch
from shopify_sync.metrics.measurements import parquet_bytes, performance_frame, sales_frame
from shopify_sync.storage import measurement_days, measurement_prefix, performance_key, sales_key
from shopify_sync.sync.rules import RunInfo
from shopify_sync.vocab import Initiator, Mode
from shopify_sync.warehouse import dirty
from shopify_sync.warehouse.tables import measurement_day_sum
from shopify_sync_tests.defs import expected
from shopify_sync_tests.defs.conftest import Harness, make_harness, yesterday

SHOP = "DEMO"
INGEST_ASSETS = [dg.AssetKey(k) for k in ("shopify_bulk_jsonl", "order_header", "order_line_item", "order_refund")]


@pytest.fixture
def backend_harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str) -> Iterator[Harness]:
    yield from make_harness(tmp_path, monkeypatch, db_url)


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> Iterator[Harness]:
    yield from make_harness(tmp_path, monkeypatch, sqlite_url)


def stale_objects(h: Harness) -> list[str]:
    """Every stored measurement object that differs from a per-day recomputation now."""
    store, engine = h.store(), h.engine()
    stale = []
    try:
        for kind, key_of, frame_of in (("sales", sales_key, sales_frame),
                                       ("performance", performance_key, performance_frame)):
            for day in measurement_days(store.list_keys(measurement_prefix(kind, SHOP)), kind, SHOP):
                if store.get_bytes(key_of(SHOP, day)) != parquet_bytes(frame_of(engine, SHOP, day)):
                    stale.append(key_of(SHOP, day))
    finally:
        engine.dispose()
    return stale


def snapshot(h: Harness) -> dict[str, bytes]:
    store = h.store()
    return {k: store.get_bytes(k) for k in store.list_keys("measurement/")}


def restated_of(h: Harness, run_id: str) -> dict[str, list[str]]:
    store = h.store()
    keys = sorted(k for k in store.list_keys("telemetry/sync/") if f"/{run_id}/" in k)
    records = [json.loads(store.get_bytes(k)) for k in keys]
    assert records[-1]["step"] == "completed"
    return records[-1]["restated"]


def restated_events(result: dg.ExecuteInProcessResult, node: str) -> dict[str, dict[str, Any]]:
    return {str(m.partition): m.metadata for m in result.asset_materializations_for_node(node)
            if m.metadata.get("restated") is not None}


def pick_orders(h: Harness, first: date, last: date) -> list[Any]:
    """Counted orders processed in [first, last] with two product lines still holding units."""
    return [o for o in h.emulator.orders(SHOP)
            if expected.counted(o) and first <= o.processed_at.date() <= last
            and sum(1 for li in o.line_items if li.product_id is not None and li.current_quantity > 0) >= 2]


def edit_earlier_days(h: Harness, first: date, last: date) -> set[date]:
    """Refund, cancel, test-flag, remove a line and move processed_at, each on another order;
    returns every day whose counted lines changed (both days of the move)."""
    em = h.emulator
    picked = pick_orders(h, first, last)
    assert len(picked) >= 5
    at = max(o.updated_at for o in em.orders(SHOP)) + timedelta(minutes=1)
    refund, cancel, test, trim, move = picked[:5]
    line = next(li for li in refund.line_items if li.product_id is not None and li.current_quantity > 0)
    em.update_order(SHOP, refund.id, at=at, refund={line.id: 1})
    em.update_order(SHOP, cancel.id, at=at, cancel=True)
    em.update_order(SHOP, test.id, at=at, test=True)
    em._store(SHOP, replace(trim, line_items=trim.line_items[1:], updated_at=at))  # a line no longer returned
    moved_to = first if move.processed_at.date() != first else last
    new_processed = datetime.combine(moved_to, move.processed_at.time(), tzinfo=UTC)
    em._store(SHOP, replace(move, processed_at=new_processed, updated_at=at))
    return {o.processed_at.date() for o in (refund, cancel, test, trim, move)} | {moved_to}


def test_daily_sync_restates_earlier_days_then_replay_changes_nothing(backend_harness: Harness) -> None:
    h = backend_harness
    day = yesterday()
    start = day - timedelta(days=14)
    assert h.backfill(SHOP, start, day - timedelta(days=1)).success
    first = h.daily(SHOP, day)
    assert first.success
    assert stale_objects(h) == []
    # The daily sync also brought orders processed before the backfilled range (its window
    # is updated_at, 128 days): the stored windows that reach back to them were restated.
    assert restated_of(h, first.run_id)["measurement_performance"]
    before = snapshot(h)

    changed = edit_earlier_days(h, start + timedelta(days=2), day - timedelta(days=3))
    second = h.daily(SHOP, day)
    assert second.success
    checks = {e.asset_check_key.name: e.passed for e in second.get_asset_check_evaluations()}
    assert all(checks.values()), checks
    assert stale_objects(h) == []
    after = snapshot(h)
    for d in changed:  # the stored days really changed: without restatement they would be stale
        assert after[sales_key(SHOP, d)] != before[sales_key(SHOP, d)], d

    restated = restated_of(h, second.run_id)
    assert set(restated["measurement_sales"]) == {d.isoformat() for d in changed}
    want_perf = {changed_day + timedelta(days=k) for changed_day in changed for k in range(30)}
    want_perf = {d for d in want_perf if start <= d < day}  # stored ones, not the run's own day
    assert set(restated["measurement_performance"]) == {d.isoformat() for d in want_perf}
    sales_events = restated_events(second, "measurement_sales")
    assert set(sales_events) == {f"{d}|{SHOP}" for d in changed}
    [some] = [sales_events[f"{min(changed)}|{SHOP}"]]
    assert some["days"].value == min(changed).isoformat() and "refunded" in some["reason"].value
    assert set(restated_events(second, "measurement_performance")) == {f"{d}|{SHOP}" for d in want_perf}
    engine = h.engine()
    assert dirty.pending(engine, SHOP) == []
    engine.dispose()

    # Replay of the first (older) file: nothing changes, nothing is restated.
    [(_, tags, pkey)] = replay_launches(h.settings(), first.run_id)
    replay = h.job().execute_in_process(instance=h.instance, partition_key=pkey, tags=tags, raise_on_error=False)
    assert replay.success
    assert restated_of(h, replay.run_id) == {"measurement_sales": [], "measurement_performance": []}
    assert restated_events(replay, "measurement_sales") == {} and snapshot(h) == after
    assert stale_objects(h) == []

    # The check names a tampered object, old ones included.
    store = h.store()
    victim = sales_key(SHOP, start)
    store.put_bytes(victim, store.get_bytes(sales_key(SHOP, start + timedelta(days=1))))
    run = RunInfo(run_id="check", mode=Mode.DAILY_INCREMENTAL, initiator=Initiator.USER,
                  created_at=datetime.now(UTC))
    engine = h.engine()
    result = evaluate_measurements_current(engine, store, run, [ShopDays(SHOP, (day,))], sample=100)
    assert not result.passed and victim in result.metadata["stale_keys"].value
    assert result.metadata["day_sums_drifted"].value == "none"
    # ... and measurement_day_sum drifting from the lines on the run's day.
    t = measurement_day_sum
    with engine.begin() as conn:
        conn.execute(t.update().where(t.c.shop == SHOP, t.c.day == day, t.c.variant_key == -1)
                     .values(units_net=t.c.units_net + 1))
    result = evaluate_measurements_current(engine, store, run, [ShopDays(SHOP, (day,))], sample=100)
    engine.dispose()
    assert not result.passed and f"{SHOP} {day}: " in result.metadata["day_sums_drifted"].value


def test_backfill_restates_stored_days_outside_its_range(harness: Harness) -> None:
    """A backfill's orders may be processed on days outside its created_at range (a moved
    processed_at): those stored days are restated, and the windows after its range too."""
    h = harness
    day = yesterday()
    start = day - timedelta(days=10)
    assert h.backfill(SHOP, start, day).success
    # An order created inside the range [start+5, start+6] moves to a day outside it (start+1).
    em = h.emulator
    inside = [o for o in pick_orders(h, start + timedelta(days=5), start + timedelta(days=6))
              if start + timedelta(days=5) <= o.created_at.date() <= start + timedelta(days=6)]
    move = inside[0]
    at = max(o.updated_at for o in em.orders(SHOP)) + timedelta(minutes=1)
    em._store(SHOP, replace(move, processed_at=datetime.combine(start + timedelta(days=1), move.processed_at.time(),
                                                                tzinfo=UTC), updated_at=at))
    result = h.backfill(SHOP, start + timedelta(days=5), start + timedelta(days=6))
    assert result.success
    restated = restated_of(h, result.run_id)
    assert (start + timedelta(days=1)).isoformat() in restated["measurement_sales"]
    assert day.isoformat() in restated["measurement_performance"]  # a window after the range
    assert stale_objects(h) == []


def test_a_run_stopped_between_ingest_and_transform_is_restated_by_the_next(harness: Harness,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    h = harness
    day = yesterday()
    start = day - timedelta(days=8)
    assert h.backfill(SHOP, start, day - timedelta(days=1)).success
    assert h.daily(SHOP, day).success
    changed = edit_earlier_days(h, start + timedelta(days=1), day - timedelta(days=2))

    # The ingest commits and the run stops before any metric step: the days stay pending.
    _, tags, pkey = daily_launch(SHOP, day)
    only_ingest = h.job().execute_in_process(instance=h.instance, partition_key=pkey, tags=tags,
                                             asset_selection=INGEST_ASSETS, raise_on_error=False)
    assert only_ingest.success
    engine = h.engine()
    assert {r.day for r in dirty.pending(engine, SHOP)} >= changed
    assert stale_objects(h)  # the store is behind the warehouse now

    # The next run dies in measurement_performance, after measurement_sales restated: still pending.
    import shopify_sync.defs.assets.metrics as metric_assets

    def crash(*_: object, **__: object) -> None:
        raise RuntimeError("killed")

    with monkeypatch.context() as m:
        m.setattr(metric_assets, "write_performance", crash)
        assert not h.daily(SHOP, day).success
    assert {r.day for r in dirty.pending(engine, SHOP)} >= changed

    # The next run of the shop converges.
    again = h.daily(SHOP, day)
    assert again.success
    assert dirty.pending(engine, SHOP) == []
    engine.dispose()
    assert stale_objects(h) == []
    assert set(restated_of(h, again.run_id)["measurement_performance"])
