"""Claiming a shop for a daily or replay run (SPEC §3): one such run per shop at a time, and the
shop's unfinished jobs, whatever their date, finished or closed before anything new starts.

Who holds the shop is decided by the warehouse, not by a look at the runs first: the
holder is the job with ``sync_job.open_lane`` set, under a unique index, so of two runs
started at the same instant the second INSERT (or takeover) fails in the database itself,
whichever process, host or Dagster instance launched them. A live holder makes this run
refuse (``jobs.ShopBusy``, one line naming both runs). A job whose run is gone (killed,
ended, or silent for longer than any run may last) is taken over by compare-and-set; then it
is *finished* when its load was complete (its watermark advanced as its own last step would
have) or *closed*. Either way its committed chunks' commerce events are published first, so a
crash loses none and publishes none twice (the object is recorded on the job before the write).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from shopify_sync import warehouse
from shopify_sync.sync.context import StepContext
from shopify_sync.sync.load import publish_job_events
from shopify_sync.sync.rules import watermark_to_advance
from shopify_sync.timeutil import utcnow
from shopify_sync.vocab import JobStatus, Mode
from shopify_sync.warehouse import jobs

# Each pass either returns, refuses, or lost a compare-and-set to a run that now holds the
# shop (and is live, so the next pass refuses): a few passes always suffice.
_PASSES = 8


def holder_is_live(ctx: StepContext, job: jobs.SyncJob, now: datetime) -> bool:
    """Whether another run may still be working on ``job``.

    The Dagster instance knows its own runs (ended, or a CLI process that is gone); a run it
    does not know belongs to another deployment on the same warehouse, and is taken for dead
    once its job failed. Either way a job nobody touched for longer than any run may last
    (``jobs.STALE_JOB_SECONDS``, the run monitoring's max runtime) has no live run.
    """
    if job.run_id is None or job.run_id == ctx.run.run_id:
        return False
    if job.updated_at is not None and (now - job.updated_at).total_seconds() > jobs.STALE_JOB_SECONDS:
        return False
    known = ctx.run_state(job.run_id) if ctx.run_state is not None else None
    if known is not None:
        return known
    return job.status is not JobStatus.FAILED


def claim_shop(
    ctx: StepContext, shop: str, partition_key: str, new_job: Callable[[], jobs.SyncJob]
) -> tuple[jobs.SyncJob, bool]:
    """This run's job for (shop, mode, partition), holding the shop: ``(job, True)`` when an
    unfinished one is continued, else ``(new_job(), False)``. Raises ``jobs.ShopBusy``."""
    me = ctx.run.run_id
    for _ in range(_PASSES):
        holder = jobs.lane_holder(ctx.engine, shop)
        if holder is not None and holder.run_id != me:
            if holder_is_live(ctx, holder, utcnow()):
                raise jobs.ShopBusy(shop, holder, me)
            if jobs.take_over(ctx.engine, holder, me, lane=True) is None:
                continue  # another run took it first
        settle_others(ctx, shop, partition_key)
        job = ctx.current_job(shop, partition_key)
        if job is not None:
            if job.run_id != me and holder_is_live(ctx, job, utcnow()):
                raise jobs.ShopBusy(shop, job, me)  # created by a run that won since the look above
            if (job.run_id != me or job.open_lane is None) and jobs.take_over(ctx.engine, job, me, lane=True) is None:
                continue
            return jobs.resume_job(ctx.engine, job, me), True
        try:
            return new_job(), False
        except jobs.LaneTaken:
            continue
    raise RuntimeError(f"could not claim shop {shop}: its sync_job rows kept changing under this run")


def settle_others(ctx: StepContext, shop: str, partition_key: str) -> None:
    """Finish or close every unfinished job of ``shop`` except this run's own partition's."""
    keep = ctx.current_job(shop, partition_key)
    for job in jobs.unsettled_jobs(ctx.engine, shop):
        if keep is not None and job.job_id == keep.job_id:
            continue
        mine = job
        if job.run_id != ctx.run.run_id:
            if holder_is_live(ctx, job, utcnow()):
                if job.open_lane is not None:
                    raise jobs.ShopBusy(shop, job, ctx.run.run_id)
                continue  # a live backfill beside this run (SPEC §3 allows it): not ours to close
            taken = jobs.take_over(ctx.engine, job, ctx.run.run_id, lane=False)
            if taken is None:
                continue  # another run is settling it
            mine = taken
        settle(ctx, mine, left_by=job.run_id)


def settle(ctx: StepContext, job: jobs.SyncJob, *, left_by: str | None) -> None:
    """Publish the job's pending commerce events, then finish it (load complete) or close it."""
    _, events = publish_job_events(ctx, job.shop, job)
    warehouse.delete_job_changes(ctx.engine, job.job_id)
    what = f"{job.job_type.value} {job.partition_key} sync_job {job.job_id} left {job.status.value} by run {left_by}"
    if job.status is JobStatus.LOADED:
        if job.job_type is Mode.DAILY_INCREMENTAL:
            candidate = watermark_to_advance(jobs.get_watermark(ctx.engine, job.shop), job.max_updated_at)
            if candidate is not None:
                jobs.advance_watermark(ctx.engine, job.shop, candidate, run_id=ctx.run.run_id)
        jobs.complete_job(ctx.engine, job.job_id)
        ctx.info(f"{job.shop}: finished {what} (its load was complete); {events} commerce events published")
        return
    reason = f"closed by run {ctx.run.run_id}: {what}" + (f"; {job.last_error}" if job.last_error else "")
    jobs.close_job(ctx.engine, job.job_id, reason[:1000])
    ctx.info(f"{job.shop}: closed {what}; its {events} pending commerce events published")
