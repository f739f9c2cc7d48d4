"""Metric assets: product figures and the Parquet measurements (SPEC §5).

    order_header / order_line_item ─▶ product
                                   └─▶ measurement_sales ─▶ measurement_performance

Every body is range-safe: a run may carry one day or a range of days per shop.
``measurement_performance`` is the last step of a run: it closes the run (watermark,
``completed`` telemetry) and emits the watermark check inline.
"""

# No `from __future__ import annotations` here: Dagster reads the parameter annotations
# (context type, resources) of these functions as objects when it decorates them.
from datetime import timedelta

import dagster as dg

from shopify_sync.defs.assets.keys import (
    METRICS_GROUP,
    ORDER_HEADER,
    ORDER_LINE_ITEM,
    OWNERS,
    PERFORMANCE,
    PRODUCT,
    PRODUCT_VARIANT,
    SALES,
    WATERMARK_CHECK,
)
from shopify_sync.defs.metadata import per_shop
from shopify_sync.defs.partitions import shop_days_for_context
from shopify_sync.defs.resources import ObjectStoreResource, WarehouseResource
from shopify_sync.defs.run_context import asset_step
from shopify_sync.launch.plan import DATE_DIM, SHOP_DIM
from shopify_sync.metrics.measurements import refresh_products
from shopify_sync.metrics.restate import Restatement, write_performance, write_sales
from shopify_sync.sync import FinishOutcome, finish_run, step_telemetry
from shopify_sync.timeutil import as_utc
from shopify_sync.vocab import Mode, Step
from shopify_sync.warehouse.queries import TopProduct, top_products


def top_products_md(shop: str, products: list[TopProduct]) -> str:
    lines = [f"**{shop}** top products (30 days)", "", "| product | title | units | net sales | orders |",
             "|---|---|---:|---:|---:|"]
    lines += [f"| {p.product_id} | {p.title or ''} | {p.units_30d} | {p.net_sales_30d} | {p.orders_30d} |"
              for p in products]
    return "\n".join(lines)


def product(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, object_store: ObjectStoreResource
) -> dg.MaterializeResult:
    """Each product's units, net sales and orders over the last 7 and 30 days (SPEC §5).

    Refreshed as of the last day of the run, over counted orders only (not test,
    not cancelled); a product with no counted line in a window shows 0, never a
    stale figure. What staff dashboards read for "how is this product doing".

    **Partition (date × shop):** the as-of day of the figures (7 days = D-6..D, 30 days =
    D-29..D); the table keeps one row per product, as of the shop's latest computed day.
    """
    with asset_step(context, warehouse, object_store) as ctx:
        count = 0
        previews = []
        for sd in shop_days_for_context(context):
            with step_telemetry(ctx, sd.shop, sd.key, Step.TRANSFORMING):
                count += int(refresh_products(ctx.engine, sd.shop, as_of=sd.last) or 0)
                previews.append(top_products_md(sd.shop, top_products(ctx.engine, sd.shop)))
    return dg.MaterializeResult(metadata={"dagster/row_count": dg.MetadataValue.int(count),
                                          "top_products": dg.MetadataValue.md("\n\n".join(previews))})


def measurement_sales(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, object_store: ObjectStoreResource
) -> dg.MaterializeResult:
    """Daily sales per product variant: orders, units ordered/net, gross and net sales.

    One Parquet object per shop and day at ``measurement/sales/shop=<CODE>/date=<D>/part-0.parquet``,
    overwritten (byte-identical for the same data) on re-run. A daily run writes its
    day; a backfill writes every day of its range. Days whose orders this run (or a
    crashed one) changed are restated where their object is stored: each shows as a
    materialization of its own partition, and telemetry lists them under ``restated``.

    **Partition (date × shop):** the UTC day the counted orders were *processed*: the
    object for D holds exactly that day's sales, whatever run fetched them.
    """
    with asset_step(context, warehouse, object_store) as ctx:
        rows = 0
        keys: list[str] = []
        for sd in shop_days_for_context(context):
            with step_telemetry(ctx, sd.shop, sd.key, Step.TRANSFORMING) as rec:
                written = write_sales(ctx.engine, ctx.store, sd.shop, sd.days)
                rec.report(restated={SALES.to_user_string(): list(written.plan.restated)})
                log_restated(context, SALES, sd.shop, written.plan)
                rows += written.rows
                keys.extend(written.keys)
    return dg.MaterializeResult(metadata={"dagster/row_count": dg.MetadataValue.int(rows),
                                          "objects": dg.MetadataValue.int(len(keys)),
                                          "keys": dg.MetadataValue.text("\n".join(keys[:31]))})


def measurement_performance(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, object_store: ObjectStoreResource
) -> dg.MaterializeResult:
    """Each product's 7- and 30-day performance as of the day (units, net sales, orders).

    One Parquet object per shop and day at ``measurement/performance/shop=<CODE>/date=<D>/part-0.parquet``.
    Every stored day within 29 days after a changed day is restated too, then the
    shop's pending changed days are cleared (SPEC §5 Restatement).
    The last step of a run: once it is written, a daily run advances the shop's
    watermark (never backwards; a failed run never gets here) and records
    ``completed`` in the sync telemetry.

    **Partition (date × shop):** the as-of day D of the 7-day (D-6..D) and 30-day (D-29..D)
    windows, over the counted orders processed in them.
    """
    with asset_step(context, warehouse, object_store) as ctx:
        rows = 0
        finishes = []
        for sd in shop_days_for_context(context):
            with step_telemetry(ctx, sd.shop, sd.key, Step.TRANSFORMING) as rec:
                sales, performance = write_performance(ctx.engine, ctx.store, sd.shop, sd.days)
                rec.report(restated={SALES.to_user_string(): list(sales.plan.restated),
                                     PERFORMANCE.to_user_string(): list(performance.plan.restated)})
                log_restated(context, SALES, sd.shop, sales.plan)
                log_restated(context, PERFORMANCE, sd.shop, performance.plan)
                rows += performance.rows
            finishes.append(finish_run(ctx, sd.shop, sd.key))
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(rows),
            "watermark_before": per_shop([(f.shop, f.watermark_before) for f in finishes]),
            "watermark_after": per_shop([(f.shop, f.watermark_after) for f in finishes]),
            "watermark_touched": dg.MetadataValue.bool(ctx.run.mode == Mode.DAILY_INCREMENTAL),
        },
        check_results=[watermark_check(finishes)],
    )


def log_restated(context: dg.AssetExecutionContext, asset: dg.AssetKey, shop: str, plan: Restatement) -> None:
    """One materialization per restated partition, so the UI shows it rewritten by this run."""
    partitions_def = context.assets_def.partitions_def
    for day, causes in sorted(plan.restated.items()):
        key = dg.MultiPartitionKey({DATE_DIM: day.isoformat(), SHOP_DIM: shop})
        if partitions_def is not None and not partitions_def.has_partition_key(key):
            continue  # before SHOPIFY_SYNC_START_DATE: stored, rewritten, but no partition to show it on
        context.log_event(dg.AssetMaterialization(
            asset_key=asset, partition=key,
            description="Restated: orders of earlier days changed (SPEC §5 Restatement).",
            metadata={"restated": True, "days": dg.MetadataValue.text(", ".join(d.isoformat() for d in causes)),
                      "reason": dg.MetadataValue.text(
                          f"counted lines of {len(causes)} day(s) changed in this run or a crashed one "
                          "(lines inserted, updated or deleted; orders refunded, cancelled, flagged test "
                          "or moved to another day)")}))


def watermark_check(finishes: list[FinishOutcome]) -> dg.AssetCheckResult:
    """``watermark_not_regressed``: after the run, no shop's watermark is behind where it was."""
    regressed = [
        f.shop for f in finishes
        if f.watermark_before and (f.watermark_after is None or as_utc(f.watermark_after) < as_utc(f.watermark_before))
    ]
    return dg.AssetCheckResult(
        check_name=WATERMARK_CHECK,
        passed=not regressed,
        metadata={"watermark_before": per_shop([(f.shop, f.watermark_before) for f in finishes]),
                  "watermark_after": per_shop([(f.shop, f.watermark_after) for f in finishes]),
                  "regressed": dg.MetadataValue.text(", ".join(regressed) or "none")},
    )


def build_metric_assets(
    partitions_def: dg.PartitionsDefinition, backfill_policy: dg.BackfillPolicy | None
) -> list[dg.AssetsDefinition]:
    return [
        dg.asset(key=PRODUCT, deps=[ORDER_HEADER, ORDER_LINE_ITEM, PRODUCT_VARIANT], partitions_def=partitions_def,
                 backfill_policy=backfill_policy, group_name=METRICS_GROUP, kinds={"sql", "python"},
                 owners=OWNERS)(product),
        # After the catalog's load: a line without a SKU takes the catalog's (its failure is contained).
        dg.asset(key=SALES, deps=[ORDER_HEADER, ORDER_LINE_ITEM, PRODUCT_VARIANT], partitions_def=partitions_def,
                 backfill_policy=backfill_policy, group_name=METRICS_GROUP, kinds={"parquet", "polars", "s3"},
                 owners=OWNERS)(measurement_sales),
        dg.asset(
            key=PERFORMANCE, deps=[SALES, PRODUCT], partitions_def=partitions_def,
            backfill_policy=backfill_policy, group_name=METRICS_GROUP, kinds={"parquet", "polars", "s3"},
            owners=OWNERS,
            check_specs=[dg.AssetCheckSpec(WATERMARK_CHECK, asset=PERFORMANCE,
                                           description="The shop's watermark after this run is >= before it.")],
            # Daily at 06:00: warn when a day's run is late, fail when one was missed. The
            # per-shop view is the shop_freshness check.
            freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=48),
                                                            warn_window=timedelta(hours=26)),
        )(measurement_performance),
    ]
