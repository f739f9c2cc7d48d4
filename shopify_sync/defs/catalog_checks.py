"""Asset checks of the catalog (issue 16): what the orders' checks promise, for the variants.

- ``catalog_rows_match_object_count``: the variants loaded equal the catalog operation's
  ``objectCount`` (not blocking: a catalog problem never holds back the orders' work);
- ``variant_has_product``: no ``product_variant`` row without its ``product`` row;
- ``sales_sku_matches_catalog``: in the run's ``measurement_sales`` objects, a row whose SKU
  the catalog knows belongs to the variant the catalog gives that SKU, and a row of a
  catalog variant never lacks the SKU the catalog has.

- ``catalog_synced`` (on ``measurement_performance``, the run's last asset; ERROR severity, not
  blocking): the run's catalog job completed. A contained catalog failure shows here in red,
  on the run and in the CLI's line, while the run itself succeeds: its orders' steps all did,
  and SPEC §3 ties the orders' watermark to the run's outcome (advanced only by a successful
  run, untouched by a failed one). The next run resumes the catalog job.

Backfills do not touch the catalog, nor does a replay of a run that archived no catalog file:
the checks then pass, saying so.
"""

# No `from __future__ import annotations` here: Dagster reads the parameter annotations
# (context type, resources) of these functions as objects when it decorates them.
import io

import dagster as dg
import polars as pl
from sqlalchemy.engine import Engine

from shopify_sync.defs.assets.keys import CATALOG_RAW_KEY, PERFORMANCE, PRODUCT_VARIANT, SALES
from shopify_sync.defs.metadata import Metadata, per_shop
from shopify_sync.defs.partitions import ShopDays, shop_days_for_context
from shopify_sync.defs.resources import ObjectStoreResource, WarehouseResource
from shopify_sync.defs.run_context import run_info
from shopify_sync.storage import ObjectStore, sales_key
from shopify_sync.sync import RunInfo
from shopify_sync.sync.catalog import catalog_job_key, catalog_wanted
from shopify_sync.vocab import JobStatus, Mode
from shopify_sync.warehouse import catalog, jobs


def expects_catalog(engine: Engine, run: RunInfo, shop: str) -> bool:
    """Whether ``run`` has a catalog job for ``shop``: a daily run always, a replay when the
    replayed run archived a catalog file for the shop, a backfill never."""
    if run.mode is Mode.REPLAY:
        return any(j.shop == shop for j in jobs.archived_jobs(engine, str(run.replay_of), catalog=True))
    return catalog_wanted(run.mode)


def _run_jobs(engine: Engine, run: RunInfo, parts: list[ShopDays]) -> list[tuple[ShopDays, jobs.SyncJob | None]]:
    return [(sd, jobs.latest_job(engine, shop=sd.shop, job_type=Mode.CATALOG,
                                 partition_key=catalog_job_key(run, sd.key)))
            for sd in parts if expects_catalog(engine, run, sd.shop)]


def _skipped(run: RunInfo) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True, metadata={"skipped": f"this {run.mode.value} run has no catalog job"})


def evaluate_catalog_rows(engine: Engine, run: RunInfo, parts: list[ShopDays]) -> dg.AssetCheckResult:
    found = _run_jobs(engine, run, parts)
    if not found:
        return _skipped(run)
    problems: list[str] = []
    counts: list[tuple[str, int | None]] = []
    for sd, job in found:
        if job is None:
            problems.append(f"{sd.shop}: no catalog sync_job for {catalog_job_key(run, sd.key)}")
            continue
        counts.append((sd.shop, job.object_count))
        loaded = job.rows.get("product_variant", 0)
        if job.object_count is None or job.lines_committed != job.object_count or loaded != job.object_count:
            problems.append(f"{sd.shop}: loaded {loaded} variants ({job.lines_committed} lines) "
                            f"of objectCount {job.object_count}")
    md: Metadata = {"problems": dg.MetadataValue.text("; ".join(problems) or "none")}
    if counts:
        md["object_count"] = per_shop(counts)
    return dg.AssetCheckResult(passed=not problems, metadata=md)


def evaluate_catalog_synced(engine: Engine, run: RunInfo, parts: list[ShopDays]) -> dg.AssetCheckResult:
    found = _run_jobs(engine, run, parts)
    if not found:
        return _skipped(run)
    problems = []
    for sd, job in found:
        if job is None:
            problems.append(f"{sd.shop}: the catalog step failed before creating its sync_job")
        elif job.status is not JobStatus.COMPLETED or job.run_id != run.run_id:
            problems.append(f"{sd.shop}: catalog sync_job {job.job_id} {job.status.value}"
                            + (f" ({job.last_error})" if job.last_error else ""))
    md: Metadata = {"problems": dg.MetadataValue.text("; ".join(problems) or "none"),
                    "catalog_jobs": per_shop([(sd.shop, job.job_id if job else None) for sd, job in found])}
    if problems:
        md["note"] = dg.MetadataValue.text("the orders' tables, watermark and measurements of this run landed; "
                                           "the shop's next run resumes the catalog job")
    return dg.AssetCheckResult(passed=not problems, metadata=md)


def evaluate_variant_has_product(engine: Engine, parts: list[ShopDays]) -> dg.AssetCheckResult:
    orphans = catalog.variants_without_product(engine, sorted({sd.shop for sd in parts}))
    return dg.AssetCheckResult(passed=not orphans, metadata={
        "orphans": dg.MetadataValue.text("; ".join(f"{s}: variant {v} (product {p})" for s, v, p in orphans) or "none")})


def sku_mismatches(frame: pl.DataFrame, skus: dict[int, str], owners: dict[str, set[int]]) -> list[str]:
    """Rows of one shop-day's ``measurement_sales`` that disagree with the catalog."""
    bad = []
    for row in frame.select("variant_id", "sku").iter_rows(named=True):
        variant, sku = row["variant_id"], row["sku"]
        if variant is None:
            continue
        if sku is None and variant in skus:
            bad.append(f"variant {variant} has no SKU, the catalog says {skus[variant]!r}")
        elif sku is not None and sku in owners and variant not in owners[sku]:
            bad.append(f"SKU {sku!r} on variant {variant}, the catalog's is on {sorted(owners[sku])}")
    return bad


def evaluate_sales_sku(engine: Engine, store: ObjectStore, parts: list[ShopDays]) -> dg.AssetCheckResult:
    problems: list[str] = []
    rows = 0
    for sd in parts:
        skus, owners = catalog.variant_skus(engine, sd.shop), catalog.sku_owners(engine, sd.shop)
        for day in sd.days:
            key = sales_key(sd.shop, day)
            if not store.exists(key):
                continue
            frame = pl.read_parquet(io.BytesIO(store.get_bytes(key)))
            rows += frame.height
            problems += [f"{sd.shop} {day}: {p}" for p in sku_mismatches(frame, skus, owners)]
    return dg.AssetCheckResult(passed=not problems, metadata={
        "rows": rows, "mismatches": len(problems), "first": dg.MetadataValue.text("\n".join(problems[:20]) or "none")})


@dg.asset_check(asset=PRODUCT_VARIANT,
                description="Variants loaded from the catalog file equal the catalog operation's objectCount.")
def catalog_rows_match_object_count(context: dg.AssetCheckExecutionContext,
                                    warehouse: WarehouseResource) -> dg.AssetCheckResult:
    return evaluate_catalog_rows(warehouse.get_engine(), run_info(context), shop_days_for_context(context))


@dg.asset_check(asset=PRODUCT_VARIANT, description="Every product_variant row has its product row.")
def variant_has_product(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    return evaluate_variant_has_product(warehouse.get_engine(), shop_days_for_context(context))


@dg.asset_check(asset=SALES, description="measurement_sales SKUs agree with the catalog's (same variant; "
                "a catalog SKU fills a line without one).")
def sales_sku_matches_catalog(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource,
                              object_store: ObjectStoreResource) -> dg.AssetCheckResult:
    return evaluate_sales_sku(warehouse.get_engine(), object_store.get_store(), shop_days_for_context(context))


@dg.asset_check(asset=PERFORMANCE,
                description="The run's catalog job completed. A catalog failure never holds back the orders' tables, "
                "watermark and measurements: the run succeeds, this check fails (ERROR), and the shop's next run "
                "resumes the catalog.")
def catalog_synced(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    selection = context.run.asset_selection  # empty (or None) for a run of the whole job
    if selection and not selection & {CATALOG_RAW_KEY, PRODUCT_VARIANT}:
        # A run of a subset without the catalog (e.g. measurement_performance alone from the UI).
        return dg.AssetCheckResult(passed=True, metadata={"skipped": "the catalog's assets are not in this run"})
    return evaluate_catalog_synced(warehouse.get_engine(), run_info(context), shop_days_for_context(context))


CATALOG_CHECKS = [catalog_rows_match_object_count, variant_has_product, sales_sku_matches_catalog, catalog_synced]
