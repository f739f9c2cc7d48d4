"""The catalog's steps in a daily run: fetch ``productVariants`` → load ``product_variant`` → close.

The catalog is a job of its own (``sync_job.job_type`` CATALOG) next to the run's
orders job: its own watermark (``catalog_state``), raw archive folder
(``raw/shopify/shop=<CODE>/CATALOG/date=<D>/<run_id>.jsonl``) and telemetry records
(job type CATALOG, in the run's stream). Only daily runs fetch it; a backfill leaves the
catalog alone. A replay of a run re-loads that run's archived catalog file too (``adopt_catalog``),
as an archive, not as news: known variants keep their deletion flag and ``synced_at``, nothing
is swept, the catalog watermark stays; the upserts' ``updatedAt`` guard makes it idempotent and
unable to regress fresher data. Its job is keyed ``replay of <run id>`` (``catalog_job_key``),
so no daily run resumes it and it resumes no daily job.

Settling (SPEC §3, as ``sync.claim`` does for orders jobs): before claiming its own job, the
catalog step finishes (load complete: job ``loaded``) or closes every other unfinished CATALOG
job of the shop, whatever its date, unless a live run still works on it.

Window: variants with ``updated_at >= catalog watermark - lookback``; a full refresh
(every variant) when the shop has no catalog watermark, when the run asks for one, or
when the last full refresh is older than ``SHOPIFY_SYNC_CATALOG_FULL_REFRESH_DAYS``.
Only a full refresh can tell a deleted variant (Shopify does not return it), so only
then are variants missing from the file marked deleted.

Concurrency: from API 2026-01 Shopify runs up to five bulk queries per shop at once,
so ``submit_catalog_early`` starts the catalog's operation before the orders' fetch
polls its own; the catalog step then re-polls the stored operation like any resumed
job. Before 2026-01 nothing is submitted early and the client waits out
``OPERATION_IN_PROGRESS`` should another operation of the shop be running.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path

from shopify_sync.shopify.documents import version_at_least
from shopify_sync.shopify.queries import catalog_query
from shopify_sync.storage.keys import raw_key
from shopify_sync.sync.claim import holder_is_live
from shopify_sync.sync.context import StepContext
from shopify_sync.sync.fetch import run_bulk
from shopify_sync.sync.rules import TAG_FULL_CATALOG, RunInfo
from shopify_sync.sync.step_telemetry import step_telemetry
from shopify_sync.timeutil import as_utc, as_utc_or_none, utcnow
from shopify_sync.vocab import JobStatus, Mode, Step, StepStatus
from shopify_sync.warehouse import catalog, jobs

# Bulk query operations Shopify runs at once per shop from this version on (one before).
CONCURRENT_FROM = "2026-01"


def full_catalog_tag(tags: Mapping[str, str]) -> bool:
    """Whether the run asks for a full catalog refresh (``TAG_FULL_CATALOG``)."""
    return tags.get(TAG_FULL_CATALOG, "").strip().lower() in {"1", "true", "yes"}


REPLAY_KEY = "replay of "


def fetches_catalog(mode: Mode) -> bool:
    """Only a daily run fetches the catalog from Shopify."""
    return mode is Mode.DAILY_INCREMENTAL


def catalog_wanted(mode: Mode) -> bool:
    """A daily run fetches the catalog, a replay re-loads the replayed run's file; a backfill neither."""
    return mode in (Mode.DAILY_INCREMENTAL, Mode.REPLAY)


def catalog_job_key(run: RunInfo, partition_key: str) -> str:
    """The catalog job's ``partition_key``: the run's partition, or a replay's own ``replay of <run id>``."""
    return f"{REPLAY_KEY}{run.run_id}" if run.mode is Mode.REPLAY else partition_key


def is_replay_job(job: jobs.SyncJob) -> bool:
    return job.partition_key.startswith(REPLAY_KEY)


def runs_concurrently(api_version: str) -> bool:
    return version_at_least(api_version, CONCURRENT_FROM)


def full_refresh_due(state: catalog.CatalogState, *, requested: bool, now: datetime, every_days: int) -> bool:
    """A full refresh: asked for, no catalog watermark yet, or the last one is ``every_days`` old."""
    if requested or state.watermark_at is None:
        return True
    if every_days <= 0:
        return False
    return state.full_refresh_at is None or as_utc(now) - as_utc(state.full_refresh_at) >= timedelta(days=every_days)


@dataclass(frozen=True)
class CatalogWindow:
    """``since=None``: a full refresh."""

    since: datetime | None

    @property
    def full(self) -> bool:
        return self.since is None

    def query(self) -> str:
        return catalog_query(self.since)

    def describe(self) -> str:
        return "full catalog" if self.since is None else f"variants updated_at >= {self.since.isoformat()}"


@dataclass(frozen=True)
class CatalogFetchOutcome:
    shop: str
    job_id: str
    window: CatalogWindow
    bulk_operation_id: str | None
    object_count: int | None
    bytes: int | None
    archive_key: str
    adopted: bool
    reused_archive: bool
    watermark_before: datetime | None


@dataclass(frozen=True)
class CatalogLoadOutcome:
    shop: str
    job_id: str
    full: bool
    rows: int
    products: int
    deleted: int
    start_line: int
    watermark_before: datetime | None
    watermark_after: datetime | None


def catalog_context(ctx: StepContext) -> StepContext:
    """The same run, its job type CATALOG: ``current_job``, telemetry and failures address the catalog job."""
    return replace(ctx, run=replace(ctx.run, mode=Mode.CATALOG))


def settle_catalog_jobs(cctx: StepContext, shop: str, keep: jobs.SyncJob | None) -> None:
    """Finish (load complete) or close the shop's other unfinished CATALOG jobs, of any date,
    that no live run works on: what a killed run left behind (its orders job is settled by
    ``sync.claim``, which leaves CATALOG jobs to this step)."""
    me = cctx.run.run_id
    for job in jobs.open_jobs(cctx.engine, [shop]):
        if job.job_type is not Mode.CATALOG or (keep is not None and job.job_id == keep.job_id):
            continue
        left_by = job.run_id
        if job.run_id != me:
            if holder_is_live(cctx, job, utcnow()):
                continue
            taken = jobs.take_over(cctx.engine, job, me, lane=False)
            if taken is None:
                continue  # another run is settling it
            job = taken
        what = f"CATALOG {job.partition_key} sync_job {job.job_id} left {job.status.value} by run {left_by}"
        if job.status is JobStatus.LOADED:
            finish_catalog_job(cctx, shop, job)
            cctx.info(f"{shop}: finished {what} (its load was complete)")
            continue
        reason = f"closed by run {me}: {what}" + (f"; {job.last_error}" if job.last_error else "")
        jobs.close_job(cctx.engine, job.job_id, reason[:1000])
        cctx.info(f"{shop}: closed {what}")


def _claim(cctx: StepContext, shop: str, partition_key: str, requested_full: bool) -> tuple[jobs.SyncJob, bool]:
    job = cctx.current_job(shop, partition_key)
    if job is not None and job.run_id == cctx.run.run_id and job.status is not JobStatus.FAILED:
        return job, job.attempts > 1  # claimed earlier in this run (``submit_catalog_early``)
    settle_catalog_jobs(cctx, shop, job)
    if job is not None:
        return jobs.resume_job(cctx.engine, job, cctx.run.run_id), True
    state = catalog.get_state(cctx.engine, shop)
    now = utcnow()
    since = None
    if not full_refresh_due(state, requested=requested_full, now=now,
                            every_days=cctx.settings.catalog_full_refresh_days):
        assert state.watermark_at is not None
        since = as_utc(state.watermark_at) - timedelta(minutes=cctx.settings.lookback_minutes)
    job = jobs.create_job(cctx.engine, run_id=cctx.run.run_id, shop=shop, job_type=Mode.CATALOG,
                          partition_key=partition_key, initiator=cctx.run.initiator.value,
                          window_start=since, window_end=None)
    return job, False


def _window(job: jobs.SyncJob) -> CatalogWindow:
    return CatalogWindow(as_utc_or_none(job.window_start))


def submit_catalog_early(ctx: StepContext, shop: str, partition_key: str, *, requested_full: bool) -> str | None:
    """Start the catalog's bulk operation now when Shopify lets it run beside the orders'.

    Returns the operation id, or None when nothing was submitted (not a daily run, an
    API version before 2026-01, or the job already has its operation or its file). A
    failure here is left to the catalog step, which claims the same job and retries.
    """
    if not fetches_catalog(ctx.run.mode) or ctx.shopify is None:
        return None
    cctx = catalog_context(ctx)
    with ctx.shopify.client_for(shop, log=ctx.log) as client:
        if not runs_concurrently(client.api_version):
            return None
        job, _ = _claim(cctx, shop, partition_key, requested_full)
        if job.bulk_operation_id or job.archive_key:
            return None
        op = client.submit(_window(job).query())
    jobs.set_operation(cctx.engine, job.job_id, op.id)
    cctx.telemetry(shop).record(Step.REQUESTED, StepStatus.SUCCEEDED, bulk_operation_id=op.id,
                                window_start=job.window_start)
    ctx.info(f"{shop}: catalog bulk operation {op.id} started beside the orders' ({_window(job).describe()})")
    return op.id


def fetch_catalog(ctx: StepContext, shop: str, partition_key: str, *, first_day: date,
                  requested_full: bool) -> CatalogFetchOutcome:
    """Claim the catalog job (``initiated``), then request → poll → download → archive."""
    cctx = catalog_context(ctx)
    with step_telemetry(cctx, shop, partition_key, Step.INITIATED) as rec:
        before = catalog.get_state(cctx.engine, shop).watermark_at
        job, adopted = _claim(cctx, shop, partition_key, requested_full)
        window = _window(job)
        rec.report(window_start=window.since, watermark_before=before)
        if job.archive_key and cctx.store.exists(job.archive_key):
            cctx.info(f"{shop}: catalog file already archived at {job.archive_key}; not calling Shopify")
            rec.report(bulk_operation_id=job.bulk_operation_id, object_count=job.object_count)
            return CatalogFetchOutcome(shop, job.job_id, window, job.bulk_operation_id, job.object_count, None,
                                       job.archive_key, adopted, True, before)
    with step_telemetry(cctx, shop, partition_key, Step.REQUESTED) as rec:
        if cctx.shopify is None:
            raise RuntimeError("the Shopify resource is not configured for this run")
        with tempfile.TemporaryDirectory(prefix="shopify_sync_") as tmp, \
                cctx.shopify.client_for(shop, log=cctx.log) as client:
            result = run_bulk(cctx, rec, client, job, window.query(), Path(tmp) / "catalog.jsonl")
            key = raw_key(shop, Mode.CATALOG, first_day, cctx.run.run_id)
            cctx.store.move_file(key, result.path)  # archived before any parsing
        with cctx.engine.begin() as conn:
            jobs.mark_downloaded(conn, job.job_id, archive_key=key, object_count=result.object_count)
            if job.lines_committed:
                # A new file replaces one whose ingest had begun: its lines start again.
                jobs.reset_ingest(conn, job.job_id)
        rec.report(bulk_operation_id=result.operation.id, object_count=result.object_count)
        cctx.info(f"{shop}: catalog operation {result.operation.id}: {result.object_count} variants "
                  f"({window.describe()}) archived at {key}")
        return CatalogFetchOutcome(shop, job.job_id, window, result.operation.id, result.object_count,
                                   int(result.bytes), key, adopted, False, before)


def this_runs_job(ctx: StepContext, shop: str, partition_key: str) -> jobs.SyncJob | None:
    """The catalog job of this run for (shop, partition), None when there is none to load
    (the fetch failed or never claimed one in this run)."""
    job = catalog_context(ctx).current_job(shop, catalog_job_key(ctx.run, partition_key))
    if job is None or job.run_id != ctx.run.run_id or job.status is JobStatus.FAILED:
        return None
    return job


def adopt_catalog(ctx: StepContext, shop: str, partition_key: str) -> CatalogFetchOutcome | None:
    """REPLAY: a job of this run takes over the catalog file the replayed run archived for ``shop``
    (``initiated``); None when that run archived none (a backfill's, or a run from before the catalog)."""
    cctx = catalog_context(ctx)
    key = catalog_job_key(ctx.run, partition_key)
    sources = jobs.archived_jobs(ctx.engine, str(ctx.run.replay_of), catalog=True)
    source = next((j for j in sources if j.shop == shop and j.archive_key), None)
    if source is None:
        return None
    with step_telemetry(cctx, shop, key, Step.INITIATED) as rec:
        before = catalog.get_state(cctx.engine, shop).watermark_at
        if not source.archive_key or not cctx.store.exists(source.archive_key):
            raise RuntimeError(f"the catalog file {source.archive_key} archived by run {ctx.run.replay_of} "
                               "is missing from the object store")
        job, adopted = _claim_replay(cctx, shop, key, source)
        rec.report(window_start=source.window_start, bulk_operation_id=source.bulk_operation_id,
                   object_count=source.object_count, watermark_before=before)
    cctx.info(f"{shop}: replaying the catalog file {source.archive_key} of run {ctx.run.replay_of}")
    return CatalogFetchOutcome(shop, job.job_id, CatalogWindow(as_utc_or_none(source.window_start)),
                               source.bulk_operation_id, source.object_count, None, source.archive_key,
                               adopted, True, before)


def _claim_replay(cctx: StepContext, shop: str, key: str, source: jobs.SyncJob) -> tuple[jobs.SyncJob, bool]:
    job = cctx.current_job(shop, key)  # this very run's, retried
    settle_catalog_jobs(cctx, shop, job)
    if job is None:
        job = jobs.create_job(cctx.engine, run_id=cctx.run.run_id, shop=shop, job_type=Mode.CATALOG,
                              partition_key=key, initiator=cctx.run.initiator.value,
                              window_start=source.window_start, window_end=source.created_at)
    elif job.archive_key:
        return job, True
    jobs.adopt_archive(cctx.engine, job.job_id, run_id=cctx.run.run_id, archive_key=str(source.archive_key),
                       object_count=source.object_count, bulk_operation_id=source.bulk_operation_id)
    return jobs.get_job(cctx.engine, job.job_id) or job, False


def load_catalog(ctx: StepContext, shop: str, partition_key: str) -> CatalogLoadOutcome:
    """Upsert the archived variants (``upserting``), then deletions, stock and the watermark (``transforming``)."""
    cctx = catalog_context(ctx)
    key = catalog_job_key(ctx.run, partition_key)
    with step_telemetry(cctx, shop, key, Step.UPSERTING) as rec:
        job = cctx.current_job(shop, key)
        if job is None or not job.archive_key:
            raise RuntimeError(f"product_variant: no fetched catalog file for shop {shop}, {key}; "
                               "materialize shopify_catalog_jsonl for this partition first")
        rec.report(bulk_operation_id=job.bulk_operation_id, object_count=job.object_count)
        with tempfile.TemporaryDirectory(prefix="shopify_sync_") as tmp:
            path = Path(tmp) / Path(job.archive_key).name
            cctx.store.download_file(job.archive_key, path)
            if job.lines_committed:
                cctx.info(f"{shop}: resuming the catalog ingest after line {job.lines_committed}")
            result = catalog.ingest_catalog(cctx.engine, path, shop=shop, job_id=job.job_id,
                                            chunk_rows=cctx.chunk_rows, synced_at=utcnow(),
                                            seen=not is_replay_job(job))
        jobs.mark_loaded(cctx.engine, job.job_id)
        rec.report(rows=dict(result.rows))
    with step_telemetry(cctx, shop, key, Step.TRANSFORMING) as rec:
        full, deleted, before, after = finish_catalog_job(cctx, shop, jobs.get_job(cctx.engine, job.job_id) or job)
        rec.report(rows=dict(result.rows), watermark_before=before, watermark_after=after)
    return CatalogLoadOutcome(shop, job.job_id, full, result.rows.get("product_variant", 0), result.products,
                              deleted, result.start_line, before, after)


def finish_catalog_job(cctx: StepContext, shop: str, job: jobs.SyncJob) -> tuple[
        bool, int, datetime | None, datetime | None]:
    """A loaded job's last part: deletions (a fetched full refresh only), product stock, the catalog
    watermark (a fetch's, never a replay's); the job completes. (full, deleted, watermark before, after)."""
    replay = is_replay_job(job)
    full = job.window_start is None and not replay
    created = job.created_at or utcnow()
    deleted = catalog.mark_deleted(cctx.engine, shop, not_seen_since=created) if full else 0
    catalog.refresh_product_stock(cctx.engine, shop)
    before = catalog.get_state(cctx.engine, shop).watermark_at
    after = before if replay else catalog.advance_state(
        cctx.engine, shop, job.max_updated_at, run_id=cctx.run.run_id,
        full_refresh_at=created if full else None).watermark_at
    jobs.complete_job(cctx.engine, job.job_id)
    if deleted:
        cctx.info(f"{shop}: {deleted} variants no longer in Shopify's catalog marked deleted")
    return full, deleted, before, after
