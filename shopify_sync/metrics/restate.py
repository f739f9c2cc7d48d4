"""Many measurement partitions from one aggregate pass, and what a run must restate (SPEC §5).

``sales_frames`` and ``performance_frames`` give, for a set of days, exactly the frames
``measurements.sales_frame`` / ``performance_frame`` give for one day each (a test holds
them equal), but read the warehouse once: daily per-product sums over the days needed
(``measurement_day_sum``, kept by the ingest: ``warehouse.rollup``), then the 7/30-day
windows summed in memory with polars. That is what lets a run restate 30 changed days
by reading a few thousand rows instead of every line of those days.

``plan`` decides which objects a run writes for one shop: its own days, plus, for every
pending changed day X (``warehouse.dirty``), ``measurement_sales`` for X and
``measurement_performance`` as of X..X+29, only where such an object is already stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl
from sqlalchemy.engine import Engine

from shopify_sync.metrics.measurements import (
    PERFORMANCE_KEY,
    PERFORMANCE_SCHEMA,
    SALES_KEY,
    SALES_SCHEMA,
    MixedCurrencyError,
    parquet_bytes,
    with_catalog_skus,
    with_catalog_titles,
)
from shopify_sync.storage import ObjectStore, measurement_days, measurement_prefix, performance_key, sales_key
from shopify_sync.warehouse import daily_sums, dirty
from shopify_sync.warehouse.catalog import product_titles, variant_skus
from shopify_sync.warehouse.dirty import DirtyDay
from shopify_sync.warehouse.rollup import read as day_sum_table

WINDOW_DAYS = 30  # measurement_performance as of D covers D-29..D
SHORT_DAYS = 7


def _sorted(frame: pl.DataFrame, key: Sequence[str]) -> pl.DataFrame:
    return frame.sort(list(key), nulls_last=False, maintain_order=True)


def _mixed(shop: str, frame: pl.DataFrame, what: pl.Expr) -> None:
    bad = frame.filter(pl.col("n_cur") > 1)
    if bad.height:
        row = bad.with_columns(what.alias("what")).row(0, named=True)
        raise MixedCurrencyError(
            f"shop {shop}: {row['what']} has lines in several currencies ({row['cur_low']} … {row['cur_high']}); "
            "amounts in different currencies cannot be summed")


def sales_frames(engine: Engine, shop: str, days: Iterable[date], *, from_lines: bool = False
                 ) -> dict[date, pl.DataFrame]:
    """``measurement_sales`` for each of ``days`` (an empty frame for a day without counted lines).

    The sums come from ``measurement_day_sum``; ``from_lines`` aggregates the lines
    themselves instead (the asset check that holds the stored objects to the warehouse)."""
    wanted = sorted(set(days))
    source = daily_sums if from_lines else day_sum_table
    sums = with_catalog_skus(source.variant_day_sums(engine, shop, wanted), variant_skus(engine, shop))
    _mixed(shop, sums, pl.format("{} product {} variant {}", "day", "product_id", "variant_id"))
    frame = sums.select(pl.lit(shop).alias("shop"), pl.col("day").alias("date"), "product_id", "variant_id", "sku",
                        pl.col("cur_high").alias("currency_code"), "orders", "units_ordered", "units_net",
                        "gross_sales", "net_sales").cast(SALES_SCHEMA)
    # One sort; partition_by keeps the order within each day.
    by_day = {d: f for (d,), f in _sorted(frame, SALES_KEY).partition_by("date", as_dict=True).items()}
    return {d: by_day.get(d, pl.DataFrame(schema=SALES_SCHEMA)) for d in wanted}


def _window_days(as_of_days: Sequence[date]) -> list[date]:
    return sorted({d - timedelta(days=k) for d in as_of_days for k in range(WINDOW_DAYS)})


def performance_frames(engine: Engine, shop: str, as_of_days: Iterable[date], *, from_lines: bool = False
                       ) -> dict[date, pl.DataFrame]:
    """``measurement_performance`` as of each of ``as_of_days``, from one read of the daily sums
    (``from_lines``: as ``sales_frames``)."""
    wanted = sorted(set(as_of_days))
    source = daily_sums if from_lines else day_sum_table
    sums = source.product_day_sums(engine, shop, _window_days(wanted))
    # Each (day, product) row counts towards the as-of days day..day+29: spread it over them,
    # keep the wanted ones, and sum. ``age`` (as_of - day) < 7 is the 7-day window.
    spread = (
        sums.with_columns(pl.int_ranges(0, WINDOW_DAYS).alias("age")).explode("age")
        .with_columns((pl.col("day") + pl.duration(days=pl.col("age"))).alias("date"))
        .filter(pl.col("date").is_in(pl.Series(wanted, dtype=pl.Date()).implode()))
    )
    short = pl.col("age") < SHORT_DAYS
    windows = spread.group_by("date", "product_id").agg(
        pl.col("title").sort_by("day").last(),
        pl.col("cur_high").drop_nulls().unique().len().alias("n_window_cur"),
        pl.col("n_cur").max(), pl.col("cur_low").min(), pl.col("cur_high").max(),
        pl.col("units_net").filter(short).sum().alias("units_7d"),
        pl.col("net_sales").filter(short).sum().alias("net_sales_7d"),
        pl.col("orders").filter(short).sum().alias("orders_7d"),
        pl.col("units_net").sum().alias("units_30d"), pl.col("net_sales").sum().alias("net_sales_30d"),
        pl.col("orders").sum().alias("orders_30d"),
    ).with_columns(pl.max_horizontal("n_cur", "n_window_cur").alias("n_cur"))
    _mixed(shop, windows, pl.format("as of {} product {}", "date", "product_id"))
    windows = with_catalog_titles(windows, product_titles(engine, shop))
    frame = windows.select(
        pl.lit(shop).alias("shop"), "date", "product_id", "title", pl.col("cur_high").alias("currency_code"),
        "units_7d", "net_sales_7d", "orders_7d", "units_30d", "net_sales_30d", "orders_30d",
    ).cast(PERFORMANCE_SCHEMA)
    by_day = {d: f for (d,), f in _sorted(frame, PERFORMANCE_KEY).partition_by("date", as_dict=True).items()}
    return {d: by_day.get(d, pl.DataFrame(schema=PERFORMANCE_SCHEMA)) for d in wanted}


# -- what a run writes ---------------------------------------------------------------------


def stored_days(store: ObjectStore, kind: str, shop: str) -> set[date]:
    """The days of ``shop`` with a stored ``kind`` (``sales`` / ``performance``) object: one listing."""
    prefix = measurement_prefix(kind, shop)
    return set(measurement_days(store.list_keys(prefix), kind, shop))


@dataclass(frozen=True)
class Restatement:
    """Days one asset writes for one shop: the run's own, and the restated ones with their causes."""

    own: tuple[date, ...]
    restated: dict[date, tuple[date, ...]]  # restated day -> changed days that make it stale

    @property
    def days(self) -> list[date]:
        return sorted(set(self.own) | set(self.restated))


def plan_sales(own: Sequence[date], pending: Sequence[DirtyDay], stored: set[date]) -> Restatement:
    """measurement_sales: the run's days, and each changed day X whose object is stored."""
    restated: dict[date, tuple[date, ...]] = {r.day: (r.day,) for r in pending if r.day in stored and r.day not in own}
    return Restatement(tuple(own), restated)


def plan_performance(own: Sequence[date], pending: Sequence[DirtyDay], stored: set[date]) -> Restatement:
    """measurement_performance: the run's days, and every stored as-of day in [X, X+29] of a changed day X."""
    causes: dict[date, list[date]] = {}
    for r in pending:
        for k in range(WINDOW_DAYS):
            d = r.day + timedelta(days=k)
            if d in stored and d not in own:
                causes.setdefault(d, []).append(r.day)
    return Restatement(tuple(own), {d: tuple(sorted(x)) for d, x in causes.items()})


# -- writing them ----------------------------------------------------------------------------

# Days computed per aggregate pass: bounds memory on a long backfill (a pass over N as-of
# days reads N + 29 days of sums and spreads each over 30 days) while a restatement of
# the previous two months stays one pass.
BATCH_DAYS = 64
_PUT_THREADS = 4


@dataclass(frozen=True)
class Written:
    """What one asset wrote for one shop."""

    plan: Restatement
    rows: int
    keys: tuple[str, ...]


def _batches(days: Sequence[date]) -> Iterable[list[date]]:
    ordered = sorted(days)
    for i in range(0, len(ordered), BATCH_DAYS):
        yield ordered[i:i + BATCH_DAYS]


def _write(store: ObjectStore, plan: Restatement, frames_of: Callable[[list[date]], dict[date, pl.DataFrame]],
           key_of: Callable[[date], str]) -> Written:
    rows, keys = 0, list[str]()

    def put(item: tuple[date, pl.DataFrame]) -> str:
        key = key_of(item[0])
        store.put_bytes(key, parquet_bytes(item[1]))
        return key

    # Objects are written by a few threads: a put is mostly waiting (an fsync on a local
    # store, a round trip on S3), and a restatement writes dozens (docs/benchmarks.md).
    with ThreadPoolExecutor(max_workers=_PUT_THREADS) as pool:
        for batch in _batches(plan.days):
            frames = frames_of(batch)
            rows += sum(f.height for f in frames.values())
            keys.extend(pool.map(put, frames.items()))
    return Written(plan, rows, tuple(keys))


def write_sales(engine: Engine, store: ObjectStore, shop: str, own: Sequence[date]) -> Written:
    """measurement_sales of the run's days and of every pending changed day already stored."""
    pending = dirty.pending(engine, shop)
    plan = plan_sales(own, pending, stored_days(store, "sales", shop) if pending else set())
    written = _write(store, plan, lambda days: sales_frames(engine, shop, days), lambda d: sales_key(shop, d))
    dirty.sales_restated(engine, shop, pending)
    return written


def write_performance(engine: Engine, store: ObjectStore, shop: str, own: Sequence[date]) -> tuple[Written, Written]:
    """measurement_performance of the run's days and of every stored as-of day a pending change
    reaches; then the pending days are cleared. Also (first element) measurement_sales of the
    days marked again after the sales step read them (a concurrent ingest), usually none."""
    pending = dirty.pending(engine, shop)
    late = [r for r in pending if not r.sales_restated]
    sales_plan = plan_sales((), late, stored_days(store, "sales", shop) if late else set())
    sales = _write(store, sales_plan, lambda days: sales_frames(engine, shop, days), lambda d: sales_key(shop, d))
    plan = plan_performance(own, pending, stored_days(store, "performance", shop) if pending else set())
    performance = _write(store, plan, lambda days: performance_frames(engine, shop, days),
                         lambda d: performance_key(shop, d))
    # Only now: a crash before this line leaves the days pending for the next run.
    dirty.clear(engine, shop, pending)
    return sales, performance
