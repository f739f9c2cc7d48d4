"""What ``shopify-sync status`` prints: per shop, the watermark and the last job from the
warehouse, then the last runs of the sync job from the Dagster instance."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import dagster as dg

from shopify_sync.config import Settings
from shopify_sync.launch.plan import SYNC_JOB_NAME, TAG_PARTITION, TAG_PARTITION_SHOP
from shopify_sync.sync import TAG_MODE, TAG_RANGE_END, TAG_RANGE_START, TAG_SHOP
from shopify_sync.timeutil import as_utc
from shopify_sync.vocab import JobStatus, Mode
from shopify_sync.warehouse import jobs, make_engine
from shopify_sync.warehouse.jobs import SyncJob

HEADER = ("shop", "watermark", "last job", "status", "window", "run id", "updated")
NONE = "—"


def _fmt(ts: datetime | None) -> str:
    return as_utc(ts).strftime("%Y-%m-%d %H:%M:%SZ") if ts else NONE


def shop_row(shop: str, watermark: datetime | None, job: SyncJob | None) -> tuple[str, ...]:
    """One line of the table, in ``HEADER`` order."""
    if job is None:
        return (shop, _fmt(watermark), "never synced", NONE, NONE, NONE, NONE)
    window = f"{_fmt(job.window_start)} .. {_fmt(job.window_end) if job.window_end else 'now'}"
    status = job.status.value
    if job.status is JobStatus.FAILED and job.last_error:
        status += f" ({job.last_error[:60]})"
    return (shop, _fmt(watermark), f"{job.job_type.value} {job.partition_key}", status, window,
            job.run_id or NONE, _fmt(job.updated_at))


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    table = [HEADER, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADER))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _run_line(run: dg.DagsterRun) -> str:
    tags = run.tags
    shop = tags.get(TAG_SHOP) or tags.get(TAG_PARTITION_SHOP, "?")
    partition = tags.get(TAG_PARTITION) or f"{tags.get(TAG_RANGE_START, '')}..{tags.get(TAG_RANGE_END, '')}"
    return (f"  {run.run_id}  {run.status.value:<9}  {shop:<6}"
            f"  {tags.get(TAG_MODE, Mode.DAILY_INCREMENTAL.value):<21}  {partition}")


def status_table(settings: Settings, instance: dg.DagsterInstance | None = None) -> str:
    """Per shop: watermark, last job and the last Dagster runs, as a fixed-width table."""
    engine = make_engine(settings.database_url)
    try:
        rows = [shop_row(code, jobs.get_watermark(engine, code), jobs.latest_job_of_shop(engine, code))
                for code in settings.shop_codes]
    finally:
        engine.dispose()
    lines = _table(rows)
    if instance is not None:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name=SYNC_JOB_NAME), limit=10)
        lines += ["", "last Dagster runs:", *([_run_line(run) for run in runs] or ["  (none)"])]
    return "\n".join(lines)
