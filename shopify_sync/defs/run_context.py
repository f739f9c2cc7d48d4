"""From a Dagster step to the sync: the run's identity, and the ``StepContext`` of one step.

Every asset body runs inside ``asset_step`` (one per body), so the way a step reaches
the warehouse, the object store and Shopify, and the way its failures are mapped to
Dagster's, are decided here once. The engine and the store are built *inside* that
mapping: an unreachable warehouse or an unusable store fails the step at once, with
one line naming the setting, instead of going through the retry policy
(``shopify_sync.failures`` decides what a retry can help).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import dagster as dg

from shopify_sync.config import load_settings
from shopify_sync.defs.partitions import shop_days_for_context
from shopify_sync.defs.resources import ObjectStoreResource, ShopifyBulkResource, WarehouseResource
from shopify_sync.errors import ErrorSummary, summarize_error
from shopify_sync.failures import classify, failure_line, storage_setting, warehouse_setting
from shopify_sync.launch.plan import TAG_PARTITION_SHOP
from shopify_sync.launch.status import dead_process
from shopify_sync.storage.object_store import ObjectStore
from shopify_sync.sync import RunInfo, StepContext
from shopify_sync.sync.rules import TAG_INITIATOR, TAG_MODE, TAG_SHOP
from shopify_sync.telemetry import SyncTelemetry
from shopify_sync.timeutil import as_utc, utcnow
from shopify_sync.vocab import Step, StepStatus
from shopify_sync.warehouse.ingest.read import malloc_trim

ExecutionContext = dg.AssetExecutionContext | dg.AssetCheckExecutionContext


def run_info(context: ExecutionContext) -> RunInfo:
    """Mode, initiator and creation time of the step's run (from its tags and run record)."""
    run = context.run
    record = context.instance.get_run_record_by_id(run.run_id)
    created = record.create_timestamp if record is not None else utcnow()
    info = RunInfo.from_tags(run.run_id, run.tags, as_utc(created))
    missing = missing_run_tags(run.tags, info)
    if missing:
        context.instance.add_run_tags(run.run_id, missing)
    return info


def missing_run_tags(tags: Mapping[str, str], info: RunInfo) -> dict[str, str]:
    """The job type, initiator and shop tags a run launched from the UI lacks, as derived.

    The CLI, the API and the schedule tag their runs; a Materialize click or a Dagster
    backfill does not, so the runs list could not tell them apart. The shop tag is only
    added beside Dagster's own one-partition shop tag: the instance's one-run-per-shop
    limit keys on it, and a ranged backfill run must stay outside that limit (dagster.yaml).
    """
    out = {}
    if TAG_MODE not in tags:
        out[TAG_MODE] = info.mode.value
    if TAG_INITIATOR not in tags:
        out[TAG_INITIATOR] = info.initiator.value
    shop = tags.get(TAG_PARTITION_SHOP)
    if shop and TAG_SHOP not in tags:
        out[TAG_SHOP] = shop
    return out


def run_liveness(instance: dg.DagsterInstance) -> Callable[[str], bool | None]:
    """Whether a run of this instance may still be working (None: a run it does not know).

    An ended run is not; nor is a CLI run whose process is gone, which nobody may have marked
    failed yet (no daemon watches in-process runs).
    """
    def live(run_id: str) -> bool | None:
        run = instance.get_run_by_id(run_id)
        if run is None:
            return None
        return not run.is_finished and dead_process(run) is None

    return live


class SetupFailed(Exception):
    """A resource could not be built; ``setting`` is the variable to fix."""

    def __init__(self, setting: str, cause: Exception) -> None:
        super().__init__(failure_line(cause, setting))
        self.setting = setting


def step_context(
    context: ExecutionContext,
    warehouse: WarehouseResource,
    object_store: ObjectStoreResource,
    shopify: ShopifyBulkResource | None = None,
) -> StepContext:
    """The step's context; raises ``SetupFailed`` when the store or the warehouse is unusable."""
    run = run_info(context)
    try:
        store = object_store.get_store()
    except Exception as exc:
        raise SetupFailed(storage_setting(), exc) from exc
    try:
        engine = warehouse.get_engine()  # connects and migrates: a wrong URL fails here
    except Exception as exc:
        record_early_failure(context, run, store, summarize_error(exc), warehouse_setting())
        raise SetupFailed(warehouse_setting(), exc) from exc
    return StepContext(
        run=run,
        # Window knobs (floor, lookback) are read at run time, like every resource.
        settings=load_settings(),
        engine=engine,
        store=store,
        shopify=shopify,
        chunk_rows=warehouse.chunk_rows,
        log=context.log,
        run_state=run_liveness(context.instance),
    )


def record_early_failure(
    context: ExecutionContext, run: RunInfo, store: ObjectStore, error: ErrorSummary, setting: str
) -> None:
    """The ``failed`` record (SPEC §6) of a run that fails before any step could write one."""
    try:
        shops = dict.fromkeys(sd.shop for sd in shop_days_for_context(context))
        for shop in shops:
            SyncTelemetry(store, run_id=run.run_id, shop=shop, job_type=run.mode, initiator=run.initiator,
                          run_created_at=run.created_at, process_initiated_at=run.created_at).record(
                Step.FAILED, StepStatus.FAILED, error=ErrorSummary(error.type, f"{setting}: {error.message}"))
    except Exception:  # noqa: BLE001 - a store that cannot take it must not hide the cause
        pass


@contextmanager
def memory_released() -> Iterator[None]:
    """Hands the memory a step freed back to the OS when it ends (glibc ``malloc_trim``).

    The CLI runs every step and check of a run in its one process: without it, what the
    ingest and each transform had freed stayed in the allocator's arenas and the next step's
    peak came on top of it (the CLI peaked at 571-651 MB at 1M orders; docs/benchmarks.md,
    session 8). A few milliseconds per step."""
    try:
        yield
    finally:
        malloc_trim()


@contextmanager
def asset_step(
    context: ExecutionContext,
    warehouse: WarehouseResource,
    object_store: ObjectStoreResource,
    shopify: ShopifyBulkResource | None = None,
) -> Iterator[StepContext]:
    """The step's context, with its failures mapped: what a retry cannot help becomes a
    ``dg.Failure`` without retries whose description names the setting to fix."""
    try:
        with memory_released():
            yield step_context(context, warehouse, object_store, shopify)
    except dg.Failure:
        raise
    except SetupFailed as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc.__cause__
    except Exception as exc:
        verdict = classify(exc)
        if verdict.retry:
            raise
        raise dg.Failure(description=failure_line(exc, verdict.setting), allow_retries=False) from exc
