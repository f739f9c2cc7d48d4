"""The asset graph of SPEC §1, built for one partitions definition.

    shopify_bulk_jsonl ─▶ order_header / order_line_item / order_refund ─▶ product
                                                              └─▶ measurement_sales ─▶ measurement_performance

Every asset is range-safe: a run may carry one partition (a daily run) or a range of
days for one shop (a single-run backfill); runs that span shops process the shops one
after another. The work itself is in the steps of ``shopify_sync.sync``; these functions
translate Dagster context into a ``StepContext`` and step outcomes into metadata.
"""


from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import dagster as dg

from shopify_sync.defs.partitions import ShopDays, shop_days_for_context
from shopify_sync.defs.resources import ObjectStoreResource, ShopifyBulkResource, WarehouseResource
from shopify_sync.sync import (
    FinishOutcome,
    LoadOutcome,
    Mode,
    RunInfo,
    StepContext,
    fetch_raw,
    finish_run,
    load_orders,
    step_telemetry,
)
from shopify_sync.timeutil import as_utc
from shopify_sync.vocab import Step

INGEST_GROUP = "shopify_ingest"
METRICS_GROUP = "shopify_metrics"
OWNERS = ["team:data"]

RAW_KEY = dg.AssetKey("shopify_bulk_jsonl")
ORDER_HEADER = dg.AssetKey("order_header")
ORDER_LINE_ITEM = dg.AssetKey("order_line_item")
ORDER_REFUND = dg.AssetKey("order_refund")
PRODUCT = dg.AssetKey("product")
SALES = dg.AssetKey("measurement_sales")
PERFORMANCE = dg.AssetKey("measurement_performance")

# The client already retries individual requests (429, 5xx, THROTTLED) and resubmits
# FAILED operations a bounded number of times; this step-level policy only covers
# what escapes it (poll budget exhausted, a dropped connection mid-download). A
# retried attempt re-polls the stored operation id, so it never pays for a new job.
SHOPIFY_RETRY = dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


def run_info(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> RunInfo:
    run = context.run
    record = context.instance.get_run_record_by_id(run.run_id)
    created = record.create_timestamp if record is not None else datetime.now().astimezone()
    return RunInfo.from_tags(run.run_id, run.tags, as_utc(created))


def step_context(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
    warehouse: WarehouseResource,
    object_store: ObjectStoreResource,
    shopify: ShopifyBulkResource | None = None,
) -> StepContext:
    from shopify_sync.config import load_settings

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


def _ts(value: datetime | None) -> str:
    return value.isoformat() if value else "—"


def _days(sd: ShopDays) -> list[date]:
    return list(sd.days)


def build_assets(partitions_def: dg.MultiPartitionsDefinition) -> list[dg.AssetsDefinition]:
    backfill = dg.BackfillPolicy.single_run()

    @dg.asset(
        key=RAW_KEY,
        partitions_def=partitions_def,
        backfill_policy=backfill,
        retry_policy=SHOPIFY_RETRY,
        group_name=INGEST_GROUP,
        kinds={"shopify", "graphql", "json"},
        owners=OWNERS,
    )
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
        """
        ctx = step_context(context, warehouse, object_store, shopify)
        outcomes = []
        for sd in shop_days_for_context(context):
            try:
                outcomes.append(fetch_raw(ctx, sd.shop, sd.key, first_day=sd.first, start=sd.start, end=sd.end))
            except Exception as exc:
                _raise_for_shopify(exc)
        md: dict[str, Any] = {
            "mode": ctx.run.mode.value,
            "initiator": ctx.run.initiator.value,
            "shops": ", ".join(o.shop for o in outcomes),
            "window": "; ".join(f"{o.shop}: {o.window.describe()}" for o in outcomes),
            "bulk_operation_id": ", ".join(str(o.bulk_operation_id) for o in outcomes),
            "objectCount": sum(o.object_count or 0 for o in outcomes),
            "bytes_downloaded": sum(o.bytes or 0 for o in outcomes),
            "archive_key": ", ".join(o.archive_key for o in outcomes),
            "resumed_job": any(o.adopted for o in outcomes),
            "reused_archive": any(o.reused_archive for o in outcomes),
            "watermark_before": "; ".join(f"{o.shop}: {_ts(o.watermark_before)}" for o in outcomes),
            "dagster/row_count": sum(o.object_count or 0 for o in outcomes),
        }
        return dg.MaterializeResult(metadata=md)

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(ORDER_HEADER, deps=[RAW_KEY], group_name=INGEST_GROUP, kinds={"sql", "python"},
                         owners=OWNERS, description="One row per Shopify order (test and cancelled included, "
                         "flagged), totals after returns, statuses as Shopify's enum names."),
            dg.AssetSpec(ORDER_LINE_ITEM, deps=[RAW_KEY], group_name=INGEST_GROUP, kinds={"sql", "python"},
                         owners=OWNERS, description="Exactly the line items Shopify returns for each fetched order: "
                         "ordered and current quantity, unit prices before/after discounts."),
            dg.AssetSpec(ORDER_REFUND, deps=[RAW_KEY], group_name=INGEST_GROUP, kinds={"sql", "python"},
                         owners=OWNERS, description="Refunds per order with the refunded amount."),
        ],
        partitions_def=partitions_def,
        backfill_policy=backfill,
        name="order_tables",
    )
    def order_tables(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, object_store: ObjectStoreResource
    ) -> Any:
        """Orders, line items and refunds upserted from the archived JSONL in one chunked pass.

        Idempotent: keyed by (shop, id), never overwritten by an older ``updated_at``;
        each chunk commits with the job's ``lines_committed``, so a re-run resumes
        after the last committed chunk.
        """
        ctx = step_context(context, warehouse, object_store)
        loads = [load_orders(ctx, sd.shop, sd.key) for sd in shop_days_for_context(context)]
        common: dict[str, Any] = {
            "objects": sum(lo.objects for lo in loads),
            "resumed_from_line": ", ".join(f"{lo.shop}: {lo.start_line}" for lo in loads),
            "commerce_events": sum(lo.commerce_events for lo in loads),
            "max_updated_at": "; ".join(f"{lo.shop}: {_ts(lo.max_updated_at)}" for lo in loads),
            "ingest_seconds": round(sum(lo.ingest_seconds for lo in loads), 2),
            "orders_skipped_older": sum(lo.orders_skipped_older for lo in loads),
            "chunks_redone_as_upserts": sum(lo.fresh_conflicts for lo in loads),
        }
        events_keys = sorted({lo.events_key for lo in loads if lo.events_key})
        if events_keys:
            common["commerce_events_object"] = ", ".join(events_keys)
        # A resumed load's rows include chunks an earlier attempt committed: no honest rate.
        whole = [lo for lo in loads if lo.start_line == 0 and lo.ingest_seconds > 0]
        if whole:
            common["ingest_rows_per_s"] = round(sum(sum(lo.rows.values()) for lo in whole)
                                                / sum(lo.ingest_seconds for lo in whole))
        for key in (ORDER_HEADER, ORDER_LINE_ITEM, ORDER_REFUND):
            n = sum(int(lo.rows.get(key.path[-1], 0)) for lo in loads)
            yield dg.MaterializeResult(
                asset_key=key,
                metadata={**common, "rows_upserted": n, "dagster/row_count": _table_count(ctx, key.path[-1], loads)},
            )

    @dg.asset(
        key=PRODUCT,
        deps=[ORDER_HEADER, ORDER_LINE_ITEM],
        partitions_def=partitions_def,
        backfill_policy=backfill,
        group_name=METRICS_GROUP,
        kinds={"sql", "python"},
        owners=OWNERS,
    )
    def product(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, object_store: ObjectStoreResource
    ) -> dg.MaterializeResult:
        """Each product's units, net sales and orders over the last 7 and 30 days (SPEC §5).

        Refreshed as of the last day of the run, over counted orders only (not test,
        not cancelled); a product with no counted line in a window shows 0, never a
        stale figure. What staff dashboards read for "how is this product doing".
        """
        from shopify_sync.metrics.measurements import refresh_products

        ctx = step_context(context, warehouse, object_store)
        count = 0
        previews = []
        for sd in shop_days_for_context(context):
            with step_telemetry(ctx, sd.shop, sd.key, Step.TRANSFORMING):
                count += int(refresh_products(ctx.engine, sd.shop, as_of=sd.last) or 0)
                previews.append(_top_products_md(ctx.engine, sd.shop))
        return dg.MaterializeResult(
            metadata={"dagster/row_count": count, "top_products": dg.MetadataValue.md("\n\n".join(previews))}
        )

    @dg.asset(
        key=SALES,
        deps=[ORDER_HEADER, ORDER_LINE_ITEM],
        partitions_def=partitions_def,
        backfill_policy=backfill,
        group_name=METRICS_GROUP,
        kinds={"parquet", "polars", "s3"},
        owners=OWNERS,
    )
    def measurement_sales(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, object_store: ObjectStoreResource
    ) -> dg.MaterializeResult:
        """Daily sales per product variant: orders, units ordered/net, gross and net sales.

        One Parquet object per shop and day at ``measurement/sales/shop=<CODE>/date=<D>/part-0.parquet``,
        overwritten (byte-identical for the same data) on re-run. A daily run writes its
        day; a backfill writes every day of its range.
        """
        from shopify_sync.metrics.measurements import sales_frame, write_parquet
        from shopify_sync.storage import sales_key

        ctx = step_context(context, warehouse, object_store)
        rows = 0
        keys = []
        for sd in shop_days_for_context(context):
            with step_telemetry(ctx, sd.shop, sd.key, Step.TRANSFORMING):
                for day in _days(sd):
                    frame = sales_frame(ctx.engine, sd.shop, day)
                    key = sales_key(sd.shop, day)
                    ctx.store.put_bytes(key, write_parquet(frame))
                    rows += frame.height
                    keys.append(key)
        return dg.MaterializeResult(
            metadata={"dagster/row_count": rows, "objects": len(keys), "keys": "\n".join(keys[:31])}
        )

    @dg.asset(
        key=PERFORMANCE,
        deps=[SALES, PRODUCT],
        partitions_def=partitions_def,
        backfill_policy=backfill,
        group_name=METRICS_GROUP,
        kinds={"parquet", "polars", "s3"},
        owners=OWNERS,
        check_specs=[dg.AssetCheckSpec("watermark_not_regressed", asset=PERFORMANCE,
                                       description="The shop's watermark after this run is >= before it.")],
        # Daily at 06:00: warn when a day's run is late, fail when one was missed. The
        # per-shop view is the shop_freshness check.
        freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=48),
                                                        warn_window=timedelta(hours=26)),
    )
    def measurement_performance(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, object_store: ObjectStoreResource
    ) -> dg.MaterializeResult:
        """Each product's 7- and 30-day performance as of the day (units, net sales, orders).

        One Parquet object per shop and day at ``measurement/performance/shop=<CODE>/date=<D>/part-0.parquet``.
        The last step of a run: once it is written, a daily run advances the shop's
        watermark (never backwards; a failed run never gets here) and records
        ``completed`` in the sync telemetry.
        """
        from shopify_sync.metrics.measurements import performance_frame, write_parquet
        from shopify_sync.storage import performance_key

        ctx = step_context(context, warehouse, object_store)
        rows = 0
        finishes = []
        for sd in shop_days_for_context(context):
            with step_telemetry(ctx, sd.shop, sd.key, Step.TRANSFORMING):
                for day in _days(sd):
                    frame = performance_frame(ctx.engine, sd.shop, day)
                    ctx.store.put_bytes(performance_key(sd.shop, day), write_parquet(frame))
                    rows += frame.height
            finishes.append(finish_run(ctx, sd.shop, sd.key))
        wm = "; ".join(f"{f.shop}: {_ts(f.watermark_before)} → {_ts(f.watermark_after)}" for f in finishes)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": rows,
                "watermark": wm,
                "watermark_touched": ctx.run.mode is Mode.DAILY_INCREMENTAL,
            },
            check_results=[watermark_check(finishes)],
        )

    return [shopify_bulk_jsonl, order_tables, product, measurement_sales, measurement_performance]


def watermark_check(finishes: list[FinishOutcome]) -> dg.AssetCheckResult:
    """``watermark_not_regressed``: after the run, no shop's watermark is behind where it was."""
    regressed = [
        f.shop for f in finishes
        if f.watermark_before and (f.watermark_after is None or as_utc(f.watermark_after) < as_utc(f.watermark_before))
    ]
    return dg.AssetCheckResult(
        check_name="watermark_not_regressed",
        passed=not regressed,
        metadata={"watermark": "; ".join(f"{f.shop}: {_ts(f.watermark_before)} → {_ts(f.watermark_after)}"
                                         for f in finishes),
                  "regressed": ", ".join(regressed) or "none"},
    )


def _raise_for_shopify(exc: Exception) -> None:
    """Errors that a retry cannot fix fail the step at once; the rest go to ``SHOPIFY_RETRY``.

    The client's typed errors say whether running again can help (``retryable``);
    bad configuration and bad input never can.
    """
    from shopify_sync.config import ConfigError

    retryable = getattr(exc, "retryable", None)
    if isinstance(exc, ConfigError | ValueError) or retryable is False:
        raise dg.Failure(description=f"{type(exc).__name__}: {exc}", allow_retries=False) from exc
    raise exc


def _table_count(ctx: StepContext, table: str, loads: list[LoadOutcome]) -> int:
    import sqlalchemy as sa

    from shopify_sync.warehouse import tables

    t = getattr(tables, table)
    shops = [lo.shop for lo in loads]
    with ctx.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c.shop.in_(shops))).scalar_one())


def _top_products_md(engine: Any, shop: str, limit: int = 10) -> str:
    import sqlalchemy as sa

    from shopify_sync.warehouse import tables

    p = tables.product
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(p.c.product_id, p.c.title, p.c.units_30d, p.c.net_sales_30d, p.c.orders_30d)
            .where(p.c.shop == shop)
        ).all()
    # Sorted here: on SQLite money is stored as text, so ORDER BY would sort lexically.
    rows = sorted(rows, key=lambda r: (-Decimal(str(r.net_sales_30d or 0)), r.product_id))[:limit]
    lines = [f"**{shop}** top products (30 days)", "", "| product | title | units | net sales | orders |",
             "|---|---|---:|---:|---:|"]
    lines += [f"| {r.product_id} | {r.title or ''} | {r.units_30d} | {r.net_sales_30d} | {r.orders_30d} |" for r in rows]
    return "\n".join(lines)
