"""Step 2, ``order_header`` / ``order_line_item`` / ``order_refund``: upsert the archived JSONL.

Resumes after the last committed chunk, then publishes the job's COMMERCE_TELEMETRY
events (every committed chunk's, an earlier attempt's included) and closes the load.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

# The package, not its names: the crash tests replace ``delete_job_changes`` on it to
# kill a load between writing its events and deleting their records.
from shopify_sync import warehouse
from shopify_sync.storage.keys import commerce_telemetry_key
from shopify_sync.sync.context import StepContext
from shopify_sync.sync.step_telemetry import step_telemetry
from shopify_sync.telemetry.commerce import write_commerce_lines
from shopify_sync.telemetry.commerce_frames import change_event_lines
from shopify_sync.timeutil import utc_day
from shopify_sync.vocab import Step
from shopify_sync.warehouse import jobs


@dataclass(frozen=True)
class LoadOutcome:
    """What the load did for one shop."""

    shop: str
    job_id: str
    objects: int
    rows: dict[str, int]
    max_updated_at: datetime | None
    start_line: int
    commerce_events: int
    # How the ingest went: what the UI shows next to the rows (rows/s, older versions skipped,
    # chunks redone as upserts because a "new" order existed after all).
    ingest_seconds: float = 0.0
    orders_skipped_older: int = 0
    fresh_conflicts: int = 0
    # Where the commerce events went: this run's object, or an earlier attempt's that the
    # load completed (see ``sync_job.events_key``).
    events_key: str | None = None


def _require_job(ctx: StepContext, shop: str, partition_key: str) -> tuple[jobs.SyncJob, str]:
    job = ctx.current_job(shop, partition_key)
    if job is None or not job.archive_key:
        raise RuntimeError(
            f"order tables: no fetched raw file for shop {shop}, {ctx.run.mode.value} {partition_key}; "
            "materialize shopify_bulk_jsonl for this partition first"
        )
    return job, job.archive_key


def load_orders(ctx: StepContext, shop: str, partition_key: str) -> LoadOutcome:
    """Upsert the archived JSONL (``upserting``), resuming after the last committed chunk."""
    with step_telemetry(ctx, shop, partition_key, Step.UPSERTING) as rec:
        job, archive_key = _require_job(ctx, shop, partition_key)
        start_line = job.lines_committed
        rec.report(bulk_operation_id=job.bulk_operation_id, object_count=job.object_count)
        with tempfile.TemporaryDirectory(prefix="shopify_sync_") as tmp:
            # A local store's archive is read where it is: a 1M-order file is a gigabyte,
            # and copying it cost seconds of the ingest (docs/benchmarks.md, session 8).
            local = ctx.store.local_file(archive_key)
            path = local or Path(tmp) / Path(archive_key).name
            if local is None:
                ctx.store.download_file(archive_key, path)
            if start_line:
                ctx.info(f"{shop}: resuming the ingest after line {start_line}")
            result = warehouse.ingest_jsonl(ctx.engine, path, shop=shop, job_id=job.job_id,
                                            chunk_rows=ctx.chunk_rows, start_line=start_line)
        events_key, events = publish_job_events(ctx, shop, job)
        jobs.mark_loaded(ctx.engine, job.job_id)
        warehouse.delete_job_changes(ctx.engine, job.job_id)
        rec.report(rows=dict(result.rows))
        return LoadOutcome(shop, job.job_id, result.objects, dict(result.rows), result.max_updated_at,
                           start_line, events, ingest_seconds=result.seconds,
                           orders_skipped_older=result.orders_skipped_older,
                           fresh_conflicts=result.fresh_conflicts, events_key=events_key if events else None)


def publish_job_events(ctx: StepContext, shop: str, job: jobs.SyncJob) -> tuple[str, int]:
    """Write the job's COMMERCE_TELEMETRY events; returns their object and how many there were.

    Every committed chunk's changes, an earlier attempt's included (stored with the
    chunks, so a crash mid-ingest loses none); streamed a chunk at a time, each chunk's
    lines built from its change frame in polars: a first load has one per order.
    """
    frames = warehouse.iter_job_change_frames(ctx.engine, job.job_id)
    # The object is chosen before it is written: if this process dies after the write
    # but before the job's change records are deleted, the resumed load merges the
    # same records into the same object (deduplicated) rather than into its own run's.
    events_key = job.events_key
    if events_key is None:
        events_key = commerce_telemetry_key(utc_day(ctx.run.created_at), ctx.run.run_id)
        jobs.set_events_key(ctx.engine, job.job_id, events_key)
    _, count = write_commerce_lines(ctx.store, events_key, (change_event_lines(f, shop) for f in frames))
    return events_key, count
