"""sync_job / sync_watermark accessors on the three real backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shopify_sync.warehouse import jobs, make_engine


def test_job_lifecycle_and_resume_lookup(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        start = datetime(2026, 11, 22, tzinfo=UTC)
        job = jobs.create_job(engine, shop="DEMO", job_type="DAILY_INCREMENTAL", partition_key="2026-11-22",
                              run_id="run-1", initiator="cron", window_start=start,
                              window_end=start + timedelta(days=1))
        assert job.status == "created" and job.lines_committed == 0 and job.attempts == 1
        assert job.window_start == start  # stored naive UTC, read back aware

        found = jobs.find_resumable_job(engine, "DEMO", "DAILY_INCREMENTAL", "2026-11-22")
        assert found is not None and found.job_id == job.job_id
        assert jobs.find_resumable_job(engine, "DEMO", "FULL_BACKFILL_EXECUTE", "2026-11-22") is None
        assert jobs.find_resumable_job(engine, "OTHER", "DAILY_INCREMENTAL", "2026-11-22") is None

        jobs.update_job(engine, job.job_id, bulk_operation_id="gid://shopify/BulkOperation/1", status="polling",
                        rows={"order_header": 2, "order_line_item": 5})
        got = jobs.get_job(engine, job.job_id)
        assert got is not None and got.status == "polling"
        assert got.bulk_operation_id == "gid://shopify/BulkOperation/1"
        assert jobs.job_rows(got) == {"order_header": 2, "order_line_item": 5}
        assert got.updated_at >= job.updated_at

        jobs.update_job(engine, job.job_id, status="completed")
        assert jobs.find_resumable_job(engine, "DEMO", "DAILY_INCREMENTAL", "2026-11-22") is None

        with pytest.raises(ValueError, match="no updatable column 'nope'"):
            jobs.update_job(engine, job.job_id, nope=1)
        with pytest.raises(LookupError, match="no sync_job"):
            jobs.update_job(engine, "missing", status="failed")
    finally:
        engine.dispose()


def test_watermark_never_moves_backwards(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert jobs.get_watermark(engine, "DEMO") is None
        t1 = datetime(2026, 11, 22, 10, 0, 0, 500000, tzinfo=UTC)
        assert jobs.advance_watermark(engine, "DEMO", t1, run_id="a") == t1.replace(tzinfo=None)
        assert jobs.get_watermark(engine, "DEMO") == t1.replace(tzinfo=None)
        # older candidate: unchanged
        assert jobs.advance_watermark(engine, "DEMO", t1 - timedelta(hours=1), run_id="b") == t1.replace(tzinfo=None)
        assert jobs.get_watermark(engine, "DEMO") == t1.replace(tzinfo=None)
        t2 = t1 + timedelta(minutes=5)
        jobs.advance_watermark(engine, "DEMO", t2, run_id="c")
        assert jobs.get_watermark(engine, "DEMO") == t2.replace(tzinfo=None)
        # shops are independent
        assert jobs.get_watermark(engine, "OTHER") is None
        with pytest.raises(TypeError, match="must be a datetime"):
            jobs.advance_watermark(engine, "DEMO", "2026-11-22", run_id="d")  # type: ignore[arg-type]
    finally:
        engine.dispose()


def test_restarting_a_jobs_ingest_keeps_its_change_records_in_order(db_url: str) -> None:
    """A new file for a job restarts its ingest at line 0; the change records already
    committed move below every start line an ingest uses, in their order, on every backend,
    also when an earlier restart already moved some."""
    import sqlalchemy as sa

    from shopify_sync.warehouse import restart_job_ingest
    from shopify_sync.warehouse.tables import sync_job_changes as t

    engine = make_engine(db_url)
    try:
        job = jobs.create_job(engine, shop="DEMO", job_type="DAILY_INCREMENTAL", partition_key="2026-11-22")
        jobs.update_job(engine, job.job_id, lines_committed=30, rows={"order_header": 9},
                        max_updated_at=datetime(2026, 11, 22, 5, tzinfo=UTC))

        def add(*starts: int) -> None:
            with engine.begin() as conn:
                conn.execute(t.insert(), [{"job_id": job.job_id, "start_line": s, "end_line": s + 10,
                                           "payload": f"chunk {s}".encode()} for s in starts])

        def stored() -> list[tuple[int, bytes]]:
            with engine.connect() as conn:
                return [(r.start_line, bytes(r.payload)) for r in conn.execute(
                    sa.select(t.c.start_line, t.c.payload).where(t.c.job_id == job.job_id).order_by(t.c.start_line))]

        add(0, 10, 20)
        with engine.begin() as conn:
            restart_job_ingest(conn, job.job_id)
        first = stored()
        assert [p for _, p in first] == [b"chunk 0", b"chunk 10", b"chunk 20"]
        assert all(s < 0 for s, _ in first)
        got = jobs.get_job(engine, job.job_id)
        assert (got.lines_committed, got.rows, got.max_updated_at) == (0, {}, None)

        add(0, 10)  # the new file's first chunks, then another restart
        with engine.begin() as conn:
            restart_job_ingest(conn, job.job_id)
        second = stored()
        assert [p for _, p in second] == [b"chunk 0", b"chunk 10", b"chunk 20", b"chunk 0", b"chunk 10"]
        assert all(s < 0 for s, _ in second) and len({s for s, _ in second}) == 5

        with engine.begin() as conn:  # nothing stored: only the job is reset
            conn.execute(t.delete())
            restart_job_ingest(conn, job.job_id)
        assert stored() == []
    finally:
        engine.dispose()


def test_archived_jobs_match_the_run_id_exactly(db_url: str) -> None:
    """``replay --run-id %`` must not replay every shop: the id is not a LIKE pattern."""
    from datetime import date

    from shopify_sync.storage.keys import raw_key
    from shopify_sync.vocab import Mode

    engine = make_engine(db_url)
    day = date(2026, 11, 22)
    try:
        for shop, run_id, archived_by, gz in [("A", "r-1", "r-1", False), ("B", "rx1", "rx1", True),
                                              ("C", "R-1", "R-1", False), ("D", "later", "first", False)]:
            job = jobs.create_job(engine, shop=shop, job_type=Mode.DAILY_INCREMENTAL, partition_key=day.isoformat(),
                                  run_id=run_id)
            with engine.begin() as conn:
                jobs.mark_downloaded(conn, job.job_id, object_count=1,
                                     archive_key=raw_key(shop, Mode.DAILY_INCREMENTAL, day, archived_by, gz=gz))

        def shops(run_id: str) -> list[str]:
            return sorted(j.shop for j in jobs.archived_jobs(engine, run_id))

        for pattern in ("%", "_", "r%", "r_1", "%1", "r-1%", "/", "\\", ".jsonl", ""):
            assert shops(pattern) == [], pattern
        assert shops("r-1") == ["A"]  # not "R-1": MariaDB's collation would say equal
        assert shops("R-1") == ["C"]
        assert shops("rx1") == ["B"]  # the .jsonl.gz archive
        assert shops("first") == ["D"] and shops("later") == ["D"]  # a resumed job: either run
    finally:
        engine.dispose()


def test_open_jobs_lists_unfinished_jobs_of_the_shops_oldest_first(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert jobs.open_jobs(engine, []) == []
        made = {(shop, key): jobs.create_job(engine, shop=shop, job_type="DAILY_INCREMENTAL", partition_key=key,
                                     run_id=f"run-{key}")
                for shop, key in (("DEMO", "2026-11-20"), ("DEMO", "2026-11-21"), ("DA", "2026-11-21"),
                                  ("OTHER", "2026-11-21"))}
        jobs.complete_job(engine, made["DEMO", "2026-11-21"].job_id)  # DEMO's second: finished
        found = jobs.open_jobs(engine, ["DEMO", "DA"])
        assert sorted((j.shop, j.partition_key) for j in found) == [("DA", "2026-11-21"), ("DEMO", "2026-11-20")]
        assert all(not j.finished and j.updated_at is not None for j in found)
        assert [j.updated_at for j in found] == sorted(j.updated_at for j in found if j.updated_at)
    finally:
        engine.dispose()


def test_stale_job_threshold_is_the_shipped_max_runtime() -> None:
    from pathlib import Path

    import yaml

    shipped = yaml.safe_load((Path(__file__).resolve().parents[2] / "dagster.yaml").read_text())
    assert shipped["run_monitoring"]["enabled"] is True
    assert shipped["run_monitoring"]["max_runtime_seconds"] == jobs.STALE_JOB_SECONDS
