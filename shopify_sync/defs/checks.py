"""Asset checks of SPEC §9: the acceptance criteria, visible in the UI after every run.

Blocking where a failure must stop downstream assets within the run: wrong row counts
must not feed the metrics, duplicated sales keys must not feed performance, and
product figures that disagree with the line items must not be published. The
watermark check is emitted inline by ``measurement_performance`` (it knows the
before/after values); the others re-read what the run wrote, so they can also be
run on their own from the UI.
"""

# No `from __future__ import annotations` here: Dagster reads the parameter annotations
# (context type, resources) of these functions as objects when it decorates them.
import io
import itertools
import random
from datetime import date, datetime, timedelta

import dagster as dg
import polars as pl
from sqlalchemy.engine import Engine

from shopify_sync.defs.assets.keys import ORDER_HEADER, PERFORMANCE, PRODUCT, SALES
from shopify_sync.defs.metadata import Metadata, per_shop
from shopify_sync.defs.partitions import ShopDays, shop_days_for_context
from shopify_sync.defs.resources import ObjectStoreResource, WarehouseResource
from shopify_sync.defs.run_context import memory_released, run_info
from shopify_sync.metrics.measurements import parquet_bytes
from shopify_sync.metrics.restate import performance_frames, sales_frames
from shopify_sync.storage import ObjectStore, measurement_days, measurement_prefix, performance_key, sales_key
from shopify_sync.sync import RunInfo
from shopify_sync.telemetry import RunState, read_sync_records, run_state
from shopify_sync.timeutil import as_utc, utc_day, utcnow
from shopify_sync.vocab import Mode
from shopify_sync.warehouse import jobs, rollup
from shopify_sync.warehouse.queries import (
    ProductFigures,
    StoredProductFigures,
    product_sample,
    recheck_product_figures,
)

SALES_KEY_COLUMNS = ["shop", "date", "product_id", "variant_id"]
SAMPLE_PRODUCTS = 5  # per shop and run, drawn by run id; each run reads the 30-day window's lines once
SAMPLE_PARTITIONS = 8  # per shop and measurement; each is recomputed with its own queries
FRESHNESS_HOURS = 36  # a daily run at 06:00 plus slack for one late or retried run


# The evaluations are plain functions of (warehouse / store, run, shop-days) so they can
# be exercised directly, including on deliberately broken data.


def evaluate_rows_match_object_count(engine: Engine, run: RunInfo, parts: list[ShopDays]) -> dg.AssetCheckResult:
    problems: list[str] = []
    counts: list[tuple[str, int | None]] = []
    committed: list[tuple[str, int | None]] = []
    for sd in parts:
        job = jobs.latest_job(engine, shop=sd.shop, job_type=run.mode.value, partition_key=sd.key)
        if job is None:
            problems.append(f"{sd.shop}: no sync_job for {run.mode.value} {sd.key}")
            continue
        counts.append((sd.shop, job.object_count))
        committed.append((sd.shop, job.lines_committed))
        if job.object_count is None or job.lines_committed != job.object_count:
            problems.append(f"{sd.shop}: loaded {job.lines_committed} of objectCount {job.object_count}")
    md: Metadata = {"problems": dg.MetadataValue.text("; ".join(problems) or "none")}
    if counts:
        md |= {"object_count": per_shop(counts), "lines_committed": per_shop(committed)}
    return dg.AssetCheckResult(passed=not problems, metadata=md)


def evaluate_no_duplicate_sales_keys(store: ObjectStore, parts: list[ShopDays]) -> dg.AssetCheckResult:
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


def evaluate_product_figures(engine: Engine, parts: list[ShopDays], sample: int = SAMPLE_PRODUCTS,
                             seed: str = "") -> dg.AssetCheckResult:
    mismatches: list[str] = []
    sampled = 0
    for sd in parts:
        for product_id, stored, expected in compare_product_sample(engine, sd.shop, sample, f"{seed}/{sd.shop}"):
            sampled += 1
            if stored != expected:
                mismatches.append(f"{sd.shop}/{product_id}: stored {stored} != recomputed {expected}")
    return dg.AssetCheckResult(
        passed=not mismatches,
        metadata={"sampled": sampled, "mismatches": "\n".join(mismatches[:20]) or "none"},
    )


def evaluate_telemetry_completed(store: ObjectStore, run: RunInfo, parts: list[ShopDays]) -> dg.AssetCheckResult:
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


def evaluate_shop_freshness(engine: Engine, run: RunInfo, parts: list[ShopDays],
                            now: datetime | None = None) -> dg.AssetCheckResult:
    now = now or utcnow()
    stale: list[str] = []
    last: list[tuple[str, datetime | None]] = []
    for sd in parts:
        at = jobs.last_success_at(engine, sd.shop, Mode.DAILY_INCREMENTAL)
        last.append((sd.shop, at))
        if at is None or now - as_utc(at) > timedelta(hours=FRESHNESS_HOURS):
            stale.append(sd.shop)
    # A backfill or replay says nothing about freshness: only warn, so it cannot fail one.
    severity = dg.AssetCheckSeverity.ERROR if run.mode == Mode.DAILY_INCREMENTAL else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(passed=not stale, severity=severity,
                               metadata={"last_daily_success": per_shop(last),
                                         "stale": dg.MetadataValue.text(", ".join(stale) or "none")})


def _spread(days: list[date], count: int) -> list[date]:
    """``count`` of ``days`` (sorted), the first and last included, evenly spaced."""
    if len(days) <= count:
        return days
    step = (len(days) - 1) / max(1, count - 1)
    return [days[round(i * step)] for i in range(count)]


def sample_days(stored: list[date], own: tuple[date, ...], size: int, seed: str) -> list[date]:
    """The run's own stored days (evenly spaced ones when a backfill has more than half the
    sample), the oldest and newest, evenly spaced ones between, and a few drawn by run id (so
    that, run after run, every partition gets looked at): at most ``size``, each recomputed
    with its own queries (a 30-day backfill once recomputed all 30 of its days)."""
    if len(stored) <= size:
        return stored
    stored_set = set(stored)
    picked = set(_spread(sorted(d for d in own if d in stored_set), size // 2))
    picked |= set(_spread(stored, size // 2))
    rng = random.Random(seed)
    rest = [d for d in stored if d not in picked]
    picked |= set(rng.sample(rest, min(len(rest), max(0, size - len(picked)))))
    return sorted(picked)


def _is_current(store: ObjectStore, key: str, recomputed: pl.DataFrame) -> bool:
    stored = store.get_bytes(key)
    if stored == parquet_bytes(recomputed):
        return True
    try:  # same rows written by another library version would still be current
        frame = pl.read_parquet(io.BytesIO(stored))
        return frame.schema == recomputed.schema and frame.equals(recomputed)
    except Exception:  # noqa: BLE001 - an unreadable object is a stale one
        return False


def _day_sum_days(own: tuple[date, ...], stored: list[date], seed: str) -> list[date]:
    """The run's newest day and one stored day drawn by run id: run after run, every day's
    sums get held against their lines."""
    picked = {max(own)} if own else set()
    rest = [d for d in stored if d not in picked]
    if rest:
        picked.add(random.Random(seed).choice(rest))
    return sorted(picked)


def evaluate_measurements_current(engine: Engine, store: ObjectStore, run: RunInfo, parts: list[ShopDays],
                                  sample: int = SAMPLE_PARTITIONS) -> dg.AssetCheckResult:
    """A sample of the stored objects equals a recomputation from ``measurement_day_sum`` (a
    stale object: a restatement missed), and that table equals the counted lines on a sample
    of days (the table drifting from the lines it sums)."""
    stale: list[str] = []
    drifted: list[str] = []
    checked = 0
    for sd in parts:
        for kind, key_of, frames_of in (("sales", sales_key, sales_frames),
                                        ("performance", performance_key, performance_frames)):
            days = measurement_days(store.list_keys(measurement_prefix(kind, sd.shop)), kind, sd.shop)
            # The sampled days in one aggregate pass (restate.py; a test holds it equal to the
            # one-day frames): one query per day was most of a daily run's check time.
            recomputed = frames_of(engine, sd.shop, sample_days(days, sd.days, sample,
                                                                f"{run.run_id}/{sd.shop}/{kind}"))
            for day, frame in sorted(recomputed.items()):
                checked += 1
                if not _is_current(store, key_of(sd.shop, day), frame):
                    stale.append(key_of(sd.shop, day))
        stored_days = measurement_days(store.list_keys(measurement_prefix("sales", sd.shop)), "sales", sd.shop)
        for day in _day_sum_days(sd.days, stored_days, f"{run.run_id}/{sd.shop}/day_sums"):
            if (n := rollup.mismatched_rows(engine, sd.shop, day)):
                drifted.append(f"{sd.shop} {day}: {n} measurement_day_sum rows differ from the lines")
    return dg.AssetCheckResult(
        passed=not stale and not drifted,
        metadata={"partitions_checked": checked, "stale": len(stale),
                  "stale_keys": dg.MetadataValue.text("\n".join(stale) or "none"),
                  "day_sums_drifted": dg.MetadataValue.text("\n".join(drifted) or "none")},
    )


@dg.asset_check(asset=ORDER_HEADER, blocking=True,
                description="Lines loaded from the raw file equal the bulk operation's objectCount. "
                "Failing means rows were lost or doubled on the way in; the metrics after it do not run.")
def rows_match_object_count(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with memory_released():
        return evaluate_rows_match_object_count(warehouse.get_engine(), run_info(context), shop_days_for_context(context))


@dg.asset_check(asset=SALES, blocking=True,
                description="measurement_sales has at most one row per (shop, date, product_id, variant_id), "
                "so a day's sales are never counted twice.")
def no_duplicate_sales_keys(
    context: dg.AssetCheckExecutionContext, object_store: ObjectStoreResource
) -> dg.AssetCheckResult:
    with memory_released():
        return evaluate_no_duplicate_sales_keys(object_store.get_store(), shop_days_for_context(context))


@dg.asset_check(asset=PRODUCT, blocking=True,
                description="Sampled products' 7/30-day figures equal a recomputation from order_line_item, "
                "independently of the metrics' own query.")
def product_figures_match_line_items(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    with memory_released():
        return evaluate_product_figures(warehouse.get_engine(), shop_days_for_context(context),
                                        seed=run_info(context).run_id)


@dg.asset_check(asset=PERFORMANCE,
                description="The run's sync telemetry ends with a completed record for every shop, so the "
                "staff API and dashboards see the run as done.")
def telemetry_completed(context: dg.AssetCheckExecutionContext, object_store: ObjectStoreResource) -> dg.AssetCheckResult:
    with memory_released():
        return evaluate_telemetry_completed(object_store.get_store(), run_info(context), shop_days_for_context(context))


@dg.asset_check(asset=PERFORMANCE,
                description=f"Each shop's last successful daily sync is under {FRESHNESS_HOURS} h old "
                "(a warning only in backfill and replay runs).")
def shop_freshness(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with memory_released():
        return evaluate_shop_freshness(warehouse.get_engine(), run_info(context), shop_days_for_context(context))


@dg.asset_check(asset=PERFORMANCE,
                description="A sample of the stored measurement partitions, old ones included, equals a "
                            "recomputation from the warehouse (SPEC §5 Restatement), and the daily sums they "
                            "are built from (measurement_day_sum) equal the order lines on a sample of days.")
def stored_measurements_are_current(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, object_store: ObjectStoreResource
) -> dg.AssetCheckResult:
    with memory_released():
        return evaluate_measurements_current(warehouse.get_engine(), object_store.get_store(), run_info(context),
                                             shop_days_for_context(context))


CHECKS = [rows_match_object_count, no_duplicate_sales_keys, product_figures_match_line_items,
          telemetry_completed, shop_freshness, stored_measurements_are_current]


def stored_figures(p: StoredProductFigures) -> ProductFigures:
    return (p.units_7d, p.net_sales_7d, p.orders_7d, p.units_30d, p.net_sales_30d, p.orders_30d)


def compare_product_sample(engine: Engine, shop: str, limit: int,
                           seed: str = "") -> list[tuple[int, ProductFigures, ProductFigures]]:
    """(product_id, stored figures, recomputed figures) for up to ``limit`` products drawn by
    ``seed`` (the run id: run after run, every product gets looked at).

    Recomputed in SQL from ``order_line_item`` ⋈ ``order_header``, independently of
    ``shopify_sync.metrics`` (SPEC §5). The cost is reading the window's lines, whatever
    the sample (there is no product index), so the sample stays small.
    """
    products = product_sample(engine, shop)
    sample = sorted(random.Random(seed).sample(products, min(limit, len(products))), key=lambda p: p.product_id)
    recomputed: dict[int, ProductFigures] = {}
    # The products of a shop share one as-of day unless a run failed between refreshing them.
    for as_of, group in itertools.groupby(sorted(sample, key=lambda p: p.as_of), key=lambda p: p.as_of):
        recomputed |= recheck_product_figures(engine, shop, [p.product_id for p in group], as_of)
    return [(p.product_id, stored_figures(p), recomputed[p.product_id]) for p in sample]
