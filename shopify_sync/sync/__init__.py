"""The sync the Dagster assets call (SPEC §3): one-way steps over one typed context.

- ``rules``: pure decisions (run tags → mode and initiator, windows, watermark arithmetic);
- ``context``: ``StepContext``, what a step gets (run, settings, SQLAlchemy engine, object store, log);
- ``step_telemetry``: how a step reports (started, then succeeded or failed) and fails its job;
- ``fetch`` / ``load`` / ``finish``: ``fetch_raw``, ``load_orders``, ``finish_run``.

Data flows down: asset → step → warehouse / object store / Shopify client. Every
decision about *what* to fetch and *whether* to resume lives here, so the CLI, the
schedule, backfills and the API all behave alike; state between steps goes through
``sync_job`` (``warehouse.jobs``) and the object store, never through local files.
"""

from shopify_sync.sync.context import ShopifyClients, StepContext
from shopify_sync.sync.fetch import FetchOutcome, fetch_raw
from shopify_sync.sync.finish import FinishOutcome, finish_run
from shopify_sync.sync.load import LoadOutcome, load_orders
from shopify_sync.sync.rules import (
    TAG_BACKFILL,
    TAG_FULL_CATALOG,
    TAG_INITIATOR,
    TAG_MODE,
    TAG_RANGE_END,
    TAG_RANGE_START,
    TAG_REPLAY_OF,
    TAG_SCHEDULE,
    TAG_SHOP,
    RunInfo,
    Window,
    backfill_window,
    incremental_window,
    initiator_from_tags,
    mode_from_tags,
    next_watermark,
    stored_window,
    watermark_to_advance,
)
from shopify_sync.sync.step_telemetry import StepRecorder, operation_is_dead, step_telemetry
from shopify_sync.vocab import Initiator, Mode

__all__ = [
    "TAG_BACKFILL", "TAG_FULL_CATALOG", "TAG_INITIATOR", "TAG_MODE", "TAG_RANGE_END", "TAG_RANGE_START", "TAG_REPLAY_OF",
    "TAG_SCHEDULE", "TAG_SHOP", "FetchOutcome", "FinishOutcome", "Initiator", "LoadOutcome", "Mode", "RunInfo",
    "ShopifyClients", "StepContext", "StepRecorder", "Window", "backfill_window", "fetch_raw",
    "finish_run", "incremental_window", "initiator_from_tags", "load_orders", "mode_from_tags", "next_watermark",
    "operation_is_dead", "step_telemetry", "stored_window", "watermark_to_advance",
]
