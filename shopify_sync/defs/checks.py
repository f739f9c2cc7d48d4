"""Asset checks of SPEC §9: the acceptance criteria, visible in the UI after every run.

Blocking where a failure must stop downstream assets within the run: wrong row counts
must not feed the metrics, duplicated sales keys must not feed performance, and
product figures that disagree with the line items must not be published. The
watermark check is emitted inline by ``measurement_performance`` (it knows the
before/after values); the others re-read what the run wrote, so they can also be
run on their own from the UI.
"""


from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import dagster as dg

from shopify_sync.defs.assets import ORDER_HEADER, PERFORMANCE, PRODUCT, SALES, run_info
from shopify_sync.defs.partitions import ShopDays, shop_days_for_context
from shopify_sync.defs.resources import ObjectStoreResource, WarehouseResource
from shopify_sync.sync import Mode, RunInfo
from shopify_sync.timeutil import as_utc, utc_day

SALES_KEY_COLUMNS = ["shop", "date", "product_id", "variant_id"]
SAMPLE_PRODUCTS = 20
FRESHNESS_HOURS = 36  # a daily run at 06:00 plus slack for one late or retried run


def _shop_days(context: dg.AssetCheckExecutionContext) -> list[ShopDays]:
    return shop_days_for_context(context)


# The evaluations are plain functions of (warehouse / store, run, shop-days) so they can
# be exercised directly, including on deliberately broken data.


def evaluate_rows_match_object_count(engine: Any, run: RunInfo, parts: list[ShopDays]) -> dg.AssetCheckResult:
    from shopify_sync.warehouse.jobs import latest_job

    problems: list[str] = []
    md: dict[str, Any] = {}
    for sd in parts:
        job = latest_job(engine, shop=sd.shop, job_type=run.mode.value, partition_key=sd.key)
        if job is None:
            problems.append(f"{sd.shop}: no sync_job for {run.mode.value} {sd.key}")
            continue
        md[f"{sd.shop} objectCount"] = job.object_count
        md[f"{sd.shop} lines_committed"] = job.lines_committed
        if job.object_count is None or int(job.lines_committed or 0) != int(job.object_count):
            problems.append(f"{sd.shop}: loaded {job.lines_committed} of objectCount {job.object_count}")
    return dg.AssetCheckResult(passed=not problems, metadata={**md, "problems": "; ".join(problems) or "none"})


def evaluate_no_duplicate_sales_keys(store: Any, parts: list[ShopDays]) -> dg.AssetCheckResult:
    import io

    import polars as pl

    from shopify_sync.storage import sales_key

    duplicates = 0
    missing: list[str] = []
    rows = 0
    for sd in parts:
        for day in sd.days:
            key = sales_key(sd.shop, day)
            if not store.exists(key):
                missing.append(key)
                continue
            frame = pl.read_parquet(io.BytesIO(store.get_bytes(key)))
            rows += frame.height
            duplicates += frame.height - frame.select(SALES_KEY_COLUMNS).unique().height
    return dg.AssetCheckResult(
        passed=duplicates == 0 and not missing,
        metadata={"rows": rows, "duplicate_rows": duplicates, "missing_objects": "\n".join(missing) or "none"},
    )


def evaluate_product_figures(engine: Any, parts: list[ShopDays], sample: int = SAMPLE_PRODUCTS) -> dg.AssetCheckResult:
    mismatches: list[str] = []
    sampled = 0
    for sd in parts:
        for product_id, stored, expected in compare_product_sample(engine, sd.shop, sample):
            sampled += 1
            if stored != expected:
                mismatches.append(f"{sd.shop}/{product_id}: stored {stored} != recomputed {expected}")
    return dg.AssetCheckResult(
        passed=not mismatches,
        metadata={"sampled": sampled, "mismatches": "\n".join(mismatches[:20]) or "none"},
    )


def evaluate_telemetry_completed(store: Any, run: RunInfo, parts: list[ShopDays]) -> dg.AssetCheckResult:
    from shopify_sync.telemetry import RunState, read_sync_records, run_state

    records = read_sync_records(store, run.run_id, run_date=utc_day(run.created_at))
    missing = []
    for sd in parts:
        mine = [r for r in records if r.get("shop") == sd.shop]
        # "completed" must be the shop's last record: a later "failed" (a sensor, a
        # re-executed step) means the run did not end well.
        if not mine or run_state(mine[-1]) is not RunState.COMPLETED:
            missing.append(sd.shop)
    return dg.AssetCheckResult(
        passed=not missing,
        metadata={"records": len(records), "steps": ", ".join(str(r.get("step")) for r in records),
                  "shops_without_completed": ", ".join(missing) or "none"},
    )


def evaluate_shop_freshness(engine: Any, run: RunInfo, parts: list[ShopDays],
                            now: datetime | None = None) -> dg.AssetCheckResult:
    from shopify_sync.warehouse.jobs import last_success_at

    now = now or datetime.now(UTC)
    stale: list[str] = []
    md: dict[str, Any] = {}
    for sd in parts:
        at = last_success_at(engine, sd.shop, Mode.DAILY_INCREMENTAL.value)
        md[f"{sd.shop} last daily success"] = at.isoformat() if at else "never"
        if at is None or now - as_utc(at) > timedelta(hours=FRESHNESS_HOURS):
            stale.append(sd.shop)
    # A backfill or replay says nothing about freshness: only warn, so it cannot fail one.
    severity = dg.AssetCheckSeverity.ERROR if run.mode is Mode.DAILY_INCREMENTAL else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(passed=not stale, severity=severity,
                               metadata={**md, "stale": ", ".join(stale) or "none"})


def build_checks(partitions_def: dg.MultiPartitionsDefinition) -> list[dg.AssetChecksDefinition]:
    @dg.asset_check(asset=ORDER_HEADER, blocking=True,
                    description="Lines loaded from the raw file equal the bulk operation's objectCount.")
    def rows_match_object_count(
        context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> dg.AssetCheckResult:
        return evaluate_rows_match_object_count(warehouse.get_engine(), run_info(context), _shop_days(context))

    @dg.asset_check(asset=SALES, blocking=True,
                    description="measurement_sales has at most one row per (shop, date, product_id, variant_id).")
    def no_duplicate_sales_keys(
        context: dg.AssetCheckExecutionContext, object_store: ObjectStoreResource
    ) -> dg.AssetCheckResult:
        return evaluate_no_duplicate_sales_keys(object_store.get_store(), _shop_days(context))

    @dg.asset_check(asset=PRODUCT, blocking=True,
                    description="Sampled products' 7/30-day figures equal a recomputation from order_line_item.")
    def product_figures_match_line_items(
        context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> dg.AssetCheckResult:
        return evaluate_product_figures(warehouse.get_engine(), _shop_days(context))

    @dg.asset_check(asset=PERFORMANCE,
                    description="The run's sync telemetry ends with a completed record for every shop.")
    def telemetry_completed(
        context: dg.AssetCheckExecutionContext, object_store: ObjectStoreResource
    ) -> dg.AssetCheckResult:
        return evaluate_telemetry_completed(object_store.get_store(), run_info(context), _shop_days(context))

    @dg.asset_check(asset=PERFORMANCE,
                    description=f"Each shop's last successful daily sync is under {FRESHNESS_HOURS} h old.")
    def shop_freshness(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        return evaluate_shop_freshness(warehouse.get_engine(), run_info(context), _shop_days(context))

    return [rows_match_object_count, no_duplicate_sales_keys, product_figures_match_line_items,
            telemetry_completed, shop_freshness]


def compare_product_sample(engine: Any, shop: str, limit: int) -> list[tuple[int, tuple, tuple]]:
    """(product_id, stored figures, recomputed figures) for up to ``limit`` products.

    Recomputed here from ``order_line_item`` ⋈ ``order_header`` with Decimal arithmetic,
    independently of ``shopify_sync.metrics``, per SPEC §5.
    """
    import sqlalchemy as sa

    from shopify_sync.warehouse import tables

    p, li, oh = tables.product, tables.order_line_item, tables.order_header
    with engine.connect() as conn:
        products = conn.execute(
            sa.select(p).where(p.c.shop == shop).order_by(p.c.product_id).limit(limit)
        ).mappings().all()
        dated = [(prod, _as_day(prod["metrics_as_of"])) for prod in products if prod["metrics_as_of"] is not None]
        if not dated:
            return []
        # One query for the whole sample, through the (shop, processed_at) and
        # (shop, order_id) indexes: lines have no product index (it slowed every ingest).
        earliest = min(day for _, day in dated) - timedelta(days=30)
        by_product: dict[int, list[Any]] = {}
        for ln in conn.execute(
            sa.select(li.c.product_id, li.c.order_id, li.c.current_quantity, li.c.discounted_unit_price,
                      oh.c.processed_at)
            .join(oh, sa.and_(oh.c.shop == li.c.shop, oh.c.order_id == li.c.order_id))
            .where(oh.c.shop == shop, oh.c.processed_at >= datetime.combine(earliest, datetime.min.time()),
                   li.c.product_id.in_([int(prod["product_id"]) for prod, _ in dated]),
                   oh.c.test.is_(False), oh.c.cancelled_at.is_(None))
        ):
            by_product.setdefault(int(ln.product_id), []).append(ln)
        out = []
        for prod, as_of_day in dated:
            lines = by_product.get(int(prod["product_id"]), [])
            expected = []
            for days in (7, 30):
                lo = as_of_day - timedelta(days=days - 1)
                units, net, orders = 0, Decimal(0), set()
                for ln in lines:
                    if ln.processed_at is None:
                        continue
                    d = as_utc(ln.processed_at).date()
                    if lo <= d <= as_of_day:
                        q = int(ln.current_quantity or 0)
                        units += q
                        net += q * Decimal(str(ln.discounted_unit_price))
                        if q > 0:
                            orders.add(ln.order_id)
                expected += [units, net, len(orders)]
            stored = [int(prod["units_7d"]), Decimal(str(prod["net_sales_7d"])), int(prod["orders_7d"]),
                      int(prod["units_30d"]), Decimal(str(prod["net_sales_30d"])), int(prod["orders_30d"])]
            out.append((int(prod["product_id"]), tuple(stored), tuple(expected)))
    return out


def _as_day(as_of: Any) -> date:
    return as_of if isinstance(as_of, date) and not isinstance(as_of, datetime) else as_utc(as_of).date()
