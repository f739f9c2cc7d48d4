"""Relaunch the scheduled daily run after a transient failure (SPEC §3, issue 14.14).

The run's own step retries cover a minute or two; Shopify down for an hour, or a
network outage, outlast them. This sensor, evaluated by the Dagster daemon, finds
failed scheduled daily runs, asks how they failed, and relaunches the same (day,
shop) with growing delays for up to 12 hours (``launch.backoff``: the ledger, kept in
the sensor's cursor). A run that failed at once on a configuration or infrastructure
error (``failures.classify`` said no retry can help: the step raised
``dg.Failure(allow_retries=False)``) is not relaunched. A newer run of the same
partition that is running or succeeded (Dagster's own run retry, an operator's
re-run) takes the relaunch's place.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime

import dagster as dg
from dagster._core.storage.dagster_run import RunRecord

from shopify_sync.launch.backoff import Ledger, Verdict
from shopify_sync.launch.plan import (
    SYNC_JOB_NAME,
    TAG_PARTITION,
    TAG_PARTITION_DATE,
    TAG_PARTITION_SHOP,
    daily_relaunch,
)
from shopify_sync.sync import TAG_INITIATOR, TAG_MODE
from shopify_sync.vocab import Initiator, Mode

SENSOR_NAME = "shopify_sync_daily_relaunch"
INTERVAL_SECONDS = 60
# How far back each tick looks for failed runs: the window plus a margin.
LOOKBACK_SECONDS = 13 * 3600
# Root-cause classes of a run-level failure (no step failed) that no relaunch can help.
_CONFIGURATION_ERRORS = frozenset({"ConfigError", "DagsterInvalidConfigError", "DagsterInvalidDefinitionError"})
_LIVE = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
         dg.DagsterRunStatus.STARTED]


def failed_daily_runs(instance: dg.DagsterInstance, now: float) -> list[RunRecord]:
    """Failed scheduled daily runs of the sync job that ended in the lookback, oldest first."""
    filters = dg.RunsFilter(job_name=SYNC_JOB_NAME, statuses=[dg.DagsterRunStatus.FAILURE],
                            tags={TAG_MODE: Mode.DAILY_INCREMENTAL.value, TAG_INITIATOR: Initiator.CRON.value},
                            updated_after=datetime.fromtimestamp(now - LOOKBACK_SECONDS, UTC))
    records = instance.get_run_records(filters=filters, limit=500)
    return sorted(records, key=lambda r: (r.end_time or r.update_timestamp.timestamp(), r.dagster_run.run_id))


def is_transient(instance: dg.DagsterInstance, run_id: str) -> bool:
    """False when the run failed on something no relaunch can fix (see the module doc)."""
    steps = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    for record in steps:
        event = record.event_log_entry.dagster_event
        data = event.step_failure_data if event is not None else None
        if data is not None and data.user_failure_data is not None:
            return False  # only asset_step raises dg.Failure: its "fail at once" verdict
    if steps:
        return True
    runs = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    for record in runs:
        event = record.event_log_entry.dagster_event
        error = getattr(event.event_specific_data, "error", None) if event is not None else None
        while error is not None and error.cause is not None:
            error = error.cause
        if error is not None and error.cls_name in _CONFIGURATION_ERRORS:
            return False
    return True


def _newest_other_run(instance: dg.DagsterInstance, partition: str, failed_run: str) -> dg.DagsterRun | None:
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=SYNC_JOB_NAME, tags={TAG_PARTITION: partition}),
                             limit=1)
    return runs[0] if runs and runs[0].run_id != failed_run else None


def evaluate_relaunches(
    instance: dg.DagsterInstance, ledger: Ledger, now: float, log: Callable[[str], None] | None = None
) -> list[dg.RunRequest]:
    """One tick: record new failures in ``ledger``, then request the relaunches now due."""
    for record in failed_daily_runs(instance, now):
        run = record.dagster_run
        shop, day = run.tags.get(TAG_PARTITION_SHOP), run.tags.get(TAG_PARTITION_DATE)
        if not shop or not day:
            continue
        failed_at = record.end_time or record.update_timestamp.timestamp()
        verdict = ledger.record_failure(shop, day, run.run_id, failed_at, transient=is_transient(instance, run.run_id))
        if verdict is not Verdict.ALREADY_SEEN:
            _say(log, f"daily run {run.run_id} of {shop} {day} failed: {verdict.value}")
    requests = []
    for entry in ledger.due(now):
        newer = _newest_other_run(instance, entry.key, entry.last_failed_run)
        if newer is not None and newer.status == dg.DagsterRunStatus.SUCCESS:
            ledger.forget(entry.key)
            continue
        if newer is not None and newer.status in _LIVE:
            ledger.postpone(entry.key, now + INTERVAL_SECONDS)  # e.g. Dagster's own run retry
            continue
        attempt = entry.failures + 1
        launch = daily_relaunch(entry.shop, date.fromisoformat(entry.day), entry.last_failed_run, attempt)
        requests.append(dg.RunRequest(run_key=f"relaunch:{entry.key}:{attempt}", partition_key=launch.partition_key,
                                      tags=launch.tags))
        ledger.launched(entry.key)
        _say(log, f"relaunching {launch.label} after {entry.failures} failure(s)")
    ledger.prune(now)
    return requests


def _say(log: Callable[[str], None] | None, message: str) -> None:
    if log is not None:
        log(message)


def build_relaunch_sensor(job: dg.UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    @dg.sensor(
        name=SENSOR_NAME,
        job=job,
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Relaunches a scheduled daily sync that failed for a transient reason (Shopify down or "
        "throttled, network errors) with growing delays (5 min, 10, 20, 40, 80, then every 2 h) for up to "
        "12 hours after its first failure. Configuration failures are not relaunched. The backoff ledger is "
        "this sensor's cursor.",
    )
    def shopify_sync_daily_relaunch(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        ledger = Ledger.from_cursor(context.cursor)
        requests = evaluate_relaunches(context.instance, ledger, time.time(), context.log.info)
        return dg.SensorResult(run_requests=requests, cursor=ledger.to_cursor())

    return shopify_sync_daily_relaunch

