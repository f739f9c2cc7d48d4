"""What ``shopify-sync status`` prints: per shop, the watermark and the last orders job from the
warehouse, the product catalog's own watermark and last CATALOG job (a table of their own, so a
catalog job is never shown as the orders'), then the last runs of the sync job from the Dagster
instance."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import dagster as dg
import psutil

from shopify_sync.config import Settings
from shopify_sync.launch.plan import SYNC_JOB_NAME, TAG_PARTITION, TAG_PARTITION_SHOP
from shopify_sync.sync import TAG_MODE, TAG_RANGE_END, TAG_RANGE_START, TAG_SHOP
from shopify_sync.timeutil import as_utc, utcnow
from shopify_sync.vocab import JobStatus, Mode
from shopify_sync.warehouse import catalog, jobs, make_engine
from shopify_sync.warehouse.jobs import SyncJob

# The CLI tags its in-process runs with the process that runs them, so a run whose
# process is gone (SIGKILL, power loss) can be told from one still running.
TAG_PID = "shopify_sync/pid"
TAG_HOST = "shopify_sync/host"
LIVE_STATUSES = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING]

HEADER = ("shop", "watermark", "last job", "status", "window", "run id", "updated")
NONE = "—"


def _fmt(ts: datetime | None) -> str:
    return as_utc(ts).strftime("%Y-%m-%d %H:%M:%SZ") if ts else NONE


def age(seconds: float) -> str:
    """``42s``, ``17min``, ``3h``, ``2d``: how long ago, for a human."""
    if seconds < 90:
        return f"{max(0, int(seconds))}s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)}min"
    if seconds < 48 * 3600:
        return f"{round(seconds / 3600)}h"
    return f"{round(seconds / 86400)}d"


def dead_process(run: dg.DagsterRun) -> str | None:
    """``process N gone`` when ``run`` was started by a CLI process on this host that has exited."""
    pid = run.tags.get(TAG_PID, "")
    if run.tags.get(TAG_HOST) != socket.gethostname() or not pid.isdigit() or psutil.pid_exists(int(pid)):
        return None
    return f"process {pid} gone"


def abandoned_reason(run: dg.DagsterRun, started: datetime | None, now: datetime, max_runtime: timedelta) -> str | None:
    """Why a run that says it is running cannot be: its process is gone, or it outlived the
    run monitoring's max runtime (the daemon fails it then, when one runs)."""
    if run.status not in LIVE_STATUSES:
        return None
    if gone := dead_process(run):
        return gone
    if started is not None and now - started > max_runtime:
        return f"over the {age(max_runtime.total_seconds())} max runtime"
    return None


def shop_row(shop: str, watermark: datetime | None, job: SyncJob | None,
             abandoned: str | None = None) -> tuple[str, ...]:
    """One line of the table, in ``HEADER`` order; ``abandoned`` says why an open job has no live run."""
    if job is None:
        return (shop, _fmt(watermark), "never synced", NONE, NONE, NONE, NONE)
    window = f"{_fmt(job.window_start)} .. {_fmt(job.window_end) if job.window_end else 'now'}"
    status = job.status.value
    if job.status is JobStatus.FAILED and job.last_error:
        status += f" ({job.last_error[:60]})"
    elif abandoned and not job.finished:
        status += f" ABANDONED ({abandoned})"
    return (shop, _fmt(watermark), f"{job.job_type.value} {job.partition_key}", status, window,
            job.run_id or NONE, _fmt(job.updated_at))


CATALOG_HEADER = ("shop", "catalog watermark", "last full refresh", "last catalog job", "status", "run id", "updated")


def catalog_row(shop: str, state: catalog.CatalogState, job: SyncJob | None, abandoned: str | None = None,
                ) -> tuple[str, ...]:
    """One line of the catalog table: the catalog's own watermark and its newest CATALOG job."""
    if job is None:
        return (shop, _fmt(state.watermark_at), _fmt(state.full_refresh_at), "never synced", NONE, NONE, NONE)
    kind = "full" if job.window_start is None else "incremental"
    status = job.status.value
    if job.status is JobStatus.FAILED and job.last_error:
        status += f" ({job.last_error[:60]})"
    elif abandoned and not job.finished:
        status += f" ABANDONED ({abandoned})"
    return (shop, _fmt(state.watermark_at), _fmt(state.full_refresh_at), f"CATALOG {job.partition_key} ({kind})",
            status, job.run_id or NONE, _fmt(job.updated_at))


def _table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...] = HEADER) -> list[str]:
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _run_line(run: dg.DagsterRun, status: str) -> str:
    tags = run.tags
    shop = tags.get(TAG_SHOP) or tags.get(TAG_PARTITION_SHOP, "?")
    partition = tags.get(TAG_PARTITION) or f"{tags.get(TAG_RANGE_START, '')}..{tags.get(TAG_RANGE_END, '')}"
    return (f"  {run.run_id}  {status:<9}  {shop:<6}"
            f"  {tags.get(TAG_MODE, Mode.DAILY_INCREMENTAL.value):<21}  {partition}")


def max_runtime(instance: dg.DagsterInstance | None) -> timedelta:
    """dagster.yaml's ``run_monitoring.max_runtime_seconds``, else the shipped 4 h."""
    seconds = instance.run_monitoring_max_runtime_seconds if instance is not None else 0
    return timedelta(seconds=seconds or jobs.STALE_JOB_SECONDS)


def run_lines(instance: dg.DagsterInstance, now: datetime) -> tuple[list[str], dict[str, str]]:
    """The last sync runs, a run that cannot be running shown as ``ABANDONED (..., started 3h ago)``;
    and the abandoned runs' reasons by run id."""
    limit = max_runtime(instance)
    lines: list[str] = []
    abandoned: dict[str, str] = {}
    for record in instance.get_run_records(filters=dg.RunsFilter(job_name=SYNC_JOB_NAME), limit=10):
        run = record.dagster_run
        started = (datetime.fromtimestamp(record.start_time, tz=UTC) if record.start_time
                   else as_utc(record.create_timestamp))
        status = run.status.value
        if reason := abandoned_reason(run, started, now, limit):
            abandoned[run.run_id] = reason
            status = f"ABANDONED ({reason}, started {age((now - started).total_seconds())} ago)"
        lines.append(_run_line(run, status))
    return lines, abandoned


def _job_abandoned(job: SyncJob | None, abandoned_runs: dict[str, str], now: datetime, limit: timedelta,
                   instance: dg.DagsterInstance | None) -> str | None:
    """Why an open job has no live run: its run is abandoned or ended (a killed CLI run failed by
    the next start), or nothing touched it for longer than the max runtime."""
    if job is None or job.finished or job.updated_at is None:
        return None
    idle = now - job.updated_at
    if job.run_id in abandoned_runs:
        return f"run {abandoned_runs[job.run_id]}, updated {age(idle.total_seconds())} ago"
    run = instance.get_run_by_id(job.run_id) if instance is not None and job.run_id else None
    if run is not None and run.is_finished:
        return f"run ended {run.status.value}, updated {age(idle.total_seconds())} ago"
    if idle > limit:
        return f"no update for {age(idle.total_seconds())}"
    return None


def status_table(settings: Settings, instance: dg.DagsterInstance | None = None) -> str:
    """Per shop: watermark, last job and the last Dagster runs, as a fixed-width table."""
    now = utcnow()
    runs, abandoned_runs = run_lines(instance, now) if instance is not None else ([], {})
    limit = max_runtime(instance)
    engine = make_engine(settings.database_url)
    try:
        rows, catalog_rows = [], []
        states = catalog.states(engine, list(settings.shop_codes))
        for code in settings.shop_codes:
            job = jobs.latest_job_of_shop(engine, code)  # the orders' job: the catalog's has its own table
            rows.append(shop_row(code, jobs.get_watermark(engine, code), job,
                                 _job_abandoned(job, abandoned_runs, now, limit, instance)))
            cat = jobs.latest_job_of_shop(engine, code, catalog=True)
            catalog_rows.append(catalog_row(code, states[code], cat,
                                            _job_abandoned(cat, abandoned_runs, now, limit, instance)))
    finally:
        engine.dispose()
    lines = [*_table(rows), "", "product catalog:", *_table(catalog_rows, CATALOG_HEADER)]
    if instance is not None:
        lines += ["", "last Dagster runs:", *(runs or ["  (none)"])]
    return "\n".join(lines)
