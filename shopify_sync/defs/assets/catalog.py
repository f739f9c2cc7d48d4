"""Catalog assets: the raw ``productVariants`` export, and the variants loaded from it.

    order tables ─▶ shopify_catalog_jsonl ─▶ product_variant ─▶ product

The catalog's bulk operation starts during the orders' fetch (``catalog_starter``: from API
2026-01 both run at once); ``shopify_catalog_jsonl`` then polls and downloads it once the
orders are loaded, so a run whose orders failed ends there.

A catalog failure never holds back the orders' work: once the step's retries are spent (or at
once, for what no retry helps) both steps contain it (``contained``): the catalog job is failed
with its error (telemetry ``failed``, job type CATALOG), the asset materializes with
``catalog_failed`` in its metadata, and product, the measurements and the orders' watermark
go on with the catalog as it was. The check ``catalog_synced`` then fails (ERROR) on a run
that otherwise succeeds, and the next run resumes the catalog job.

A backfill materializes both without calling Shopify (their metadata says so); a replay
re-loads the replayed run's archived catalog file (``sync.catalog.adopt_catalog``).
"""

# No `from __future__ import annotations` here: Dagster reads the parameter annotations
# (context type, resources) of these functions as objects when it decorates them.
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import dagster as dg

from shopify_sync.defs.assets.keys import (
    CATALOG_GROUP,
    CATALOG_RAW_KEY,
    ORDER_HEADER,
    OWNERS,
    PRODUCT_VARIANT,
    SHOPIFY_RETRY,
)
from shopify_sync.defs.metadata import Metadata, per_shop
from shopify_sync.defs.partitions import ShopDays, shop_days_for_context
from shopify_sync.defs.resources import ObjectStoreResource, ShopifyBulkResource, WarehouseResource
from shopify_sync.defs.run_context import asset_step
from shopify_sync.errors import summarize_error
from shopify_sync.sync import StepContext
from shopify_sync.sync.catalog import (
    CatalogFetchOutcome,
    adopt_catalog,
    catalog_wanted,
    fetch_catalog,
    full_catalog_tag,
    load_catalog,
    submit_catalog_early,
    this_runs_job,
)
from shopify_sync.vocab import Mode
from shopify_sync.warehouse import catalog

_SKIPPED = "not fetched: only daily runs refresh the catalog (and replays re-load it)"
_NO_FILE = "nothing to load: the replayed run archived no catalog file"


def full_catalog_requested(context: dg.AssetExecutionContext) -> bool:
    return full_catalog_tag(context.run.tags)


def catalog_starter(context: dg.AssetExecutionContext, ctx: StepContext, sd: ShopDays) -> Callable[[], None]:
    """For the orders' fetch: once its operation is submitted, start the catalog's beside it
    (API >= 2026-01; nothing before). Never fails the orders' step: whatever goes wrong,
    the catalog step claims the same job later and does it again (and reports it)."""
    def start() -> None:
        try:
            submit_catalog_early(ctx, sd.shop, sd.key, requested_full=full_catalog_requested(context))
        except Exception as exc:  # noqa: BLE001 - the catalog step retries and reports it
            context.log.warning(f"{sd.shop}: catalog operation not started early ({type(exc).__name__}); "
                                "the catalog step will start it")
    return start


def shopify_catalog_jsonl(
    context: dg.AssetExecutionContext,
    shopify: ShopifyBulkResource,
    warehouse: WarehouseResource,
    object_store: ObjectStoreResource,
) -> dg.MaterializeResult:
    """The shop's product variants from a Shopify bulk ``productVariants`` query, archived as is.

    Incremental (variants updated since the catalog watermark minus the lookback) or a
    full refresh (no catalog watermark yet, ``sync --full-catalog``, or the last full
    refresh older than ``SHOPIFY_SYNC_CATALOG_FULL_REFRESH_DAYS``). Archived at
    ``raw/shopify/shop=<CODE>/CATALOG/date=<D>/<run_id>.jsonl`` before parsing; a crashed
    run re-polls its stored operation.
    """
    with contained(context, SHOPIFY_RETRY.max_retries) as failed:
        with asset_step(context, warehouse, object_store, shopify) as ctx:
            if not catalog_wanted(ctx.run.mode):
                return dg.MaterializeResult(metadata={"skipped": dg.MetadataValue.text(_SKIPPED)})
            outcomes = [o for sd in shop_days_for_context(context) if (o := _fetch(context, ctx, sd)) is not None]
    if failed:
        return failed_result(failed)
    if not outcomes:
        return dg.MaterializeResult(metadata={"skipped": dg.MetadataValue.text(_NO_FILE)})
    objects = sum(o.object_count or 0 for o in outcomes)
    return dg.MaterializeResult(metadata={
        "window": per_shop([(o.shop, o.window.describe()) for o in outcomes]),
        "full_refresh": dg.MetadataValue.bool(any(o.window.full for o in outcomes)),
        "bulk_operation_id": per_shop([(o.shop, o.bulk_operation_id) for o in outcomes]),
        "object_count": dg.MetadataValue.int(objects),
        "bytes_downloaded": dg.MetadataValue.int(sum(o.bytes or 0 for o in outcomes)),
        "archive_key": per_shop([(o.shop, o.archive_key) for o in outcomes]),
        "resumed_job": dg.MetadataValue.bool(any(o.adopted for o in outcomes)),
        "reused_archive": dg.MetadataValue.bool(any(o.reused_archive for o in outcomes)),
        "catalog_watermark_before": per_shop([(o.shop, o.watermark_before) for o in outcomes]),
        "dagster/row_count": dg.MetadataValue.int(objects),
    })


def product_variant(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, object_store: ObjectStoreResource
) -> dg.MaterializeResult:
    """One row per Shopify product variant: SKU, title, price, compare-at price, stock.

    Upserted from the archived catalog file in chunks (a re-run resumes after the last
    committed one), never overwritten by an older ``updatedAt``; the variant's product
    gets its catalog title, vendor, type, status and total stock in ``product``. After a
    full refresh, variants Shopify no longer returns are marked deleted (kept).
    """
    with contained(context, 0) as failed:
        with asset_step(context, warehouse, object_store) as ctx:
            if not catalog_wanted(ctx.run.mode):
                return dg.MaterializeResult(metadata={"skipped": dg.MetadataValue.text(_SKIPPED)})
            parts = [(sd, this_runs_job(ctx, sd.shop, sd.key)) for sd in shop_days_for_context(context)]
            # A shop whose fetch failed (its job failed, already reported) has nothing to load.
            failed += [f"{sd.shop}: not loaded, the catalog fetch failed" for sd, job in parts
                       if ctx.run.mode is Mode.DAILY_INCREMENTAL and job is None]
            loads = [load_catalog(ctx, sd.shop, sd.key) for sd, job in parts if job is not None]
            counts = catalog.variant_counts(ctx.engine, [sd.shop for sd, _ in parts])
    if failed:
        return failed_result(failed)
    if not loads:
        return dg.MaterializeResult(metadata={"skipped": dg.MetadataValue.text(_NO_FILE)})
    md: Metadata = {
        "rows_upserted": dg.MetadataValue.int(sum(lo.rows for lo in loads)),
        "products_touched": dg.MetadataValue.int(sum(lo.products for lo in loads)),
        "full_refresh": dg.MetadataValue.bool(any(lo.full for lo in loads)),
        "marked_deleted": dg.MetadataValue.int(sum(lo.deleted for lo in loads)),
        "resumed_from_line": per_shop([(lo.shop, lo.start_line) for lo in loads]),
        "catalog_watermark_after": per_shop([(lo.shop, lo.watermark_after) for lo in loads]),
        "deleted_variants": dg.MetadataValue.int(sum(d for _, d in counts.values())),
        "dagster/row_count": dg.MetadataValue.int(sum(n for n, _ in counts.values())),
    }
    return dg.MaterializeResult(metadata=md)


def _fetch(context: dg.AssetExecutionContext, ctx: StepContext, sd: ShopDays) -> CatalogFetchOutcome | None:
    if ctx.run.mode is Mode.REPLAY:
        return adopt_catalog(ctx, sd.shop, sd.key)
    return fetch_catalog(ctx, sd.shop, sd.key, first_day=sd.first, requested_full=full_catalog_requested(context))


@contextmanager
def contained(context: dg.AssetExecutionContext, retries: int) -> Iterator[list[str]]:
    """Contain a catalog step's failure: re-raised while the step's retry policy may still help
    (``retries`` left), else logged and collected in the yielded list (the job is already
    failed by ``step_telemetry``), so the assets after it run."""
    failed: list[str] = []
    try:
        yield failed
    except Exception as exc:
        final = isinstance(exc, dg.Failure) and not exc.allow_retries
        if not final and context.retry_number < retries:
            raise
        line = exc.description if isinstance(exc, dg.Failure) and exc.description else summarize_error(exc).one_line()
        failed.append(line)
        context.log.error(f"catalog failed: {line}. The orders' work of this run goes on; the check catalog_synced "
                          "fails, and the next run resumes the catalog")


def failed_result(failed: list[str]) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"catalog_failed": dg.MetadataValue.text("\n".join(failed))})


def build_catalog_assets(
    partitions_def: dg.PartitionsDefinition, backfill_policy: dg.BackfillPolicy | None
) -> list[dg.AssetsDefinition]:
    return [
        # After the orders' load: a run whose orders failed stops there, its telemetry ending with
        # ``failed``. The catalog's operation itself was started beside the orders' (2026-01+).
        dg.asset(key=CATALOG_RAW_KEY, deps=[ORDER_HEADER], partitions_def=partitions_def,
                 backfill_policy=backfill_policy,
                 retry_policy=SHOPIFY_RETRY, group_name=CATALOG_GROUP, kinds={"shopify", "graphql", "json"},
                 owners=OWNERS)(shopify_catalog_jsonl),
        dg.asset(key=PRODUCT_VARIANT, deps=[CATALOG_RAW_KEY], partitions_def=partitions_def,
                 backfill_policy=backfill_policy, group_name=CATALOG_GROUP, kinds={"sql", "python"},
                 owners=OWNERS)(product_variant),
    ]
