"""The last step of a run, for one shop: advance the watermark (daily only), close the job, record ``completed``.

Runs only when every earlier step succeeded, so a failed run never moves the
watermark; ``advance_watermark`` refuses to move it backwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shopify_sync.sync.context import StepContext
from shopify_sync.sync.rules import watermark_to_advance
from shopify_sync.sync.step_telemetry import step_telemetry
from shopify_sync.vocab import Mode, Step
from shopify_sync.warehouse import jobs


@dataclass(frozen=True)
class FinishOutcome:
    shop: str
    watermark_before: datetime | None
    watermark_after: datetime | None
    job_completed: bool


def finish_run(ctx: StepContext, shop: str, partition_key: str) -> FinishOutcome:
    """Close ``shop``'s part of the run; the ``completed`` record carries the whole story."""
    with step_telemetry(ctx, shop, partition_key, Step.COMPLETED) as rec:
        before = jobs.get_watermark(ctx.engine, shop)
        after = before
        job = ctx.current_job(shop, partition_key)
        if ctx.run.mode is Mode.DAILY_INCREMENTAL and job is not None:
            candidate = watermark_to_advance(before, job.max_updated_at)
            if candidate is not None:
                jobs.advance_watermark(ctx.engine, shop, candidate, run_id=ctx.run.run_id)
            after = jobs.get_watermark(ctx.engine, shop)
        if job is not None:
            jobs.complete_job(ctx.engine, job.job_id)
            rec.report(bulk_operation_id=job.bulk_operation_id, object_count=job.object_count,
                       window_start=job.window_start, window_end=job.window_end)
        rec.report(rows=dict(job.rows) if job is not None else {}, watermark_before=before, watermark_after=after)
        return FinishOutcome(shop, before, after, job is not None)
