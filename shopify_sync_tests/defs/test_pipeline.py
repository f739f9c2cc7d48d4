"""The whole asset graph in-process against the emulator over real HTTP (SPEC §3, §5, §6, §9).

Each test launches the real ``shopify_sync_job`` on an isolated Dagster instance and
checks what landed in the warehouse, the object store and the emulator's request log.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from shopify_sync.launch.inprocess import first_failure, replay_launches
from shopify_sync.launch.plan import backfill_launch, daily_launch
from shopify_sync_tests.defs import expected
from shopify_sync_tests.defs.conftest import Harness, make_harness, yesterday


def _checks(result) -> dict[str, bool]:
    return {e.asset_check_key.name: e.passed for e in result.get_asset_check_evaluations()}


def _count(h: Harness, table: str, shop: str) -> int:
    from shopify_sync.warehouse import tables

    t = getattr(tables, table)
    eng = h.engine()
    try:
        with eng.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c.shop == shop)).scalar_one()
    finally:
        eng.dispose()


def _jobs(h: Harness, shop: str) -> list:
    from shopify_sync.warehouse.tables import sync_job as t

    eng = h.engine()
    try:
        with eng.connect() as conn:
            # The orders' jobs (a daily run also has its catalog's, job type CATALOG: test_catalog_pipeline).
            return conn.execute(sa.select(t).where(t.c.shop == shop, t.c.job_type != "CATALOG")
                                .order_by(t.c.created_at)).all()
    finally:
        eng.dispose()


def _utc(ts):
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts


def _telemetry(h: Harness, run_id: str) -> list[dict]:
    store = h.store()
    keys = sorted(k for k in store.list_keys("telemetry/sync/") if f"/{run_id}/" in k)
    return [json.loads(store.get_bytes(k)) for k in keys]


@pytest.fixture
def backend_harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str) -> Iterator[Harness]:
    yield from make_harness(tmp_path, monkeypatch, db_url)


def test_daily_run_end_to_end_on_every_backend(backend_harness: Harness) -> None:
    """A daily incremental run, the metrics it produced vs the dataset, then an identical rerun."""
    h = backend_harness
    orders = h.emulator.orders("DEMO")
    coverage = expected.dataset_coverage(orders)
    assert all(v > 0 for v in coverage.values()), coverage  # test, cancelled, refunded, lines without product
    # The day with the most counted orders in the last week, so the comparison has substance.
    counted_days = [o.processed_at.date() for o in orders if expected.counted(o)]
    day = max((yesterday() - timedelta(days=i) for i in range(7)), key=counted_days.count)

    result = h.daily("DEMO", day)
    assert result.success
    checks = _checks(result)
    assert set(checks) == {"rows_match_object_count", "no_duplicate_sales_keys", "product_figures_match_line_items",
                           "telemetry_completed", "shop_freshness", "watermark_not_regressed",
                           "stored_measurements_are_current",
                           "catalog_rows_match_object_count", "variant_has_product", "sales_sku_matches_catalog",
                           "catalog_synced"}
    assert all(checks.values()), checks

    assert _count(h, "order_header", "DEMO") == len(orders)  # floor (128 d) covers the 30-day dataset
    assert _count(h, "order_line_item", "DEMO") == sum(len(o.line_items) for o in orders)
    assert _count(h, "order_refund", "DEMO") == sum(len(o.refunds) for o in orders)

    # One bulk operation, its id stored, its raw file archived under the SPEC key.
    assert len(h.run_queries("DEMO")) == 1
    [job] = _jobs(h, "DEMO")
    assert job.status == "completed" and job.bulk_operation_id and job.job_type == "DAILY_INCREMENTAL"
    assert job.archive_key == f"raw/shopify/shop=DEMO/DAILY_INCREMENTAL/date={day}/{result.run_id}.jsonl"
    assert h.store().exists(job.archive_key)
    assert job.lines_committed == job.object_count

    # Missing watermark → the floor; success → max(updated_at) fetched.
    now = datetime.now(UTC)
    assert abs(_utc(job.window_start) - (now - timedelta(days=128))) < timedelta(minutes=5)
    assert job.window_end is None
    assert h.watermark("DEMO") == max(o.updated_at for o in orders)

    # Telemetry: the steps in order, completed last, with the run's identity and no secret.
    records = _telemetry(h, result.run_id)
    steps = [r["step"] for r in records]
    for step in ("initiated", "requested", "polling", "downloading", "upserting", "transforming"):
        assert step in steps, steps
    assert steps[-1] == "completed"
    # The catalog's steps share the run's stream with their own job type (test_catalog_pipeline).
    assert all(r["job_type"] in {"DAILY_INCREMENTAL", "CATALOG"} and r["initiator"] == "user" for r in records)
    assert records[-1]["job_type"] == "DAILY_INCREMENTAL"
    assert records[-1]["watermark_after"] is not None and records[-1]["object_count"] == job.object_count
    assert "shpat_" not in json.dumps(records)

    # Operator metadata on the raw asset.
    md = result.asset_materializations_for_node("shopify_bulk_jsonl")[0].metadata
    assert md["object_count"].value == job.object_count
    assert md["bulk_operation_id"].value == job.bulk_operation_id
    assert "updated_at" in md["window"].value
    # Typed values: a count is an int, an instant a timestamp (a first run has no watermark yet).
    assert isinstance(md["object_count"], dg.IntMetadataValue)
    assert isinstance(md["watermark_before"], dg.NullMetadataValue)
    perf_md = result.asset_materializations_for_node("measurement_performance")[0].metadata
    assert isinstance(perf_md["watermark_after"], dg.TimestampMetadataValue)
    assert perf_md["watermark_after"].value == h.watermark("DEMO").timestamp()
    assert perf_md["watermark_touched"].value is True
    tables_md = result.asset_materializations_for_node("order_tables")[0].metadata
    assert tables_md["ingest_rows_per_s"].value > 0 and tables_md["ingest_seconds"].value > 0
    assert tables_md["orders_skipped_older"].value == 0 and tables_md["chunks_redone_as_upserts"].value == 0
    assert "warehouse_cache_warning" not in tables_md  # a few orders fit any buffer pool
    # The rows as a Markdown table: per order table, upserted by the run and stored for the shop.
    for mat in result.asset_materializations_for_node("order_tables"):
        table = mat.asset_key.path[-1]
        row = f"| {table} | {mat.metadata['rows_upserted'].value} | {mat.metadata['dagster/row_count'].value} |"
        assert row in mat.metadata["rows"].value.splitlines(), (row, mat.metadata["rows"].value)
    events_object = tables_md["commerce_events_object"].value
    assert events_object.startswith("telemetry/commerce/date=") and events_object.endswith(f"/{result.run_id}.jsonl")
    assert h.store().get_bytes(events_object)

    _assert_metrics(h, orders, day)

    # A rerun: byte-identical measurement objects, no duplicate rows, same watermark.
    store = h.store()
    keys = [f"measurement/sales/shop=DEMO/date={day}/part-0.parquet",
            f"measurement/performance/shop=DEMO/date={day}/part-0.parquet"]
    first = [store.get_bytes(k) for k in keys]
    counts = {t: _count(h, t, "DEMO") for t in ("order_header", "order_line_item", "order_refund", "product")}
    wm = h.watermark("DEMO")
    second = h.daily("DEMO", day)
    assert second.success and all(_checks(second).values())
    assert [store.get_bytes(k) for k in keys] == first
    assert {t: _count(h, t, "DEMO") for t in counts} == counts
    assert h.watermark("DEMO") == wm
    assert len(store.list_keys("measurement/sales/shop=DEMO/")) == 1


def _assert_metrics(h: Harness, orders: list, day) -> None:
    """measurement_sales, measurement_performance and product vs SPEC §5 computed from the dataset."""
    want_sales = expected.sales(orders, "DEMO", day)
    got = h.parquet(f"measurement/sales/shop=DEMO/date={day}/part-0.parquet")
    assert set(got.columns) >= {"shop", "date", "product_id", "variant_id", "sku", "currency_code", "orders",
                                "units_ordered", "units_net", "gross_sales", "net_sales"}
    assert str(got.schema["gross_sales"]).startswith("Decimal") and str(got.schema["product_id"]) == "Int64"
    got_sales = {(r["product_id"], r["variant_id"]): r for r in got.to_dicts()}
    assert set(got_sales) == set(want_sales) and want_sales
    for key, want in want_sales.items():
        row = got_sales[key]
        assert str(row["date"]) == day.isoformat() and row["shop"] == "DEMO"
        for col in ("orders", "units_ordered", "units_net", "gross_sales", "net_sales", "sku", "currency_code"):
            assert row[col] == want[col], (key, col, row[col], want[col])

    want_perf = expected.performance(orders, day)
    perf = h.parquet(f"measurement/performance/shop=DEMO/date={day}/part-0.parquet")
    got_perf = {r["product_id"]: r for r in perf.to_dicts()}
    assert set(got_perf) == set(want_perf)
    for pid, want in want_perf.items():
        for col, value in want.items():
            assert got_perf[pid][col] == value, (pid, col)

    from shopify_sync.warehouse.tables import product

    eng = h.engine()
    with eng.connect() as conn:
        rows = {r.product_id: r for r in conn.execute(sa.select(product).where(product.c.shop == "DEMO"))}
    eng.dispose()
    for pid, want in want_perf.items():
        r = rows[pid]
        assert (r.units_7d, Decimal(str(r.net_sales_7d)), r.orders_7d) == (
            want["units_7d"], want["net_sales_7d"], want["orders_7d"])
        assert (r.units_30d, Decimal(str(r.net_sales_30d)), r.orders_30d) == (
            want["units_30d"], want["net_sales_30d"], want["orders_30d"])
        assert r.metrics_as_of == day
    for pid, r in rows.items():  # products outside the window show 0, never a stale figure
        if pid not in want_perf:
            assert (r.units_30d, Decimal(str(r.net_sales_30d)), r.orders_30d) == (0, 0, 0)


def test_watermark_rules(harness: Harness) -> None:
    day = yesterday()
    emu = harness.emulator
    assert harness.watermark("DEMO") is None

    # A backfill never touches the watermark, not even a missing one.
    assert harness.backfill("DEMO", day - timedelta(days=2), day).success
    assert harness.watermark("DEMO") is None

    assert harness.daily("DEMO", day).success
    wm1 = harness.watermark("DEMO")
    assert wm1 == max(o.updated_at for o in emu.orders("DEMO"))

    # Advance on success: a newer update is fetched (window = watermark - lookback) and moves it.
    target = emu.orders("DEMO")[0]
    updated = emu.update_order("DEMO", target.id, at=wm1 + timedelta(minutes=3), financial_status="REFUNDED")
    second = harness.daily("DEMO", day)
    assert second.success
    # The change is in this run's COMMERCE_TELEMETRY.
    from shopify_sync.telemetry import read_commerce_events

    created = harness.instance.get_run_record_by_id(second.run_id).create_timestamp
    events = read_commerce_events(harness.store(), created, second.run_id)
    mine = [e for e in events if e["order_id"] == target.id and e["event"] == "status_changed"]
    assert mine and mine[0]["after"]["financial_status"] == "REFUNDED"
    latest = _jobs(harness, "DEMO")[-1]
    assert _utc(latest.window_start) == wm1 - timedelta(minutes=15)
    assert harness.watermark("DEMO") == updated.updated_at

    # Unchanged on failure: Shopify fails the operation with ACCESS_DENIED.
    wm2 = harness.watermark("DEMO")
    emu.update_order("DEMO", target.id, at=wm2 + timedelta(minutes=3), financial_status="PAID")
    emu.faults.add("bulk_failed", times=1, error_code="ACCESS_DENIED")
    failed = harness.daily("DEMO", day)
    assert not failed.success
    assert harness.watermark("DEMO") == wm2
    job = _jobs(harness, "DEMO")[-1]
    assert job.status == "failed" and "ACCESS_DENIED" in (job.last_error or "")
    records = _telemetry(harness, failed.run_id)
    assert records[-1]["step"] == "failed" and records[-1]["error"]["type"] == "AccessDenied"

    # Never backwards: a watermark ahead of anything Shopify returns stays put.
    from shopify_sync.warehouse.tables import sync_watermark

    ahead = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    eng = harness.engine()
    with eng.begin() as conn:
        conn.execute(sa.update(sync_watermark).where(sync_watermark.c.shop == "DEMO").values(watermark_at=ahead))
    eng.dispose()
    assert harness.daily("DEMO", day).success
    assert harness.watermark("DEMO") == ahead

    # Untouched by a backfill once it exists.
    assert harness.backfill("DEMO", day - timedelta(days=1), day).success
    assert harness.watermark("DEMO") == ahead


def test_backfill_over_several_days_and_two_shops(two_shop_harness: Harness) -> None:
    h = two_shop_harness
    end = yesterday()
    start = end - timedelta(days=4)
    # One run whose range spans both shops (Dagster's backfill makes one run per shop; a
    # hand-made range may span shops): the shops are processed one after another.

    _, tags, _ = backfill_launch("DA", start, end)
    tags["dagster/asset_partition_range_end"] = f"{end}|DE"
    del tags["shopify_sync/shop"]
    result = h.job().execute_in_process(instance=h.instance, tags=tags, raise_on_error=False)
    assert result.success
    checks = _checks(result)
    # No daily sync ever ran for these shops: freshness says so, as a warning only.
    assert checks.pop("shop_freshness") is False
    [fresh] = [e for e in result.get_asset_check_evaluations() if e.asset_check_key.name == "shop_freshness"]
    assert fresh.severity.value == "WARN"
    assert all(checks.values()), checks
    # In series: DA's bulk operation was requested before DE's.
    order = [e.shop for e in h.emulator.request_log if e.kind == "run_query"]
    assert order == ["DA", "DE"]

    lo = datetime(start.year, start.month, start.day, tzinfo=UTC)
    hi = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
    store = h.store()
    for shop in ("DA", "DE"):
        # One bulk operation per shop for the whole range, on created_at.
        assert len(h.run_queries(shop)) == 1
        [job] = _jobs(h, shop)
        assert job.job_type == "FULL_BACKFILL_EXECUTE" and job.partition_key == f"{start}..{end}"
        assert (_utc(job.window_start), _utc(job.window_end)) == (lo, hi)
        in_range = [o for o in h.emulator.orders(shop) if lo <= o.created_at < hi]
        assert _count(h, "order_header", shop) == len(in_range) > 0
        for i in range(5):
            d = start + timedelta(days=i)
            assert store.exists(f"measurement/sales/shop={shop}/date={d}/part-0.parquet")
            assert store.exists(f"measurement/performance/shop={shop}/date={d}/part-0.parquet")
        assert h.watermark(shop) is None
    records = _telemetry(h, result.run_id)
    assert {r["initiator"] for r in records} == {"backfill"}
    assert {r["job_type"] for r in records} == {"FULL_BACKFILL_EXECUTE"}
    assert {r["shop"] for r in records if r["step"] == "completed"} == {"DA", "DE"}


def test_replay_reparses_the_archive_without_shopify(harness: Harness) -> None:

    day = yesterday()
    first = harness.daily("DEMO", day)
    assert first.success
    counts = {t: _count(harness, t, "DEMO") for t in ("order_header", "order_line_item", "order_refund")}
    wm = harness.watermark("DEMO")
    before = len(harness.emulator.request_log)

    [(label, tags, pkey)] = replay_launches(harness.settings(), first.run_id)
    replay = harness.job().execute_in_process(instance=harness.instance, partition_key=pkey, tags=tags,
                                              raise_on_error=False)
    assert replay.success, label
    assert len(harness.emulator.request_log) == before  # Shopify not called
    assert {t: _count(harness, t, "DEMO") for t in counts} == counts
    assert harness.watermark("DEMO") == wm
    job = _jobs(harness, "DEMO")[-1]
    assert job.job_type == "REPLAY" and job.status == "completed"


def test_a_rerun_reuses_the_archived_file_and_continues_the_job(harness: Harness) -> None:
    """Step 1 succeeded, the run stopped there: the next run continues the same sync_job,
    does not call Shopify again and loads the archived file."""


    day = yesterday()
    _, tags, pkey = daily_launch("DEMO", day)
    only_fetch = harness.job().execute_in_process(
        instance=harness.instance, partition_key=pkey, tags=tags,
        asset_selection=[dg.AssetKey("shopify_bulk_jsonl")], raise_on_error=False)
    assert only_fetch.success
    [job] = _jobs(harness, "DEMO")
    assert job.status == "downloaded" and job.archive_key and job.lines_committed == 0
    assert _count(harness, "order_header", "DEMO") == 0
    assert harness.watermark("DEMO") is None

    rerun = harness.daily("DEMO", day)
    assert rerun.success
    assert len(harness.run_queries("DEMO")) == 1
    [again] = _jobs(harness, "DEMO")
    assert again.job_id == job.job_id and again.status == "completed" and again.attempts == 2
    assert again.archive_key == job.archive_key  # the first run's file, not a new download
    md = rerun.asset_materializations_for_node("shopify_bulk_jsonl")[0].metadata
    assert md["reused_archive"].value is True and md["resumed_job"].value is True
    assert _count(harness, "order_header", "DEMO") == len(harness.emulator.orders("DEMO"))
    assert harness.watermark("DEMO") == max(o.updated_at for o in harness.emulator.orders("DEMO"))


def _fetch_then_crash_after_two_chunks(harness: Harness, tmp_path: Path) -> tuple[Any, Any, Path]:
    """Run only the fetch step for yesterday, then a load that dies after two 37-line
    chunks: (the day, its sync_job, the archived file as downloaded)."""

    from shopify_sync.warehouse import jobs
    from shopify_sync.warehouse.ingest import ingest_jsonl

    day = yesterday()
    _, tags, pkey = daily_launch("DEMO", day)
    assert harness.job().execute_in_process(
        instance=harness.instance, partition_key=pkey, tags=tags,
        asset_selection=[dg.AssetKey("shopify_bulk_jsonl")], raise_on_error=False).success
    eng = harness.engine()
    job = jobs.find_resumable_job(eng, "DEMO", "DAILY_INCREMENTAL", str(day))
    raw = tmp_path / "raw.jsonl"
    harness.store().download_file(job.archive_key, raw)

    class Crash(Exception):
        pass

    seen: list[int] = []

    def crash_after_two(progress) -> None:
        seen.append(progress.end_line)
        if len(seen) == 2:
            raise Crash("simulated kill after the second chunk")

    with pytest.raises(Crash):
        ingest_jsonl(eng, raw, shop="DEMO", job_id=job.job_id, chunk_rows=37, on_chunk=crash_after_two)
    committed = jobs.get_job(eng, job.job_id).lines_committed
    assert committed == 74 < job.object_count
    eng.dispose()
    return day, job, raw


def test_an_interrupted_ingest_resumes_after_the_last_committed_chunk(harness: Harness, tmp_path: Path) -> None:
    """The load crashed after two committed chunks; the rerun continues from there."""
    day, job, _ = _fetch_then_crash_after_two_chunks(harness, tmp_path)

    rerun = harness.daily("DEMO", day)
    assert rerun.success and all(_checks(rerun).values())
    md = rerun.asset_materializations_for_node("order_tables")[0].metadata
    assert md["resumed_from_line"].value == 74
    assert "ingest_rows_per_s" not in md  # its rows include the chunks committed before the crash
    # The run's COMMERCE_TELEMETRY has every order, those of the two chunks committed before the
    # crash included (their change records were stored with them), and the store is emptied.
    from shopify_sync.telemetry import read_commerce_events
    from shopify_sync.warehouse.tables import sync_job_changes

    created = harness.instance.get_run_record_by_id(rerun.run_id).create_timestamp
    events = read_commerce_events(harness.store(), created, rerun.run_id)
    assert sorted(e["order_id"] for e in events if e["event"] == "created") == sorted(
        o.id for o in harness.emulator.orders("DEMO"))
    check = harness.engine()
    with check.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(sync_job_changes)).scalar_one() == 0
    check.dispose()
    assert len(harness.run_queries("DEMO")) == 1
    orders = harness.emulator.orders("DEMO")
    assert _count(harness, "order_header", "DEMO") == len(orders)
    assert _count(harness, "order_line_item", "DEMO") == sum(len(o.line_items) for o in orders)
    [done] = _jobs(harness, "DEMO")
    assert done.job_id == job.job_id and done.lines_committed == done.object_count
    assert harness.watermark("DEMO") == max(o.updated_at for o in orders)


def test_a_refetched_file_is_ingested_from_its_first_line(harness: Harness, tmp_path: Path) -> None:
    """The load crashed after two chunks, then the archived file was lost (a lifecycle rule,
    a new SHOPIFY_SYNC_STORAGE_URL) and the bulk operation expired: the rerun fetches a new
    file, in which the committed line count means nothing. Resuming at line 74 of it would
    skip orders that were never written."""
    from shopify_sync.telemetry import read_commerce_events

    day, job, raw = _fetch_then_crash_after_two_chunks(harness, tmp_path)
    first_ids = [int(json.loads(line)["id"].rsplit("/", 1)[1]) for line in raw.read_text().splitlines()[:74]
                 if "__parentId" not in line]

    harness.store().delete(job.archive_key)
    em = harness.emulator
    em.advance(8 * 86400)  # past the result URL's 7 days: the stored operation is resubmitted
    for order_id in first_ids[:3]:  # the new file's lines no longer line up with the old one's
        em.update_order("DEMO", order_id, fulfillment_status="FULFILLED")

    rerun = harness.daily("DEMO", day)
    assert rerun.success and all(_checks(rerun).values())
    assert len(harness.run_queries("DEMO")) == 2  # the expired operation was resubmitted
    md = rerun.asset_materializations_for_node("order_tables")[0].metadata
    assert md["resumed_from_line"].value == 0  # the new file from its first line
    orders = harness.emulator.orders("DEMO")
    assert _count(harness, "order_header", "DEMO") == len(orders)
    assert _count(harness, "order_line_item", "DEMO") == sum(len(o.line_items) for o in orders)
    [done] = _jobs(harness, "DEMO")
    assert done.lines_committed == done.object_count
    # The first attempt's committed chunks keep their change records: every order is
    # reported created once, those of the first 74 lines included.
    created = harness.instance.get_run_record_by_id(rerun.run_id).create_timestamp
    events = read_commerce_events(harness.store(), created, rerun.run_id)
    assert sorted(e["order_id"] for e in events if e["event"] == "created") == sorted(o.id for o in orders)


def test_a_load_killed_after_writing_its_events_never_writes_them_twice(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The load wrote the commerce events object, then died before deleting the job's change
    records: the rerun completes that same object instead of writing every event again
    under its own run id."""
    import shopify_sync.warehouse as warehouse

    real_delete = warehouse.delete_job_changes

    def die(engine, job_id) -> None:
        raise RuntimeError("simulated kill after the events were written")

    monkeypatch.setattr(warehouse, "delete_job_changes", die)
    day = yesterday()
    first = harness.daily("DEMO", day)
    assert not first.success
    [job] = _jobs(harness, "DEMO")
    assert job.events_key and first.run_id in job.events_key
    store = harness.store()
    assert store.get_bytes(job.events_key)  # written before the simulated kill

    monkeypatch.setattr(warehouse, "delete_job_changes", real_delete)
    rerun = harness.daily("DEMO", day)
    assert rerun.success
    [done] = _jobs(harness, "DEMO")
    assert done.job_id == job.job_id and done.status == "completed" and done.events_key == job.events_key
    md = rerun.asset_materializations_for_node("order_tables")[0].metadata
    assert md["commerce_events_object"].value == job.events_key  # the UI says where they went
    lines = [json.loads(ln) for k in store.list_keys("telemetry/commerce/")
             for ln in store.get_bytes(k).decode().splitlines() if ln.strip()]
    created = [e["order_id"] for e in lines if e["event"] == "created"]
    assert sorted(created) == sorted(o.id for o in harness.emulator.orders("DEMO"))  # each exactly once
    assert len(lines) == len({json.dumps(e, sort_keys=True) for e in lines})


def test_a_rejected_token_fails_clearly_and_never_leaks(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "shpat_0123456789abcdefWRONG"
    monkeypatch.setenv("SHOPIFY_DEMO_TOKEN", secret)
    result = harness.daily("DEMO", yesterday())
    assert not result.success

    message = first_failure(result)
    assert "shopify_bulk_jsonl" in message and "SHOPIFY_DEMO_TOKEN" in message
    # Nowhere: not in Dagster's event log, the run's tags, telemetry, or the sync_job row.
    logs = harness.instance.all_logs(result.run_id)
    assert secret not in "\n".join(str(e) for e in logs)
    assert secret not in json.dumps(dict(harness.instance.get_run_by_id(result.run_id).tags))
    assert secret not in json.dumps(_telemetry(harness, result.run_id))
    [job] = _jobs(harness, "DEMO")
    assert job.status == "failed" and secret not in (job.last_error or "") and job.last_error
    assert harness.watermark("DEMO") is None


def test_an_undersized_buffer_pool_is_a_warning_not_a_failure(harness: Harness,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from shopify_sync.defs.assets import ingest as ingest_assets
    from shopify_sync.warehouse.sizing import CacheFootprint

    monkeypatch.setattr(ingest_assets, "cache_footprint", lambda _engine: CacheFootprint(128 << 20, 615 << 20))
    result = harness.daily("DEMO", yesterday())
    assert result.success
    for mat in result.asset_materializations_for_node("order_tables"):
        warning = mat.metadata["warehouse_cache_warning"].value
        assert "128 MB" in warning and "615 MB" in warning and "docs/deploy.md" in warning
