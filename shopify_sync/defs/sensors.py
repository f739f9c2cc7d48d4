"""Run-status sensors that complete the SYNC_TELEMETRY stream (SPEC §6).

Every sync run writes its own step records, ``completed`` or ``failed`` last. A run
that dies before or outside its own code (a resource that fails to start, a bad
environment, a crashed worker, a cancellation) cannot; these sensors, evaluated by
the Dagster daemon, add the missing record so dashboards and ``/api/ingest/runs``
never show such a run as silently "running" forever.

Idempotent by construction: a shop whose records already end with ``completed`` or
``failed`` is left alone, so a re-evaluated tick (the cursor only advances when a
tick succeeds) or a run that did write its own record adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TypedDict

import dagster as dg
from dagster._utils.error import SerializableErrorInfo

from shopify_sync.errors import ErrorSummary, summarize_text
from shopify_sync.storage.object_store import ObjectStore
from shopify_sync.storage.resource import ObjectStoreResource
from shopify_sync.sync.rules import (
    TAG_RANGE_END,
    TAG_RANGE_START,
    TAG_SHOP,
    initiator_from_tags,
    mode_from_tags,
)
from shopify_sync.telemetry import RecordFields, SyncRecord, SyncTelemetry, read_sync_records
from shopify_sync.timeutil import as_utc, utc_day, utcnow
from shopify_sync.vocab import TERMINAL_STEPS, Step, StepStatus

SENSOR_INTERVAL_SECONDS = 30

# --------------------------------------------------------------------------------------
# Which runs, which shops
# --------------------------------------------------------------------------------------


def run_shops(tags: Mapping[str, str]) -> list[str]:
    """Shops a run works on, from its tags; empty for a run that is not a sync.

    Daily runs carry the multi-partition tags (``<date>|<shop>``), CLI/API runs also
    ``shopify_sync/shop``, ranged backfills the partition range tags.
    """
    shops: list[str] = []

    def add(value: str | None) -> None:
        if value and value not in shops:
            shops.append(value)

    add(tags.get(TAG_SHOP))
    add(tags.get("dagster/partition/shop"))
    for tag in ("dagster/partition", TAG_RANGE_START, TAG_RANGE_END):
        raw = tags.get(tag)
        if raw and "|" in raw:
            add(raw.rsplit("|", 1)[1])
    return shops


# --------------------------------------------------------------------------------------
# The error of a failed run
# --------------------------------------------------------------------------------------

def _root_cause(error: SerializableErrorInfo) -> SerializableErrorInfo:
    """Dagster wraps user errors (DagsterResourceFunctionError, step execution errors);
    the operator needs the innermost cause (the one their code or config raised)."""
    seen = 0
    while error.cause is not None and seen < 20:
        error = error.cause
        seen += 1
    return error


def error_from_info(error: SerializableErrorInfo) -> ErrorSummary:
    """The root cause of a recorded error, summarised as every error is (``errors.summarize_text``)."""
    root = _root_cause(error)
    message = (root.message or "").strip()
    # SerializableErrorInfo.message is "module.Class: text"; keep the text only.
    head, sep, rest = message.partition(": ")
    if sep and head.rsplit(".", 1)[-1] == root.cls_name:
        message = rest
    return summarize_text(root.cls_name or "Error", message)


def run_error(instance: dg.DagsterInstance, run_id: str, fallback: str | None = None) -> ErrorSummary:
    """The most specific error recorded for a failed run.

    Order matters: a step failure carries the user exception; a run failure (e.g.
    resources failing to start under the in-process executor) carries it as the cause
    of a Dagster wrapper; the resource-init engine event is a last resort.
    """
    kinds = (dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE,
             dg.DagsterEventType.RESOURCE_INIT_FAILURE)
    for kind in kinds:
        records = instance.get_records_for_run(run_id, of_type=kind, ascending=False, limit=5).records
        for record in records:
            event = record.event_log_entry.dagster_event
            if event is None:
                continue
            data = event.event_specific_data
            error = getattr(data, "error", None)
            if isinstance(error, SerializableErrorInfo):
                return error_from_info(error)
    return summarize_text("RunFailure", fallback or "the run failed before recording an error")


# --------------------------------------------------------------------------------------
# Writing the missing record
# --------------------------------------------------------------------------------------


def _records_by_shop(records: Iterable[SyncRecord]) -> dict[object, list[SyncRecord]]:
    out: dict[object, list[SyncRecord]] = {}
    for rec in records:
        out.setdefault(rec.get("shop"), []).append(rec)
    return out


def _run_created_at(instance: dg.DagsterInstance, run_id: str) -> datetime:
    record = instance.get_run_record_by_id(run_id)
    created: object = record.create_timestamp if record is not None else None
    if isinstance(created, int | float):
        return datetime.fromtimestamp(created, UTC)
    return as_utc(created) if isinstance(created, datetime) else utcnow()


def complete_run_telemetry(
    *,
    instance: dg.DagsterInstance,
    run: dg.DagsterRun,
    store: ObjectStore,
    step: Step,
    status: StepStatus,
    error: ErrorSummary | None = None,
    only_if_empty: bool = False,
) -> list[str]:
    """Add ``step`` for every shop of ``run`` whose records do not already end the run.

    Returns the shops a record was written for (empty when there was nothing to do).
    With ``only_if_empty`` a record is written only for a shop with no record at all
    (the start sensor must not add noise to a run that is already reporting).
    """
    shops = run_shops(run.tags)
    if not shops:
        return []
    created_at = _run_created_at(instance, run.run_id)
    by_shop = _records_by_shop(read_sync_records(store, run.run_id, run_date=utc_day(created_at)))
    mode = mode_from_tags(run.tags)
    initiator = initiator_from_tags(run.tags)
    written = []
    for shop in shops:
        existing = by_shop.get(shop, [])
        if existing and (only_if_empty or existing[-1].get("step") in TERMINAL_STEPS):
            continue
        fields: RecordFields = {"recorded_by": "run_status_sensor"}
        if error is not None:
            fields["error"] = error
        SyncTelemetry(
            store, run_id=run.run_id, shop=shop, job_type=mode, initiator=initiator, run_created_at=created_at,
        ).record(step, status, **fields)
        written.append(shop)
    return written


def _log(context: dg.RunStatusSensorContext, what: str, shops: list[str]) -> None:
    if shops:
        context.log.info(f"run {context.dagster_run.run_id}: added '{what}' telemetry for {', '.join(shops)}")


# --------------------------------------------------------------------------------------
# The sensors
# --------------------------------------------------------------------------------------

class _SensorOptions(TypedDict):
    monitor_all_code_locations: bool
    minimum_interval_seconds: int
    default_status: dg.DefaultSensorStatus


_COMMON: _SensorOptions = {
    "monitor_all_code_locations": False,
    "minimum_interval_seconds": SENSOR_INTERVAL_SECONDS,
    # On by default: telemetry completeness is part of the product, not an opt-in.
    "default_status": dg.DefaultSensorStatus.RUNNING,
}


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.STARTED,
    name="sync_telemetry_on_start",
    description="Records `initiated` for a sync run that started but has not reported yet.",
    **_COMMON,
)
def sync_telemetry_on_start(context: dg.RunStatusSensorContext, object_store: ObjectStoreResource) -> None:
    shops = complete_run_telemetry(instance=context.instance, run=context.dagster_run,
                                   store=object_store.get_store(), step=Step.INITIATED, status=StepStatus.STARTED,
                                   only_if_empty=True)
    _log(context, "initiated", shops)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="sync_telemetry_on_success",
    description="Records `completed` for a successful sync run whose telemetry does not end yet.",
    **_COMMON,
)
def sync_telemetry_on_success(context: dg.RunStatusSensorContext, object_store: ObjectStoreResource) -> None:
    shops = complete_run_telemetry(instance=context.instance, run=context.dagster_run,
                                   store=object_store.get_store(), step=Step.COMPLETED, status=StepStatus.SUCCEEDED)
    _log(context, "completed", shops)


@dg.run_failure_sensor(
    name="sync_telemetry_on_failure",
    description="Records `failed` with the error for a sync run that died without reporting it "
    "(resource start-up, bad environment, crashed worker).",
    **_COMMON,
)
def sync_telemetry_on_failure(context: dg.RunFailureSensorContext, object_store: ObjectStoreResource) -> None:
    run = context.dagster_run
    fallback = context.failure_event.message if context.failure_event is not None else None
    error = run_error(context.instance, run.run_id, fallback)
    shops = complete_run_telemetry(instance=context.instance, run=run, store=object_store.get_store(),
                                   step=Step.FAILED, status=StepStatus.FAILED, error=error)
    _log(context, "failed", shops)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.CANCELED,
    name="sync_telemetry_on_cancel",
    description="Records `failed` (RunCanceled) for a cancelled sync run.",
    **_COMMON,
)
def sync_telemetry_on_cancel(context: dg.RunStatusSensorContext, object_store: ObjectStoreResource) -> None:
    error = ErrorSummary("RunCanceled", "the run was canceled before it completed")
    shops = complete_run_telemetry(instance=context.instance, run=context.dagster_run,
                                   store=object_store.get_store(), step=Step.FAILED, status=StepStatus.FAILED,
                                   error=error)
    _log(context, "failed (canceled)", shops)


sensors: list[dg.SensorDefinition] = [
    sync_telemetry_on_start,
    sync_telemetry_on_success,
    sync_telemetry_on_failure,
    sync_telemetry_on_cancel,
]


def build_sensors(settings: object = None) -> list[dg.SensorDefinition]:
    """What ``shopify_sync.defs.build_definitions`` includes; the sensors need no settings."""
    return list(sensors)
