"""Every SPEC §9 check passes on a good run and fails on deliberately broken data."""

from __future__ import annotations

import io
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from shopify_sync.defs.assets.metrics import watermark_check
from shopify_sync.defs.checks import (
    evaluate_no_duplicate_sales_keys,
    evaluate_product_figures,
    evaluate_rows_match_object_count,
    evaluate_shop_freshness,
    evaluate_telemetry_completed,
    recompute_figures,
    sample_days,
)
from shopify_sync.defs.partitions import split_by_shop
from shopify_sync.launch.plan import daily_launch
from shopify_sync.sync import FinishOutcome, Initiator, Mode, RunInfo
from shopify_sync.warehouse.queries import RecheckLine
from shopify_sync_tests.defs.conftest import Harness, make_harness, yesterday


def test_checks_fail_on_broken_data(harness: Harness) -> None:
    from shopify_sync.storage import sales_key
    from shopify_sync.telemetry import SyncTelemetry
    from shopify_sync.warehouse.tables import product, sync_job

    day = yesterday()
    result = harness.daily("DEMO", day)
    assert result.success
    record = harness.instance.get_run_record_by_id(result.run_id)
    run = RunInfo(result.run_id, Mode.DAILY_INCREMENTAL, Initiator.USER, record.create_timestamp)
    parts = split_by_shop([f"{day}|DEMO"])
    eng = harness.engine()
    store = harness.store()

    # rows loaded = objectCount
    assert evaluate_rows_match_object_count(eng, run, parts).passed
    with eng.begin() as conn:
        conn.execute(sa.update(sync_job).values(lines_committed=sync_job.c.lines_committed - 1))
    bad = evaluate_rows_match_object_count(eng, run, parts)
    assert not bad.passed and "loaded" in bad.metadata["problems"].value
    other_day = split_by_shop([f"{day - timedelta(days=3)}|DEMO"])
    assert not evaluate_rows_match_object_count(eng, run, other_day).passed  # no job at all

    # no duplicate measurement_sales keys
    key = sales_key("DEMO", day)
    assert evaluate_no_duplicate_sales_keys(store, parts).passed
    frame = pl.read_parquet(io.BytesIO(store.get_bytes(key)))
    buf = io.BytesIO()
    pl.concat([frame, frame.head(1)]).write_parquet(buf)
    store.put_bytes(key, buf.getvalue())
    dup = evaluate_no_duplicate_sales_keys(store, parts)
    assert not dup.passed and dup.metadata["duplicate_rows"].value == 1
    assert not evaluate_no_duplicate_sales_keys(store, other_day).passed  # missing object

    # sampled product figures = recomputation from order_line_item
    assert evaluate_product_figures(eng, parts).passed
    with eng.begin() as conn:
        pid = conn.execute(sa.select(product.c.product_id).where(product.c.units_30d > 0).limit(1)).scalar_one()
        conn.execute(sa.update(product).where(product.c.product_id == pid).values(units_30d=product.c.units_30d + 1))
    wrong = evaluate_product_figures(eng, parts, sample=1000)
    assert not wrong.passed and str(pid) in wrong.metadata["mismatches"].value

    # telemetry shows a completed execution
    assert evaluate_telemetry_completed(store, run, parts).passed
    other_run = RunInfo("0" * 8 + "-no-records", Mode.DAILY_INCREMENTAL, Initiator.USER, run.created_at)
    assert not evaluate_telemetry_completed(store, other_run, parts).passed
    SyncTelemetry(store, run_id=run.run_id, shop="DEMO", job_type="DAILY_INCREMENTAL", initiator="user",
                  run_created_at=run.created_at).record("failed", "failed", error={"type": "X", "message": "late"})
    assert not evaluate_telemetry_completed(store, run, parts).passed

    # freshness per shop: an error for daily runs, a warning for backfills
    assert evaluate_shop_freshness(eng, run, parts).passed
    later = datetime.now(UTC) + timedelta(days=3)
    stale = evaluate_shop_freshness(eng, run, parts, now=later)
    assert not stale.passed and stale.severity.value == "ERROR"
    backfill_run = RunInfo("b", Mode.FULL_BACKFILL_EXECUTE, Initiator.BACKFILL, run.created_at)
    assert evaluate_shop_freshness(eng, backfill_run, parts, now=later).severity.value == "WARN"
    eng.dispose()

    # watermark did not regress
    t0 = datetime(2026, 5, 1, tzinfo=UTC)
    assert watermark_check([FinishOutcome("DEMO", t0, t0 + timedelta(hours=1), True)]).passed
    assert watermark_check([FinishOutcome("DEMO", None, None, True)]).passed
    assert not watermark_check([FinishOutcome("DEMO", t0, t0 - timedelta(seconds=1), True)]).passed
    assert not watermark_check([FinishOutcome("DEMO", t0, None, True)]).passed


def test_a_failing_blocking_check_stops_downstream_assets(harness: Harness) -> None:
    """Break the raw archive between fetch and load: rows != objectCount blocks the metrics."""
    import dagster as dg


    day = yesterday()
    _, tags, pkey = daily_launch("DEMO", day)
    fetched = harness.job().execute_in_process(
        instance=harness.instance, partition_key=pkey, tags=tags,
        asset_selection=[dg.AssetKey("shopify_bulk_jsonl")], raise_on_error=False)
    assert fetched.success
    from shopify_sync.warehouse.tables import sync_job

    eng = harness.engine()
    with eng.connect() as conn:
        archive_key, object_count = conn.execute(sa.select(sync_job.c.archive_key, sync_job.c.object_count)
                                                 .where(sync_job.c.job_type == "DAILY_INCREMENTAL")).one()
    eng.dispose()
    # Keep whole orders (an order line and its line items) but drop the last order's lines: a
    # short file that still parses, as a truncated archive would after a bad copy.
    store = harness.store()
    lines = store.get_bytes(archive_key).decode().splitlines(keepends=True)
    cut = max(i for i, ln in enumerate(lines) if '"__parentId"' not in ln)
    store.put_bytes(archive_key, "".join(lines[:cut]).encode())

    result = harness.daily("DEMO", day)
    assert not result.success
    evals = {e.asset_check_key.name: e.passed for e in result.get_asset_check_evaluations()}
    assert evals["rows_match_object_count"] is False
    assert "measurement_sales" not in {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()
                                       } and object_count > cut
    assert harness.watermark("DEMO") is None  # the run did not complete: watermark untouched


def test_the_measurement_sample_stays_bounded_for_a_long_backfill() -> None:
    stored = [date(2026, 1, 1) + timedelta(days=k) for k in range(90)]
    backfill = tuple(stored[40:70])
    picked = sample_days(stored, backfill, 8, "run-1/S/sales")
    assert len(picked) == 8
    assert {stored[40], stored[69], stored[0], stored[-1]} <= set(picked)
    assert len(set(picked) & set(backfill)) >= 4
    # A daily run's own day is always looked at; a small history is checked whole.
    assert stored[55] in sample_days(stored, (stored[55],), 8, "run-2/S/sales")
    assert sample_days(stored[:6], tuple(stored[:6]), 8, "run-3/S/sales") == stored[:6]


def _naive_figures(lines: list[RecheckLine], product_id: int) -> tuple[object, ...]:
    """The SPEC §5 figures the plain way: every line held, distinct orders as sets."""
    mine = [ln for ln in lines if ln.product_id == product_id]
    out: list[object] = []
    for window in (lambda ln: ln.in_7_days, lambda ln: True):
        kept = [ln for ln in mine if window(ln)]
        out += [sum(ln.current_quantity for ln in kept),
                sum((ln.current_quantity * ln.discounted_unit_price for ln in kept), Decimal(0)),
                len({ln.order_id for ln in kept if ln.current_quantity > 0})]
    return tuple(out)


def test_the_product_recomputation_folds_lines_as_holding_them_would() -> None:
    rng = random.Random(7)
    lines: list[RecheckLine] = []
    # Orders one after another (recheck_lines' order), each with lines of a few products,
    # some refunded to 0 or below, some ordered twice for one product.
    for order_id in range(1000, 1400):
        in_7 = rng.random() < 0.3
        for _ in range(rng.randint(1, 4)):
            lines.append(RecheckLine(rng.choice([1, 2, 3]), order_id, rng.choice([-1, 0, 1, 2, 3]),
                                     Decimal(rng.randint(1, 99_999)) / 100, in_7))
    got = recompute_figures(lines, [1, 2, 3, 4])
    for product_id in (1, 2, 3):
        assert got[product_id] == _naive_figures(lines, product_id)
    assert got[4] == (0, Decimal(0), 0, 0, Decimal(0), 0)  # no line in the 30 days: zeros, not missing


def test_the_product_check_reads_the_30_days_order_by_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    # Every backend: the in-7-days flag is a comparison in SQL, the order is the database's.
    for harness in make_harness(tmp_path, monkeypatch, db_url):
        _reads_the_30_days_order_by_order(harness)


def _reads_the_30_days_order_by_order(harness: Harness) -> None:
    from shopify_sync.warehouse.queries import product_sample, recheck_lines
    from shopify_sync.warehouse.tables import order_header, product

    day = yesterday()
    assert harness.daily("DEMO", day).success
    eng = harness.engine()
    sample = product_sample(eng, "DEMO", 1000)
    as_of = sample[0].as_of
    lines = list(recheck_lines(eng, "DEMO", [p.product_id for p in sample], as_of))
    assert lines
    # An order's lines come together: the fold counts distinct orders by the last one seen.
    orders = [ln.order_id for i, ln in enumerate(lines) if i == 0 or lines[i - 1].order_id != ln.order_id]
    assert len(orders) == len(set(orders))
    with eng.connect() as conn:
        processed = dict(conn.execute(sa.select(order_header.c.order_id, order_header.c.processed_at)
                                      .where(order_header.c.shop == "DEMO")).tuples().all())
    for ln in lines:
        when = processed[ln.order_id].date()
        assert as_of - timedelta(days=29) <= when <= as_of
        assert ln.in_7_days == (when >= as_of - timedelta(days=6))

    # A figure of the 7-day window that is off fails the check too.
    parts = split_by_shop([f"{day}|DEMO"])
    with eng.begin() as conn:
        pid = conn.execute(sa.select(product.c.product_id).where(product.c.orders_7d > 0).limit(1)).scalar_one()
        conn.execute(sa.update(product).where(product.c.product_id == pid).values(orders_7d=product.c.orders_7d - 1))
    wrong = evaluate_product_figures(eng, parts, sample=1000)
    assert not wrong.passed and str(pid) in wrong.metadata["mismatches"].value
    eng.dispose()
