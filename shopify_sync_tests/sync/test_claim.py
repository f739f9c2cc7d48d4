"""``sync.claim`` on the three real backends: the one-run-per-shop guard is atomic in the
warehouse (20 claims released at one barrier, each on its own engine and connections), a dead
holder is taken over, a live one refuses in one line, and the shop's unfinished jobs of other
dates are finished or closed with their pending commerce events published once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from shopify_sync.config import load_settings
from shopify_sync.storage import LocalObjectStore
from shopify_sync.sync import Initiator, Mode, RunInfo, StepContext
from shopify_sync.sync.claim import claim_shop
from shopify_sync.telemetry import read_commerce_events
from shopify_sync.timeutil import utcnow
from shopify_sync.vocab import JobStatus
from shopify_sync.warehouse import jobs, make_engine
from shopify_sync.warehouse.tables import sync_job

SHOP = "DE"
DAY = "2026-05-09"
NEXT = "2026-05-10"
STARTS = 20


def _ctx(url: str, store_dir: Path, run_id: str, run_state: Callable[[str], bool | None] | None,
         engine: sa.Engine | None = None) -> StepContext:
    run = RunInfo(run_id, Mode.DAILY_INCREMENTAL, Initiator.USER, utcnow())
    return StepContext(run=run, settings=load_settings({}), engine=engine or make_engine(url),
                       store=LocalObjectStore(store_dir), chunk_rows=100, run_state=run_state)


def _new_job(ctx: StepContext, partition_key: str = DAY) -> Callable[[], jobs.SyncJob]:
    return lambda: jobs.create_job(ctx.engine, shop=SHOP, job_type=Mode.DAILY_INCREMENTAL, partition_key=partition_key,
                                   run_id=ctx.run.run_id, window_start=datetime(2026, 5, 1, tzinfo=UTC), lane=True)


def _rows(url: str) -> list[sa.Row]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.select(sync_job)).all())
    finally:
        engine.dispose()


def test_twenty_simultaneous_claims_one_wins_the_others_refuse_naming_it(db_url: str, tmp_path: Path) -> None:
    make_engine(db_url).dispose()  # migrated once, as the first run of a deployment does
    barrier = threading.Barrier(STARTS)
    won: list[str] = []
    refused: list[tuple[str, str]] = []
    errors: list[BaseException] = []

    def start(i: int) -> None:
        # Every run is live (they all are, until the test ends); each has its own engine.
        ctx = _ctx(db_url, tmp_path / "objects", f"run-{i:02d}", lambda run_id: True)
        try:
            barrier.wait(timeout=60)
            job, resumed = claim_shop(ctx, SHOP, DAY, _new_job(ctx))
            assert not resumed and job.run_id == ctx.run.run_id
            won.append(ctx.run.run_id)
        except jobs.ShopBusy as exc:
            refused.append((ctx.run.run_id, str(exc)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            ctx.engine.dispose()

    threads = [threading.Thread(target=start, args=(i,)) for i in range(STARTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(won) == 1 and len(refused) == STARTS - 1
    [winner] = won
    for own, line in refused:
        assert "\n" not in line
        assert line == (f"another sync of shop {SHOP} is running (run {winner}, DAILY_INCREMENTAL {DAY}); "
                        f"this run {own} was not started")
    [row] = _rows(db_url)  # one job: the refused runs created none
    assert row.run_id == winner and row.open_lane == jobs.LANE
    engine = make_engine(db_url)
    jobs.complete_job(engine, row.job_id)
    engine.dispose()
    [row] = _rows(db_url)
    assert row.status == "completed" and row.open_lane is None  # nothing left open


def test_the_lane_is_unique_per_shop_in_the_database(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        jobs.create_job(engine, shop=SHOP, job_type=Mode.DAILY_INCREMENTAL, partition_key=DAY, lane=True)
        with pytest.raises(jobs.LaneTaken):
            jobs.create_job(engine, shop=SHOP, job_type=Mode.REPLAY, partition_key=NEXT, lane=True)
        # Other shops, and jobs without the lane (backfills, finished jobs), never collide.
        jobs.create_job(engine, shop="NL", job_type=Mode.DAILY_INCREMENTAL, partition_key=DAY, lane=True)
        jobs.create_job(engine, shop=SHOP, job_type=Mode.FULL_BACKFILL_EXECUTE, partition_key=DAY)
        jobs.create_job(engine, shop=SHOP, job_type=Mode.FULL_BACKFILL_EXECUTE, partition_key=NEXT)
    finally:
        engine.dispose()


def _age(engine: sa.Engine, job_id: str, seconds: float) -> None:
    jobs.update_job(engine, job_id)  # stamps updated_at; then move it back
    with engine.begin() as conn:
        conn.execute(sync_job.update().where(sync_job.c.job_id == job_id).values(
            updated_at=(utcnow() - timedelta(seconds=seconds)).replace(tzinfo=None)))


@pytest.mark.parametrize(("known", "age", "status", "taken"), [
    (True, 60, JobStatus.POLLING, False),     # live in this instance: refused
    (False, 60, JobStatus.POLLING, True),     # ended (or its CLI process is gone): taken over
    (None, 60, JobStatus.POLLING, False),     # another deployment's run, active: refused
    (None, 60, JobStatus.FAILED, True),       # another deployment's run, failed: taken over
    (None, jobs.STALE_JOB_SECONDS + 60, JobStatus.POLLING, True),  # silent past the max runtime
    (True, jobs.STALE_JOB_SECONDS + 60, JobStatus.POLLING, True),  # "started" but silent 4 h: abandoned
])
def test_a_holder_is_taken_over_only_when_its_run_is_gone(
    sqlite_url: str, tmp_path: Path, known: bool | None, age: float, status: JobStatus, taken: bool
) -> None:
    holder_ctx = _ctx(sqlite_url, tmp_path / "objects", "run-old", None)
    old, _ = claim_shop(holder_ctx, SHOP, DAY, _new_job(holder_ctx))
    jobs.update_job(holder_ctx.engine, old.job_id, status=status)
    _age(holder_ctx.engine, old.job_id, age)
    ctx = _ctx(sqlite_url, tmp_path / "objects", "run-new", lambda run_id: known, engine=holder_ctx.engine)
    if not taken:
        with pytest.raises(jobs.ShopBusy, match="run run-old, .*this run run-new was not started"):
            claim_shop(ctx, SHOP, DAY, _new_job(ctx))
        assert jobs.get_job(ctx.engine, old.job_id).run_id == "run-old"
        return
    job, resumed = claim_shop(ctx, SHOP, DAY, _new_job(ctx))  # the same date: continued
    assert resumed and job.job_id == old.job_id and job.run_id == "run-new" and job.open_lane == jobs.LANE
    holder_ctx.engine.dispose()


def test_a_run_of_the_next_day_closes_the_old_job_and_publishes_its_events_once(
    db_url: str, tmp_path: Path
) -> None:
    old_ctx = _ctx(db_url, tmp_path / "objects", "run-d", None)
    old, _ = claim_shop(old_ctx, SHOP, DAY, _new_job(old_ctx))
    pending = _store_changes(old_ctx.engine, old.job_id, tmp_path)
    assert pending and jobs.get_job(old_ctx.engine, old.job_id).lines_committed > 0

    ctx = _ctx(db_url, tmp_path / "objects", "run-d1", lambda run_id: False, engine=old_ctx.engine)
    job, resumed = claim_shop(ctx, SHOP, NEXT, _new_job(ctx, NEXT))
    assert not resumed and job.partition_key == NEXT and job.open_lane == jobs.LANE
    closed = jobs.get_job(ctx.engine, old.job_id)
    assert closed.status is JobStatus.FAILED and closed.open_lane is None
    assert closed.last_error.startswith("closed by run run-d1: DAILY_INCREMENTAL 2026-05-09 sync_job")
    assert closed.events_key and "run-d1" in closed.events_key  # the closing run's object
    events = read_commerce_events(ctx.store, ctx.run.created_at, "run-d1")
    assert sorted(e["order_id"] for e in events) == pending
    assert jobs.unsettled_jobs(ctx.engine, SHOP) == [job]  # only the new one is open

    # Settling again (another run of the next day, say) publishes nothing twice.
    again = _ctx(db_url, tmp_path / "objects", "run-d1", lambda run_id: False, engine=ctx.engine)
    claim_shop(again, SHOP, NEXT, _new_job(again, NEXT))
    assert len(read_commerce_events(ctx.store, ctx.run.created_at, "run-d1")) == len(pending)
    ctx.engine.dispose()


def test_a_loaded_job_of_an_earlier_day_is_finished_and_its_watermark_advanced(sqlite_url: str,
                                                                               tmp_path: Path) -> None:
    old_ctx = _ctx(sqlite_url, tmp_path / "objects", "run-d", None)
    old, _ = claim_shop(old_ctx, SHOP, DAY, _new_job(old_ctx))
    fetched = datetime(2026, 5, 9, 23, 0, tzinfo=UTC)
    jobs.update_job(old_ctx.engine, old.job_id, status=JobStatus.LOADED, max_updated_at=fetched)
    ctx = _ctx(sqlite_url, tmp_path / "objects", "run-d1", lambda run_id: False, engine=old_ctx.engine)
    claim_shop(ctx, SHOP, NEXT, _new_job(ctx, NEXT))
    done = jobs.get_job(ctx.engine, old.job_id)
    assert done.status is JobStatus.COMPLETED and done.open_lane is None
    assert jobs.get_watermark(ctx.engine, SHOP) == fetched.replace(tzinfo=None)
    ctx.engine.dispose()


def test_a_live_backfill_beside_the_daily_run_is_left_alone(sqlite_url: str, tmp_path: Path) -> None:
    engine = make_engine(sqlite_url)
    backfill = jobs.create_job(engine, shop=SHOP, job_type=Mode.FULL_BACKFILL_EXECUTE, partition_key=DAY,
                               run_id="run-backfill", status=JobStatus.POLLING)
    ctx = _ctx(sqlite_url, tmp_path / "objects", "run-daily", lambda run_id: run_id == "run-backfill",
               engine=engine)
    claim_shop(ctx, SHOP, NEXT, _new_job(ctx, NEXT))
    assert jobs.get_job(engine, backfill.job_id).status is JobStatus.POLLING
    engine.dispose()


def _store_changes(engine: sa.Engine, job_id: str, tmp_path: Path) -> list[int]:
    """A load that committed two chunks and then died: their change records stay stored."""
    from shopify_sync.emulator import write_jsonl
    from shopify_sync.warehouse import ingest_jsonl, iter_job_changes

    path = tmp_path / "raw.jsonl"
    write_jsonl(path, SHOP, orders=12, seed=3)
    calls: list[int] = []

    def die_after_two(progress: object) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated kill")

    with pytest.raises(RuntimeError, match="simulated kill"):
        ingest_jsonl(engine, path, shop=SHOP, job_id=job_id, chunk_rows=5, on_chunk=die_after_two)
    return sorted(c.order_id for c in iter_job_changes(engine, job_id))


def test_a_refusal_is_never_retried_and_leaves_the_holders_job_alone(sqlite_url: str, tmp_path: Path) -> None:
    from shopify_sync.failures import classify
    from shopify_sync.sync import step_telemetry
    from shopify_sync.vocab import Step

    holder_ctx = _ctx(sqlite_url, tmp_path / "objects", "run-holder", None)
    held, _ = claim_shop(holder_ctx, SHOP, DAY, _new_job(holder_ctx))
    jobs.update_job(holder_ctx.engine, held.job_id, status=JobStatus.POLLING)
    ctx = _ctx(sqlite_url, tmp_path / "objects", "run-late", lambda run_id: True, engine=holder_ctx.engine)
    with pytest.raises(jobs.ShopBusy) as refused, step_telemetry(ctx, SHOP, DAY, Step.INITIATED):
        claim_shop(ctx, SHOP, DAY, _new_job(ctx))
    assert classify(refused.value).retry is False
    still = jobs.get_job(ctx.engine, held.job_id)
    assert still.status is JobStatus.POLLING and still.run_id == "run-holder" and still.last_error is None
    ctx.engine.dispose()
