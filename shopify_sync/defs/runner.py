"""Running the sync job in-process against a Dagster instance (the CLI's engine room).

The CLI does not reimplement the sync: it launches the very job the schedule and the
UI launch, in this process, so its runs are recorded in ``DAGSTER_HOME`` and show in
the UI with their logs, materializations and checks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import dagster as dg

from shopify_sync.config import Settings
from shopify_sync.defs.jobs import SYNC_JOB_NAME
from shopify_sync.defs.partitions import partition_key
from shopify_sync.errors import ErrorSummary
from shopify_sync.sync import (
    TAG_INITIATOR,
    TAG_MODE,
    TAG_RANGE_END,
    TAG_RANGE_START,
    TAG_REPLAY_OF,
    TAG_SHOP,
    Initiator,
    Mode,
)
from shopify_sync.vocab import Step, StepStatus

Launch = tuple[str, dict[str, str], str | None]


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    success: bool
    error: str | None = None


def daily_launch(shop: str, day: date) -> Launch:
    tags = {TAG_MODE: Mode.DAILY_INCREMENTAL.value, TAG_INITIATOR: Initiator.USER.value, TAG_SHOP: shop}
    return (f"sync {shop} {day}", tags, str(partition_key(day, shop)))


def backfill_launch(shop: str, start: date, end: date) -> Launch:
    """One ranged run per shop: one bulk operation covers the whole range (the BackfillPolicy's intent)."""
    tags = {
        TAG_MODE: Mode.FULL_BACKFILL_EXECUTE.value,
        TAG_INITIATOR: Initiator.BACKFILL.value,
        TAG_SHOP: shop,
        TAG_RANGE_START: str(partition_key(start, shop)),
        TAG_RANGE_END: str(partition_key(end, shop)),
    }
    return (f"backfill {shop} {start}..{end}", tags, None)


def replay_launches(settings: Settings, run_id: str) -> list[Launch]:
    """One REPLAY run per shop whose raw file ``run_id`` archived, over the same days."""
    from shopify_sync.warehouse import ensure_schema, make_engine
    from shopify_sync.warehouse.jobs import archived_jobs

    engine = make_engine(settings.database_url)
    try:
        ensure_schema(engine)
        jobs = archived_jobs(engine, run_id)
    finally:
        engine.dispose()
    launches: list[Launch] = []
    for job in jobs:
        first, _, last = str(job.partition_key).partition("..")
        start, end = date.fromisoformat(first), date.fromisoformat(last or first)
        tags = {TAG_MODE: Mode.REPLAY.value, TAG_INITIATOR: Initiator.USER.value, TAG_SHOP: job.shop,
                TAG_REPLAY_OF: run_id}
        if start == end:
            launches.append((f"replay {job.shop} {start} of {run_id}", tags, str(partition_key(start, job.shop))))
        else:
            tags[TAG_RANGE_START] = str(partition_key(start, job.shop))
            tags[TAG_RANGE_END] = str(partition_key(end, job.shop))
            launches.append((f"replay {job.shop} {start}..{end} of {run_id}", tags, None))
    return launches


@lru_cache(maxsize=4)
def _job(settings: Settings) -> dg.JobDefinition:
    from shopify_sync.defs import build_definitions

    return build_definitions(settings).resolve_job_def(SYNC_JOB_NAME)


TAG_PID = "shopify_sync/pid"
TAG_HOST = "shopify_sync/host"


def fail_orphaned_runs(instance: dg.DagsterInstance, settings: Settings | None = None) -> list[str]:
    """Mark as failed the in-process runs whose process died (SIGKILL, power loss).

    Without a daemon nobody else notices them and they would show as "started"
    forever; the sync_job they left behind is what the next run continues. Their
    telemetry gets the ``failed`` record the run could not write (what the run-status
    sensor does under the daemon).
    """
    import socket

    import psutil

    host = socket.gethostname()
    orphaned: list[str] = []
    runs = instance.get_runs(filters=dg.RunsFilter(
        job_name=SYNC_JOB_NAME, statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING]))
    for run in runs:
        pid = run.tags.get(TAG_PID, "")
        if run.tags.get(TAG_HOST) != host or not pid.isdigit() or psutil.pid_exists(int(pid)):
            continue
        message = f"process {pid} running this sync ended without reporting (killed?)"
        instance.report_run_failed(run, message)
        orphaned.append(run.run_id)
        if settings is not None:
            try:
                from shopify_sync.defs.sensors import complete_run_telemetry
                from shopify_sync.storage import open_store

                store = open_store(settings.storage_url, endpoint_url=settings.s3_endpoint_url)
                complete_run_telemetry(instance=instance, run=run, store=store, step=Step.FAILED,
                                       status=StepStatus.FAILED, error=ErrorSummary("ProcessDied", message))
            except Exception:  # noqa: BLE001 - bookkeeping of a dead run must not stop a new one
                pass
    return orphaned


def runs_in_progress(instance: dg.DagsterInstance, shop: str) -> list[dg.DagsterRun]:
    """Daily / replay runs of ``shop`` that are running now (from the CLI, the UI or the daemon).

    Backfills are left out on purpose: SPEC §3 lets a backfill run beside a daily sync.
    """
    from shopify_sync.sync import TAG_BACKFILL

    runs = instance.get_runs(filters=dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING]))
    busy = []
    for run in runs:
        shops = {run.tags.get(TAG_SHOP), run.tags.get("dagster/partition/shop")}
        if shop not in shops:
            continue
        if run.tags.get(TAG_BACKFILL) or run.tags.get(TAG_MODE) == Mode.FULL_BACKFILL_EXECUTE.value:
            continue
        busy.append(run)
    return busy


def run_sync_job(
    settings: Settings, instance: dg.DagsterInstance, *, tags: dict[str, str], partition_key: str | None,
    log_level: str = "INFO",
) -> RunOutcome:
    """Execute the sync job in this process; never raises for a failed run."""
    import socket

    fail_orphaned_runs(instance, settings)
    shop = tags.get(TAG_SHOP)
    if shop and tags.get(TAG_MODE) != Mode.FULL_BACKFILL_EXECUTE.value:
        # At most one run per shop at a time (SPEC §3); the instance's run queue enforces
        # it for launched runs, and in-process runs check here.
        busy = runs_in_progress(instance, shop)
        if busy:
            return RunOutcome(busy[0].run_id, False,
                              f"another sync of shop {shop} is running (run {busy[0].run_id}); not started")
    job = _job(settings)
    tags = {**tags, TAG_PID: str(os.getpid()), TAG_HOST: socket.gethostname()}
    result = job.execute_in_process(
        instance=instance, partition_key=partition_key, tags=tags, raise_on_error=False,
        # Step-by-step DEBUG events are in the UI; the terminal gets what an operator acts on.
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )
    if result.success:
        return RunOutcome(result.run_id, True)
    return RunOutcome(result.run_id, False, first_failure(result))


def first_failure(result: dg.ExecuteInProcessResult) -> str:
    """The first failed step and its error, on one line."""
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE" and event.step_failure_data and event.step_failure_data.error:
            err = event.step_failure_data.error
            cause = err
            # dg.Failure wraps the client's error; show the innermost user message.
            while cause.cause is not None and cause.cls_name in {"DagsterExecutionStepExecutionError"}:
                cause = cause.cause
            message = (cause.message or "").strip().splitlines()[0] if cause.message else cause.cls_name or ""
            return f"step {event.step_key}: {message}"
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            evaluation = getattr(data, "evaluation", data)
            if getattr(evaluation, "passed", True) is False:
                return f"check {evaluation.check_name} failed"
    return "run failed"


def status_table(settings: Settings, instance: dg.DagsterInstance | None = None) -> str:
    """Per shop: watermark, last job and the last Dagster runs, as a fixed-width table."""
    from shopify_sync.sync.status import shop_status
    from shopify_sync.warehouse import ensure_schema, make_engine

    engine = make_engine(settings.database_url)
    try:
        ensure_schema(engine)
        rows = [shop_status(engine, code) for code in settings.shop_codes]
    finally:
        engine.dispose()
    header = ("shop", "watermark", "last job", "status", "window", "run id", "updated")
    table = [header] + [
        (r["shop"], r["watermark"], r["job"], r["status"], r["window"], r["run_id"], r["updated"]) for r in rows
    ]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if instance is not None:
        lines += ["", "last Dagster runs:"]
        runs = instance.get_runs(filters=dg.RunsFilter(job_name=SYNC_JOB_NAME), limit=10)
        if not runs:
            lines.append("  (none)")
        for run in runs:
            lines.append(
                f"  {run.run_id}  {run.status.value:<9}  {run.tags.get(TAG_SHOP) or run.tags.get('dagster/partition/shop', '?'):<6}"
                f"  {run.tags.get(TAG_MODE, Mode.DAILY_INCREMENTAL.value):<21}"
                f"  {run.tags.get('dagster/partition') or (run.tags.get(TAG_RANGE_START, '') + '..' + run.tags.get(TAG_RANGE_END, ''))}"
            )
    return "\n".join(lines)
