"""One shop's line of ``shopify-sync status``: its watermark and newest job, as text."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine

from shopify_sync.timeutil import as_utc
from shopify_sync.vocab import JobStatus
from shopify_sync.warehouse import jobs

NONE = "—"


def _fmt(ts: datetime | None) -> str:
    return as_utc(ts).strftime("%Y-%m-%d %H:%M:%SZ") if ts else NONE


def shop_status(engine: Engine, shop: str) -> dict[str, str]:
    """``shop, watermark, job, status, window, run_id, updated`` of one shop, as the CLI prints them."""
    watermark = _fmt(jobs.get_watermark(engine, shop))
    job = jobs.latest_job_of_shop(engine, shop)
    if job is None:
        return {"shop": shop, "watermark": watermark, "job": "never synced", "status": NONE, "window": NONE,
                "run_id": NONE, "updated": NONE}
    window = f"{_fmt(job.window_start)} .. {_fmt(job.window_end) if job.window_end else 'now'}"
    status = job.status.value
    if job.status is JobStatus.FAILED and job.last_error:
        status += f" ({job.last_error[:60]})"
    return {"shop": shop, "watermark": watermark, "job": f"{job.job_type.value} {job.partition_key}",
            "status": status, "window": window, "run_id": job.run_id or NONE, "updated": _fmt(job.updated_at)}
