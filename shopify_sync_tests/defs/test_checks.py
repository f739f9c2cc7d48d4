"""Every SPEC §9 check passes on a good run and fails on deliberately broken data."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from unittest import mock

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
    sample_days,
)
from shopify_sync.defs.partitions import split_by_shop
from shopify_sync.launch.plan import daily_launch
from shopify_sync.sync import FinishOutcome, Initiator, Mode, RunInfo
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


def test_the_product_recomputation_equals_a_plain_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    # Every backend: the windows are comparisons in SQL, the money sums the Money type's.
    for harness in make_harness(tmp_path, monkeypatch, db_url):
        _equals_a_plain_count(harness)


def _plain_figures(lines: list[tuple[int, int, int, Decimal, datetime]], product_id: int,
                   as_of: date) -> tuple[object, ...]:
    """The SPEC §5 figures the plain way: every line held, distinct orders as sets."""
    out: list[object] = []
    for first in (as_of - timedelta(days=6), as_of - timedelta(days=29)):
        kept = [ln for ln in lines if ln[0] == product_id and first <= ln[4].date() <= as_of]
        out += [sum(ln[2] for ln in kept), sum((ln[2] * ln[3] for ln in kept), Decimal(0)),
                len({ln[1] for ln in kept if ln[2] > 0})]
    return tuple(out)


def _equals_a_plain_count(harness: Harness) -> None:
    from shopify_sync.warehouse.queries import product_sample, recheck_product_figures
    from shopify_sync.warehouse.tables import order_header, order_line_item, product

    day = yesterday()
    assert harness.daily("DEMO", day).success
    eng = harness.engine()
    sample = product_sample(eng, "DEMO")
    as_of = sample[0].as_of
    li, oh = order_line_item, order_header
    with eng.connect() as conn:
        lines = [(int(r[0]), int(r[1]), int(r[2] or 0), r[3], r[4]) for r in conn.execute(
            sa.select(li.c.product_id, li.c.order_id, li.c.current_quantity, li.c.discounted_unit_price,
                      oh.c.processed_at)
            .join(oh, sa.and_(oh.c.shop == li.c.shop, oh.c.order_id == li.c.order_id))
            .where(oh.c.shop == "DEMO", oh.c.test.is_(False), oh.c.cancelled_at.is_(None),
                   li.c.product_id.is_not(None)))]
    ids = [p.product_id for p in sample]
    got = recheck_product_figures(eng, "DEMO", [*ids, 999_999], as_of)
    assert got[999_999] == (0, Decimal(0), 0, 0, Decimal(0), 0)  # no line in the 30 days: zeros
    assert any(got[i][3] for i in ids)
    for product_id in ids:
        assert got[product_id] == _plain_figures(lines, product_id, as_of)
    # SQLite reads either the window's orders or every line (by the shop's history): both agree.
    from shopify_sync.warehouse import queries
    for line_driven in (False, True):
        with mock.patch.object(queries, "_window_is_most_history", lambda *_a, _v=line_driven: _v):
            assert recheck_product_figures(eng, "DEMO", [*ids, 999_999], as_of) == got
    if getattr(eng.dialect, "is_mariadb", False):
        # MariaDB joins by batched key access for the check, and the session is put back.
        with eng.connect() as conn:
            def settings() -> tuple[object, ...]:
                return tuple(conn.exec_driver_sql(
                    "SELECT @@SESSION.join_cache_level, @@SESSION.optimizer_switch, @@SESSION.join_buffer_size").one())
            before = settings()
            with queries._batched_key_access(conn):
                level, switches, _ = settings()
                assert level == 6 and {"mrr=on", "mrr_sort_keys=on", "join_cache_bka=on"} <= set(str(switches).split(","))
            assert settings() == before

    # A figure of the 7-day window that is off fails the check too.
    parts = split_by_shop([f"{day}|DEMO"])
    with eng.begin() as conn:
        pid = conn.execute(sa.select(product.c.product_id).where(product.c.orders_7d > 0).limit(1)).scalar_one()
        conn.execute(sa.update(product).where(product.c.product_id == pid).values(orders_7d=product.c.orders_7d - 1))
    wrong = evaluate_product_figures(eng, parts, sample=1000)
    assert not wrong.passed and str(pid) in wrong.metadata["mismatches"].value
    eng.dispose()
