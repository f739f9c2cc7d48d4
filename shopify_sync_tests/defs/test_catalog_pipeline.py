"""The catalog through the real sync job: emulator over HTTP, a real database (all three backends),
a local object store, a Dagster instance. Full refresh, incremental, deleted variant, crash and
re-run, concurrent operations on 2026-01 and serialisation on 2025-10; backfills leave it alone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shopify_sync.launch.inprocess import check_line, failed_checks
from shopify_sync.storage.keys import performance_key, sales_key
from shopify_sync.sync import TAG_FULL_CATALOG
from shopify_sync.vocab import JobStatus, Mode
from shopify_sync.warehouse import catalog, jobs
from shopify_sync.warehouse.tables import product, product_variant
from shopify_sync_tests.defs.conftest import Harness, make_harness, yesterday


@pytest.fixture
def catalog_harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str) -> Iterator[Harness]:
    # Operations take half a second, so two of them can be seen running at once.
    yield from make_harness(tmp_path, monkeypatch, db_url, extra_env={"SHOPIFY_API_VERSION": "2026-01"},
                            completion_seconds=0.5)


def catalog_ops(h: Harness) -> list[Any]:
    return [op for op in h.emulator.operations("DEMO") if "productVariants" in op.query]


def order_ops(h: Harness) -> list[Any]:
    return [op for op in h.emulator.operations("DEMO") if "orders(" in op.query]


def overlap(a: Any, b: Any) -> bool:
    return a.created_at < b.complete_at and b.created_at < a.complete_at


def variants(h: Harness) -> dict[int, dict[str, Any]]:
    engine = h.engine()
    try:
        with engine.connect() as conn:
            return {int(r["variant_id"]): dict(r) for r in conn.execute(sa.select(product_variant)).mappings()}
    finally:
        engine.dispose()


def test_full_then_incremental_then_deleted_with_concurrent_operations(catalog_harness: Harness) -> None:
    h, day = catalog_harness, yesterday()
    # The catalog's operation takes a few seconds (as a real one takes minutes): long enough
    # for the orders' operation to start while it runs, whatever the database's speed.
    h.emulator.faults.add("slow_completion", shop="DEMO", root="productVariants", seconds=4)
    h.emulator.faults.add("slow_completion", shop="DEMO", root="orders", seconds=3)
    assert h.daily("DEMO", day).success
    served = h.emulator.product_catalog.variants("DEMO")
    stored = variants(h)
    assert set(stored) == {v.id for v in served}  # full refresh: every variant of the catalog
    assert stored[served[0].id]["price"] == served[0].price
    # 2026-01: the catalog's operation ran while the orders' did
    (cat_op,), (ord_op,) = catalog_ops(h), order_ops(h)
    assert overlap(cat_op, ord_op) and "query:" not in cat_op.query
    engine = h.engine()
    try:
        with engine.connect() as conn:
            missing = conn.execute(sa.select(sa.func.count()).select_from(product)
                                   .where(product.c.vendor.is_(None))).scalar()
        assert missing == 0  # every product of the catalog carries vendor / type / stock

        changed, gone = served[5], served[6]
        h.emulator.product_catalog.set_stock("DEMO", changed.id, 4321)
        h.emulator.product_catalog.delete_variant("DEMO", gone.id)
        assert h.daily("DEMO", day).success
        second = catalog_ops(h)[-1]
        assert "updated_at:>=" in second.query and second.result.object_count < len(served) - 1
        stored = variants(h)
        assert stored[changed.id]["inventory_quantity"] == 4321
        assert stored[gone.id]["deleted_at"] is None  # an incremental run cannot see a deletion

        assert h.daily("DEMO", day, **{TAG_FULL_CATALOG: "true"}).success
        assert "query:" not in catalog_ops(h)[-1].query
        stored = variants(h)
        assert stored[gone.id]["deleted_at"] is not None and stored[changed.id]["deleted_at"] is None
        assert catalog.variants_without_product(engine, ["DEMO"]) == []
        assert catalog.get_state(engine, "DEMO").full_refresh_at is not None
    finally:
        engine.dispose()


def test_a_crash_mid_catalog_ingest_is_resumed_by_the_next_run(catalog_harness: Harness,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    h, day = catalog_harness, yesterday()
    original = catalog.ingest_catalog

    def crash_after_first_chunk(*args: Any, **kwargs: Any) -> Any:
        def on_chunk(line: int) -> None:
            raise RuntimeError(f"killed after line {line}")
        return original(*args, **{**kwargs, "on_chunk": on_chunk})

    monkeypatch.setattr(catalog, "ingest_catalog", crash_after_first_chunk)
    first = h.daily("DEMO", day)
    # The orders' work landed and the run succeeded (SPEC §3: the watermark moves only with a
    # successful run); the check catalog_synced fails, and the CLI's line carries it.
    assert first.success
    assert [e.step_key for e in first.all_events if e.is_step_failure] == []
    warnings = {c.check_name: check_line(c) for _, c in failed_checks(first)}
    # and the variants short of the operation's objectCount, which the same run cut off
    assert set(warnings) == {"catalog_synced", "catalog_rows_match_object_count"}
    assert warnings["catalog_synced"].startswith("check catalog_synced failed: DEMO: catalog sync_job ")
    assert "killed after line" in warnings["catalog_synced"]
    engine = h.engine()
    try:
        orders = jobs.latest_job_of_shop(engine, "DEMO")
        assert orders is not None and orders.job_type is Mode.DAILY_INCREMENTAL
        assert orders.status is JobStatus.COMPLETED and orders.open_lane is None
        assert h.watermark("DEMO") is not None
        assert h.store().exists(performance_key("DEMO", day)) and h.store().exists(sales_key("DEMO", day))
        failed = jobs.latest_job(engine, shop="DEMO", job_type=Mode.CATALOG, partition_key=orders.partition_key)
        assert failed is not None and failed.status is JobStatus.FAILED and "killed after line" in str(failed.last_error)
        assert 0 < failed.lines_committed < (failed.object_count or 0)
        monkeypatch.setattr(catalog, "ingest_catalog", original)
        ops_before = len(catalog_ops(h))
        assert h.daily("DEMO", day).success
        resumed = jobs.get_job(engine, failed.job_id)
        assert resumed is not None and resumed.status is JobStatus.COMPLETED and resumed.attempts == 2
        assert resumed.lines_committed == resumed.object_count == resumed.rows["product_variant"]
        assert len(catalog_ops(h)) == ops_before  # the archived file was reused: no new operation
        assert len(variants(h)) == len(h.emulator.product_catalog.variants("DEMO"))
    finally:
        engine.dispose()


def test_operations_are_serialised_before_2026_01(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 sqlite_url: str) -> None:
    for h in make_harness(tmp_path, monkeypatch, sqlite_url, extra_env={"SHOPIFY_API_VERSION": "2025-10"},
                          completion_seconds=0.5):
        assert h.daily("DEMO", yesterday()).success
        (cat_op,), (ord_op,) = catalog_ops(h), order_ops(h)
        assert not overlap(cat_op, ord_op)
        # one submission each: nothing was refused for running beside another operation
        assert len(h.run_queries("DEMO")) == len(h.run_queries("DEMO", "productVariants")) == 1


def test_a_backfill_does_not_fetch_the_catalog(harness: Harness) -> None:
    day = yesterday()
    assert harness.backfill("DEMO", day, day).success
    assert catalog_ops(harness) == []
    assert variants(harness) == {}


def catalog_jobs(h: Harness) -> list[Any]:
    from shopify_sync.warehouse.tables import sync_job

    engine = h.engine()
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.select(sync_job).where(sync_job.c.job_type == "CATALOG")
                                     .order_by(sync_job.c.created_at)).all())
    finally:
        engine.dispose()


@pytest.mark.parametrize("left", ["mid-ingest", "loaded"])
def test_the_next_days_catalog_step_settles_a_killed_runs_catalog_job(
        catalog_harness: Harness, monkeypatch: pytest.MonkeyPatch, left: str) -> None:
    """Day D's run is killed in its catalog (nothing marks its job failed, as after SIGKILL); the
    run of D+1 finishes (load complete) or closes D's CATALOG job, then completes its own."""
    h, d1 = catalog_harness, yesterday()
    d = d1 - timedelta(days=1)
    original = catalog.ingest_catalog

    def die_after_first_chunk(*args: Any, **kwargs: Any) -> Any:
        def on_chunk(line: int) -> None:
            raise RuntimeError(f"killed after line {line}")
        return original(*args, **{**kwargs, "on_chunk": on_chunk})

    with monkeypatch.context() as m:
        m.setattr(jobs, "fail_job", lambda *a, **k: None)
        if left == "mid-ingest":
            m.setattr(catalog, "ingest_catalog", die_after_first_chunk)
        else:  # killed after the job was marked loaded: its stock and watermark were not done
            m.setattr(catalog, "refresh_product_stock", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("kill")))
        killed = h.daily("DEMO", d)  # the orders' work succeeds; catalog_synced fails (ERROR)
        assert killed.success and any(c.check_name == "catalog_synced" for _, c in failed_checks(killed))
    [old] = catalog_jobs(h)
    assert old.partition_key == str(d) and old.status == ("downloaded" if left == "mid-ingest" else "loaded")
    second = h.daily("DEMO", d1)
    assert second.success
    old_after, new = catalog_jobs(h)
    assert old_after.job_id == old.job_id and new.partition_key == str(d1) and new.status == "completed"
    if left == "loaded":
        assert old_after.status == "completed"  # finished: its load was complete
    else:
        assert old_after.status == "failed" and old_after.last_error.startswith(f"closed by run {second.run_id}")
    assert set(variants(h)) >= {v.id for v in h.emulator.product_catalog.variants("DEMO")}
    engine = h.engine()
    try:
        assert catalog.get_state(engine, "DEMO").watermark_at is not None
    finally:
        engine.dispose()


def test_a_replay_reloads_the_runs_catalog_file_idempotently(catalog_harness: Harness) -> None:
    """Replaying a daily run re-loads its archived catalog file: a lost variant comes back, a
    variant deleted since stays deleted, the catalog watermark stays, twice gives the same state."""
    from shopify_sync.launch.inprocess import replay_launches

    h, day = catalog_harness, yesterday()
    first = h.daily("DEMO", day)
    assert first.success
    served = h.emulator.product_catalog.variants("DEMO")
    lost, gone = served[3], served[4]
    h.emulator.product_catalog.delete_variant("DEMO", gone.id)
    assert h.daily("DEMO", day, **{TAG_FULL_CATALOG: "true"}).success  # marks `gone` deleted
    engine = h.engine()
    try:
        with engine.begin() as conn:
            conn.execute(product_variant.delete().where(product_variant.c.variant_id == lost.id))
        state = catalog.get_state(engine, "DEMO")
        requests = len(h.emulator.request_log)
        snapshots = []
        for _ in range(2):
            [(label, tags, pkey)] = replay_launches(h.settings(), first.run_id)
            replay = h.job().execute_in_process(instance=h.instance, partition_key=pkey, tags=tags,
                                                raise_on_error=False)
            assert replay.success, label
            snapshots.append({k: {c: v for c, v in row.items() if c != "synced_at"} for k, row in variants(h).items()})
        assert len(h.emulator.request_log) == requests  # Shopify not called
        assert snapshots[0] == snapshots[1]
        stored = variants(h)
        assert lost.id in stored and stored[lost.id]["price"] == lost.price
        assert stored[gone.id]["deleted_at"] is not None  # the old file does not bring it back to life
        assert catalog.get_state(engine, "DEMO").watermark_at == state.watermark_at
        replay_jobs = [j for j in catalog_jobs(h) if j.partition_key.startswith("replay of ")]
        assert len(replay_jobs) == 2 and {j.status for j in replay_jobs} == {"completed"}
        assert all(j.archive_key == catalog_jobs(h)[0].archive_key for j in replay_jobs)
    finally:
        engine.dispose()


def test_measurements_take_the_catalogs_title_and_a_rename_restates_them(catalog_harness: Harness) -> None:
    """measurement_performance shows the catalog's product title; renaming a product in Shopify
    rewrites the stored objects of earlier days that show it, and the checks stay green."""
    h, d1 = catalog_harness, yesterday()
    d0 = d1 - timedelta(days=1)
    assert h.daily("DEMO", d0).success
    before = h.parquet(performance_key("DEMO", d0))
    pid = int(before["product_id"][0])
    h.emulator.product_catalog.rename_product("DEMO", pid, "Renamed in Shopify")
    run = h.daily("DEMO", d1)
    assert run.success
    assert all(e.passed for e in run.get_asset_check_evaluations())
    for day in (d0, d1):
        frame = h.parquet(performance_key("DEMO", day))
        titles = dict(zip(frame["product_id"].to_list(), frame["title"].to_list(), strict=True))
        assert titles.get(pid, "Renamed in Shopify") == "Renamed in Shopify", day
    engine = h.engine()
    try:
        with engine.connect() as conn:
            title = conn.execute(sa.select(product.c.title).where(product.c.product_id == pid)).scalar_one()
        assert title == "Renamed in Shopify"
    finally:
        engine.dispose()


def test_a_run_of_the_metrics_alone_is_not_failed_for_the_catalog(harness: Harness) -> None:
    """catalog_synced judges only runs that include the catalog's assets (a UI subset may not)."""
    import dagster as dg

    from shopify_sync.launch.plan import daily_launch

    day = yesterday()
    assert harness.daily("DEMO", day).success
    _, tags, pkey = daily_launch("DEMO", day)
    subset = harness.job().execute_in_process(instance=harness.instance, partition_key=pkey, tags=tags,
                                              asset_selection=[dg.AssetKey("measurement_performance")],
                                              raise_on_error=False)
    assert subset.success
    checks = {e.asset_check_key.name: e for e in subset.get_asset_check_evaluations()}
    assert checks["catalog_synced"].passed and "skipped" in checks["catalog_synced"].metadata
