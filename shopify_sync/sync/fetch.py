"""Step 1, ``shopify_bulk_jsonl``: claim the sync_job, then request → poll → download → archive.

The bulk operation id is stored (``on_submitted``) before the first poll, so a crash
anywhere after submission re-polls the same operation instead of paying for a second
one; an already archived file is reused as is. A REPLAY run instead adopts the raw
file a past run archived, without calling Shopify.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from shopify_sync.shopify.client import BulkOperation, BulkResult, ShopifyBulkClient
from shopify_sync.storage.keys import raw_key
from shopify_sync.sync.claim import claim_shop
from shopify_sync.sync.context import StepContext
from shopify_sync.sync.rules import Window, backfill_window, incremental_window, stored_window
from shopify_sync.sync.step_telemetry import StepRecorder, step_telemetry
from shopify_sync.timeutil import utcnow
from shopify_sync.vocab import Mode, Step, StepStatus
from shopify_sync.warehouse import jobs, restart_job_ingest


@dataclass(frozen=True)
class FetchOutcome:
    """What the fetch did for one shop."""

    shop: str
    job_id: str
    partition_key: str
    window: Window
    bulk_operation_id: str | None
    object_count: int | None
    bytes: int | None  # None when an archived file was reused (not re-downloaded)
    archive_key: str
    adopted: bool
    reused_archive: bool
    watermark_before: datetime | None


@dataclass(frozen=True)
class _Claim:
    """The job this run works on for one shop, and its window."""

    job: jobs.SyncJob
    window: Window
    adopted: bool
    watermark_before: datetime | None


def fetch_raw(
    ctx: StepContext, shop: str, partition_key: str, *, first_day: date, start: datetime, end: datetime,
    after_submit: Callable[[], None] | None = None,
) -> FetchOutcome:
    """Claim the job (``initiated``), then fetch and archive its raw file (``requested`` → ``downloading``).

    ``first_day`` names the archive's date folder; ``[start, end)`` is a backfill's window.
    ``after_submit`` runs once a new operation is stored, before its first poll (the
    catalog starts its own operation there when the API version lets both run at once).
    """
    with step_telemetry(ctx, shop, partition_key, Step.INITIATED) as rec:
        watermark_before = jobs.get_watermark(ctx.engine, shop)
        if ctx.run.mode is Mode.REPLAY:
            return _adopt_archive(ctx, rec, shop, partition_key, watermark_before)
        claim = _claim(ctx, shop, partition_key, start, end, watermark_before)
        rec.report(window_start=claim.window.start, window_end=claim.window.end,
                   watermark_before=claim.watermark_before)
        job = claim.job
        if job.archive_key and ctx.store.exists(job.archive_key):
            ctx.info(f"{shop}: raw file already archived at {job.archive_key}; not calling Shopify")
            rec.report(bulk_operation_id=job.bulk_operation_id, object_count=job.object_count)
            return FetchOutcome(shop, job.job_id, partition_key, claim.window, job.bulk_operation_id,
                                job.object_count, None, job.archive_key, claim.adopted, True, claim.watermark_before)
    with step_telemetry(ctx, shop, partition_key, Step.REQUESTED) as rec:
        return _download(ctx, rec, shop, partition_key, first_day, claim, after_submit)


def _job_window(job: jobs.SyncJob) -> Window:
    if job.window_start is None:
        raise RuntimeError(f"sync_job {job.job_id} has no window")
    return stored_window(job.job_type, job.window_start, job.window_end)


def _claim(ctx: StepContext, shop: str, partition_key: str, start: datetime, end: datetime,
           watermark_before: datetime | None) -> _Claim:
    """Continue the shop's unfinished job of this partition, or create one with a new window.

    A daily run first holds the shop and settles its other unfinished jobs (``sync.claim``),
    which may move the watermark: the window of a new job is decided after that.
    """
    def new_job() -> jobs.SyncJob:
        if ctx.run.mode is Mode.DAILY_INCREMENTAL:
            window = incremental_window(jobs.get_watermark(ctx.engine, shop), now=utcnow(),
                                        floor_days=ctx.settings.watermark_floor_days,
                                        lookback_minutes=ctx.settings.lookback_minutes)
        else:
            window = backfill_window(start, end)
        return jobs.create_job(ctx.engine, run_id=ctx.run.run_id, shop=shop, job_type=ctx.run.mode,
                               partition_key=partition_key, initiator=ctx.run.initiator.value,
                               window_start=window.start, window_end=window.end,
                               lane=ctx.run.mode in jobs.LANE_MODES)

    if ctx.run.mode in jobs.LANE_MODES:
        job, resumed = claim_shop(ctx, shop, partition_key, new_job)
        watermark_before = jobs.get_watermark(ctx.engine, shop)
    else:
        found = ctx.current_job(shop, partition_key)
        resumed = found is not None
        job = jobs.resume_job(ctx.engine, found, ctx.run.run_id) if found is not None else new_job()
    window = _job_window(job)
    if resumed:
        ctx.info(f"{shop}: continuing unfinished sync_job {job.job_id} ({window.describe()})")
    return _Claim(job, window, resumed, watermark_before)


def _download(ctx: StepContext, rec: StepRecorder, shop: str, partition_key: str, first_day: date,
              claim: _Claim, after_submit: Callable[[], None] | None = None) -> FetchOutcome:
    """Run the bulk query, archive the file as downloaded, and hand the job to the ingest."""
    if ctx.shopify is None:
        raise RuntimeError("the Shopify resource is not configured for this run")
    job = claim.job
    if job.bulk_operation_id:
        ctx.info(f"{shop}: re-polling bulk operation {job.bulk_operation_id} instead of submitting a new one")
    with tempfile.TemporaryDirectory(prefix="shopify_sync_") as tmp, \
            ctx.shopify.client_for(shop, log=ctx.log) as client:
        result = run_bulk(ctx, rec, client, job, claim.window.query(), Path(tmp) / "bulk.jsonl", after_submit)
        key = raw_key(shop, ctx.run.mode, first_day, ctx.run.run_id)
        # Archived before any parsing: the audit trail and the replay source.
        ctx.store.move_file(key, result.path)
    with ctx.engine.begin() as conn:
        jobs.mark_downloaded(conn, job.job_id, archive_key=key, object_count=result.object_count)
        if job.lines_committed:
            # A new file for a job whose ingest had begun on another one (its archive
            # lost, the operation resubmitted): line numbers do not carry over.
            restart_job_ingest(conn, job.job_id)
    if job.lines_committed:
        ctx.info(f"{shop}: a new file replaces the one {job.lines_committed} lines of which were "
                 "committed; the ingest starts again at its first line")
    op_id = result.operation.id
    ctx.info(f"{shop}: bulk operation {op_id}: {result.object_count} objects, {result.bytes} bytes archived at {key}")
    rec.report(bulk_operation_id=op_id, object_count=result.object_count)
    return FetchOutcome(shop, job.job_id, partition_key, claim.window, op_id, result.object_count, int(result.bytes),
                        key, claim.adopted, False, claim.watermark_before)


def run_bulk(ctx: StepContext, rec: StepRecorder, client: ShopifyBulkClient, job: jobs.SyncJob, query: str,
             dest: Path, after_submit: Callable[[], None] | None = None) -> BulkResult:
    """Submit (or re-poll the job's stored operation), poll and download to ``dest``, reporting each stage."""
    seen: set[Step] = set()

    def on_submitted(op: BulkOperation) -> None:
        jobs.set_operation(ctx.engine, job.job_id, op.id)
        seen.add(Step.REQUESTED)
        rec.record(Step.REQUESTED, StepStatus.SUCCEEDED, bulk_operation_id=op.id)
        if after_submit is not None:
            after_submit()

    def on_status(op: BulkOperation) -> None:
        if Step.POLLING not in seen:
            seen.add(Step.POLLING)
            rec.advance(Step.POLLING, bulk_operation_id=op.id)
        if str(op.status).upper().endswith("COMPLETED") and Step.DOWNLOADING not in seen:
            seen.add(Step.DOWNLOADING)
            rec.advance(Step.DOWNLOADING, bulk_operation_id=op.id, object_count=op.object_count)

    result = client.run(query, dest, resume_operation_id=job.bulk_operation_id,
                        on_submitted=on_submitted, on_status=on_status)
    if result.operation.id != job.bulk_operation_id and Step.REQUESTED not in seen:
        jobs.set_operation(ctx.engine, job.job_id, result.operation.id, polling=False)
    if Step.DOWNLOADING not in seen:
        rec.advance(Step.DOWNLOADING, bulk_operation_id=result.operation.id, object_count=result.object_count)
    return result


def _adopt_archive(ctx: StepContext, rec: StepRecorder, shop: str, partition_key: str,
                   watermark_before: datetime | None) -> FetchOutcome:
    """REPLAY: point this run's sync_job at the raw file archived by ``replay_of``."""
    source = next((j for j in jobs.archived_jobs(ctx.engine, str(ctx.run.replay_of)) if j.shop == shop), None)
    if source is None or not source.archive_key or not ctx.store.exists(source.archive_key):
        raise RuntimeError(f"no archived raw file of run {ctx.run.replay_of!r} for shop {shop}")
    window = _job_window(source)
    job, adopted = claim_shop(ctx, shop, partition_key, lambda: jobs.create_job(
        ctx.engine, run_id=ctx.run.run_id, shop=shop, job_type=Mode.REPLAY, partition_key=partition_key,
        initiator=ctx.run.initiator.value, window_start=window.start, window_end=window.end, lane=True))
    jobs.adopt_archive(ctx.engine, job.job_id, run_id=ctx.run.run_id, archive_key=source.archive_key,
                       object_count=source.object_count, bulk_operation_id=source.bulk_operation_id)
    rec.report(window_start=window.start, window_end=window.end, bulk_operation_id=source.bulk_operation_id,
               object_count=source.object_count)
    return FetchOutcome(shop, job.job_id, partition_key, window, source.bulk_operation_id, source.object_count,
                        None, source.archive_key, adopted, True, watermark_before)
