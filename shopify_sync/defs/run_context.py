"""From a Dagster step to the sync: the run's identity, and the ``StepContext`` of one step.

Every asset builds its context through ``step_context`` (one call per asset body), so the
way a step reaches the warehouse, the object store and Shopify is decided here once.
"""

from __future__ import annotations

import dagster as dg

from shopify_sync.config import load_settings
from shopify_sync.defs.resources import ObjectStoreResource, ShopifyBulkResource, WarehouseResource
from shopify_sync.sync import RunInfo, StepContext
from shopify_sync.timeutil import as_utc, utcnow

ExecutionContext = dg.AssetExecutionContext | dg.AssetCheckExecutionContext


def run_info(context: ExecutionContext) -> RunInfo:
    """Mode, initiator and creation time of the step's run (from its tags and run record)."""
    run = context.run
    record = context.instance.get_run_record_by_id(run.run_id)
    created = record.create_timestamp if record is not None else utcnow()
    return RunInfo.from_tags(run.run_id, run.tags, as_utc(created))


def step_context(
    context: ExecutionContext,
    warehouse: WarehouseResource,
    object_store: ObjectStoreResource,
    shopify: ShopifyBulkResource | None = None,
) -> StepContext:
    return StepContext(
        run=run_info(context),
        # Window knobs (floor, lookback) are read at run time, like every resource.
        settings=load_settings(),
        engine=warehouse.get_engine(),
        store=object_store.get_store(),
        shopify=shopify,
        chunk_rows=warehouse.chunk_rows,
        log=context.log,
    )
