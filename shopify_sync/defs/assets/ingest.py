"""Ingest assets: the raw Shopify export, and the order tables loaded from it.

    shopify_bulk_jsonl ─▶ order_header / order_line_item / order_refund

The bodies translate Dagster context into sync-engine calls and engine results into
metadata; ``defs.assets.build_assets`` applies the decorators (the partitions
definition depends on the configured shops).
"""

# No `from __future__ import annotations` here: Dagster reads the parameter annotations
# (context type, resources) of these functions as objects when it decorates them.
from collections.abc import Iterator

import dagster as dg

from shopify_sync.defs.assets.catalog import catalog_starter
from shopify_sync.defs.assets.keys import INGEST_GROUP, ORDER_TABLES, OWNERS, RAW_KEY, SHOPIFY_RETRY
from shopify_sync.defs.metadata import Metadata, per_shop
from shopify_sync.defs.partitions import shop_days_for_context
from shopify_sync.defs.resources import ObjectStoreResource, ShopifyBulkResource, WarehouseResource
from shopify_sync.defs.run_context import asset_step
from shopify_sync.sync import FetchOutcome, LoadOutcome, fetch_raw, load_orders
from shopify_sync.warehouse.queries import order_table_rows
from shopify_sync.warehouse.sizing import cache_footprint

_TABLE_DESCRIPTIONS = {
    "order_header": "One row per Shopify order (test and cancelled included, flagged), totals after returns, "
    "statuses as Shopify's enum names.",
    "order_line_item": "Exactly the line items Shopify returns for each fetched order: ordered and current "
    "quantity, unit prices before/after discounts.",
    "order_refund": "Refunds per order with the refunded amount.",
}
# Shown under each order table: a table holds every day's rows, so its partitions say
# which run last wrote to it, not which rows it holds.
_TABLE_PARTITION_NOTE = (
    "\n\n**Partition (date × shop):** the run that loaded the shop's fetched orders. A daily run's "
    "date is the metric day it was launched for, but it upserts every order *updated* in its fetched "
    "window (see `window` on shopify_bulk_jsonl), whatever day the orders belong to; a backfill's "
    "dates are the days whose *created* orders it loaded."
)
ORDER_TABLE_SPECS = [
    dg.AssetSpec(key, deps=[RAW_KEY], group_name=INGEST_GROUP, kinds={"sql", "python"}, owners=OWNERS,
                 description=_TABLE_DESCRIPTIONS[key.path[-1]] + _TABLE_PARTITION_NOTE)
    for key in ORDER_TABLES
]


def fetch_metadata(outcomes: list[FetchOutcome]) -> Metadata:
    objects = sum(o.object_count or 0 for o in outcomes)
    return {
        "shops": dg.MetadataValue.text(", ".join(o.shop for o in outcomes)),
        "window": per_shop([(o.shop, o.window.describe()) for o in outcomes]),
        "bulk_operation_id": per_shop([(o.shop, o.bulk_operation_id) for o in outcomes]),
        "object_count": dg.MetadataValue.int(objects),
        "bytes_downloaded": dg.MetadataValue.int(sum(o.bytes or 0 for o in outcomes)),
        "archive_key": per_shop([(o.shop, o.archive_key) for o in outcomes]),
        "resumed_job": dg.MetadataValue.bool(any(o.adopted for o in outcomes)),
        "reused_archive": dg.MetadataValue.bool(any(o.reused_archive for o in outcomes)),
        "watermark_before": per_shop([(o.shop, o.watermark_before) for o in outcomes]),
        "dagster/row_count": dg.MetadataValue.int(objects),
    }


def shopify_bulk_jsonl(
    context: dg.AssetExecutionContext,
    shopify: ShopifyBulkResource,
    warehouse: WarehouseResource,
    object_store: ObjectStoreResource,
) -> dg.MaterializeResult:
    """The raw Shopify export of the shop's orders for this run's window, archived as is.

    One Shopify bulk operation per shop per run (request → poll → download), the
    JSONL archived in the object store at ``raw/shopify/shop=<CODE>/<job_type>/date=<D>/<run_id>.jsonl``
    before anything parses it: the audit trail, and what ``shopify-sync replay`` re-reads
    after Shopify's 7-day URL expiry. Daily runs fetch orders *updated* since the
    watermark (minus the lookback, never before the floor); backfills fetch orders
    *created* in the selected days. A crashed run re-polls its stored operation.

    **Partition (date × shop):** for a daily run (the schedule, Materialize, the CLI, the
    API) the date is the metric day the run is for, normally yesterday; the window it
    fetches comes from the shop's watermark, not from that date, and is shown as
    ``window`` in the materialization's metadata. For a backfill, the selected dates are
    the days whose created orders are fetched.
    """
    with asset_step(context, warehouse, object_store, shopify) as ctx:
        # API >= 2026-01: the catalog's operation starts once ours is submitted, and runs beside it.
        outcomes = [fetch_raw(ctx, sd.shop, sd.key, first_day=sd.first, start=sd.start, end=sd.end,
                              after_submit=catalog_starter(context, ctx, sd))
                    for sd in shop_days_for_context(context)]
    run_md: Metadata = {"mode": dg.MetadataValue.text(ctx.run.mode.value),
                        "initiator": dg.MetadataValue.text(ctx.run.initiator.value)}
    return dg.MaterializeResult(metadata={**run_md, **fetch_metadata(outcomes)})


def load_metadata(loads: list[LoadOutcome]) -> Metadata:
    """What the three order tables share: how the load of the run's file went."""
    md: Metadata = {
        "objects": dg.MetadataValue.int(sum(lo.objects for lo in loads)),
        "resumed_from_line": per_shop([(lo.shop, lo.start_line) for lo in loads]),
        "commerce_events": dg.MetadataValue.int(sum(lo.commerce_events for lo in loads)),
        "max_updated_at": per_shop([(lo.shop, lo.max_updated_at) for lo in loads]),
        "ingest_seconds": dg.MetadataValue.float(round(sum(lo.ingest_seconds for lo in loads), 2)),
        "orders_skipped_older": dg.MetadataValue.int(sum(lo.orders_skipped_older for lo in loads)),
        "chunks_redone_as_upserts": dg.MetadataValue.int(sum(lo.fresh_conflicts for lo in loads)),
    }
    events_keys = sorted({lo.events_key for lo in loads if lo.events_key})
    if events_keys:
        md["commerce_events_object"] = dg.MetadataValue.text(", ".join(events_keys))
    # A resumed load's rows include chunks an earlier attempt committed: no honest rate.
    whole = [lo for lo in loads if lo.start_line == 0 and lo.ingest_seconds > 0]
    if whole:
        rate = sum(sum(lo.rows.values()) for lo in whole) / sum(lo.ingest_seconds for lo in whole)
        md["ingest_rows_per_s"] = dg.MetadataValue.int(round(rate))
    return md


def rows_table(loads: list[LoadOutcome], totals: dict[str, int]) -> str:
    """Markdown: per order table, the rows this run upserted and the rows now stored for its shops."""
    lines = ["| table | upserted by this run | stored for the run's shops |", "|---|---:|---:|"]
    for table, total in totals.items():
        lines.append(f"| {table} | {sum(int(lo.rows.get(table, 0)) for lo in loads)} | {total} |")
    return "\n".join(lines)


def order_tables(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, object_store: ObjectStoreResource
) -> Iterator[dg.MaterializeResult]:
    """Orders, line items and refunds upserted from the archived JSONL in one chunked pass.

    Idempotent: keyed by (shop, id), never overwritten by an older ``updated_at``;
    each chunk commits with the job's ``lines_committed``, so a re-run resumes
    after the last committed chunk.
    """
    with asset_step(context, warehouse, object_store) as ctx:
        loads = [load_orders(ctx, sd.shop, sd.key) for sd in shop_days_for_context(context)]
        shops = [lo.shop for lo in loads]
        row_counts = {key: order_table_rows(ctx.engine, key.path[-1], shops) for key in ORDER_TABLES}
        footprint = cache_footprint(ctx.engine)
    common = load_metadata(loads)
    if footprint is not None and (shortfall := footprint.shortfall()) is not None:
        # Not an error: the run is right, only slow; the warning says what to change.
        context.log.warning(shortfall)
        common["warehouse_cache_warning"] = dg.MetadataValue.text(shortfall)
    common["rows"] = dg.MetadataValue.md(rows_table(loads, {k.path[-1]: n for k, n in row_counts.items()}))
    for key in ORDER_TABLES:
        table = key.path[-1]
        yield dg.MaterializeResult(asset_key=key, metadata={
            **common,
            "rows_upserted": dg.MetadataValue.int(sum(int(lo.rows.get(table, 0)) for lo in loads)),
            "dagster/row_count": dg.MetadataValue.int(row_counts[key]),
        })


def build_ingest_assets(
    partitions_def: dg.PartitionsDefinition, backfill_policy: dg.BackfillPolicy | None
) -> list[dg.AssetsDefinition]:
    return [
        dg.asset(key=RAW_KEY, partitions_def=partitions_def, backfill_policy=backfill_policy,
                 retry_policy=SHOPIFY_RETRY, group_name=INGEST_GROUP, kinds={"shopify", "graphql", "json"},
                 owners=OWNERS)(shopify_bulk_jsonl),
        dg.multi_asset(specs=ORDER_TABLE_SPECS, partitions_def=partitions_def, backfill_policy=backfill_policy,
                       name="order_tables")(order_tables),
    ]
