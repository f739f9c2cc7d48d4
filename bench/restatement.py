"""Restatement benchmark (SPEC §5 "Restatement", issue 13): what a daily sync pays to
rewrite the stored partitions that changed orders of earlier days make stale.

Per backend, on a fresh database and a fresh local object store:

1. a dataset of ``--orders`` orders over ``--days`` days (the emulator's generator) is
   ingested, and ``measurement_sales`` / ``measurement_performance`` are written for the
   last ``--stored-days`` days (the "backfill"; timed);
2. ``one day``: the metric steps of a daily run for the last day with nothing pending:
   the cost of computing one day (the median of ``--repeat`` runs);
3. a daily file of ``--changed`` orders processed over the previous ``--spread`` days,
   each a newer version (a unit of every line refunded, one in ten moved to another
   day), is ingested: the chunks mark the changed days in ``measurement_dirty``;
4. ``restatement``: the same metric steps, which now also rewrite every stored
   partition those days make stale, from one aggregate pass;
5. for comparison and as a check, every restated partition is recomputed one by one with
   the per-day queries (``sales_frame`` / ``performance_frame``) and compared byte for
   byte with what the restatement wrote.

Prints the figures and one JSON line per backend. Timings are reported, never asserted.

    .venv/bin/python bench/restatement.py                      # SQLite, the issue's scenario
    .venv/bin/python bench/restatement.py --backends sqlite,mariadb,postgres
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import fresh_database  # noqa: E402

from shopify_sync.config import DEFAULT_CHUNK_ROWS  # noqa: E402
from shopify_sync.emulator import write_jsonl  # noqa: E402
from shopify_sync.emulator.dataset import default_anchor  # noqa: E402
from shopify_sync.metrics.measurements import parquet_bytes, performance_frame, sales_frame  # noqa: E402
from shopify_sync.metrics.restate import write_performance, write_sales  # noqa: E402
from shopify_sync.storage import LocalObjectStore, performance_key, sales_key  # noqa: E402
from shopify_sync.warehouse import dirty, ingest_jsonl, make_engine  # noqa: E402

SHOP = "BENCH"


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _z(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def changed_file(source: Path, target: Path, *, first: date, last: date, count: int, at: datetime,
                 seed: int = 5) -> tuple[int, set[date]]:
    """Newer versions of ``count`` counted orders processed in [first, last]: every line loses
    a unit (a refund), one order in ten moves two days back. Returns (orders, days touched)."""
    orders: dict[str, dict[str, Any]] = {}
    children: dict[str, list[dict[str, Any]]] = {}
    with open(source, encoding="utf-8") as fh:
        for raw in fh:
            obj = json.loads(raw)
            parent = obj.get("__parentId")
            if parent is None:
                if (not obj["test"] and obj["cancelledAt"] is None and obj["processedAt"]
                        and first <= _ts(obj["processedAt"]).date() <= last):
                    orders[obj["id"]] = obj
            elif parent in orders:
                children.setdefault(parent, []).append(obj)
    rng = random.Random(seed)
    picked = rng.sample(sorted(orders), min(count, len(orders)))
    touched: set[date] = set()
    with open(target, "w", encoding="utf-8") as out:
        lines: list[str] = []
        for gid in picked:
            order = orders[gid]
            touched.add(_ts(order["processedAt"]).date())
            order["updatedAt"] = _z(at)
            if rng.random() < 0.1:
                moved = _ts(order["processedAt"]) - timedelta(days=2)
                order["processedAt"] = _z(moved)
                touched.add(moved.date())
            out.write(json.dumps(order) + "\n")
            for child in children.get(gid, []):
                if "currentQuantity" in child and child["currentQuantity"] > 0:
                    child["currentQuantity"] -= 1
                lines.append(json.dumps(child) + "\n")
        out.writelines(lines)  # children after every parent, as Shopify's ungrouped output allows
    return len(picked), touched


def metric_steps(engine: Any, store: LocalObjectStore, days: list[date]) -> tuple[float, int, dict[str, list[date]]]:
    """What a run's sales and performance steps do for one shop: (seconds, objects, restated)."""
    began = time.perf_counter()
    sales = write_sales(engine, store, SHOP, days)
    late, performance = write_performance(engine, store, SHOP, days)
    seconds = time.perf_counter() - began
    objects = len(sales.keys) + len(late.keys) + len(performance.keys)
    restated = {"sales": sorted({*sales.plan.restated, *late.plan.restated}),
                "performance": sorted(performance.plan.restated)}
    return seconds, objects, restated


def per_partition(engine: Any, store: LocalObjectStore, restated: dict[str, list[date]]) -> tuple[float, int]:
    """The restated partitions recomputed one query pair at a time; (seconds, mismatches)."""
    began, mismatches = time.perf_counter(), 0
    for day in restated["sales"]:
        mismatches += store.get_bytes(sales_key(SHOP, day)) != parquet_bytes(sales_frame(engine, SHOP, day))
    for day in restated["performance"]:
        mismatches += store.get_bytes(performance_key(SHOP, day)) != parquet_bytes(
            performance_frame(engine, SHOP, day))
    return time.perf_counter() - began, mismatches


def run_backend(backend: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    anchor = default_anchor()
    today = anchor.date() if anchor.hour else anchor.date() - timedelta(days=1)
    day = today - timedelta(days=1)  # the daily run's partition
    full = workdir / "orders.jsonl"
    if not full.exists():
        write_jsonl(full, SHOP, orders=args.orders, days=args.days, anchor=anchor, seed=7)
    with fresh_database(backend, workdir) as url:
        engine = make_engine(url)
        store = LocalObjectStore(workdir / f"objects-{backend}")
        began = time.perf_counter()
        ingest_jsonl(engine, full, shop=SHOP, job_id=None, chunk_rows=DEFAULT_CHUNK_ROWS)
        ingest_s = time.perf_counter() - began
        stored = [day - timedelta(days=k) for k in range(args.stored_days)][::-1]
        backfill_s, backfill_objects, _ = metric_steps(engine, store, stored)
        assert dirty.pending(engine, SHOP) == []
        one_day = [metric_steps(engine, store, [day]) for _ in range(args.repeat)]
        one_day_s = statistics.median(s for s, _, _ in one_day)

        changes = workdir / f"changes-{backend}.jsonl"
        n, touched = changed_file(full, changes, first=day - timedelta(days=args.spread), last=day - timedelta(days=1),
                                  count=args.changed, at=anchor + timedelta(hours=1))
        began = time.perf_counter()
        ingest_jsonl(engine, changes, shop=SHOP, job_id=None, chunk_rows=DEFAULT_CHUNK_ROWS)
        change_ingest_s = time.perf_counter() - began
        pending_days = len(dirty.pending(engine, SHOP))
        restate_s, objects, restated = metric_steps(engine, store, [day])
        naive_s, mismatches = per_partition(engine, store, restated)
        engine.dispose()
    return {
        "backend": backend, "orders": args.orders, "stored_days": args.stored_days, "ingest_s": round(ingest_s, 2),
        "backfill_s": round(backfill_s, 2), "backfill_objects": backfill_objects,
        "one_day_s": round(one_day_s, 3), "changed_orders": n, "changed_days": len(touched),
        "pending_days": pending_days, "change_ingest_s": round(change_ingest_s, 2),
        "restatement_s": round(restate_s, 3), "objects_rewritten": objects,
        "restated_sales": len(restated["sales"]), "restated_performance": len(restated["performance"]),
        "ratio_to_one_day": round(restate_s / one_day_s, 2), "per_partition_s": round(naive_s, 2),
        "per_partition_mismatches": mismatches,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite", help="comma-separated: sqlite, mariadb, postgres")
    parser.add_argument("--orders", type=int, default=100_000, help="orders in the dataset")
    parser.add_argument("--days", type=int, default=400, help="days the dataset spans")
    parser.add_argument("--stored-days", type=int, default=365, help="partitions in the store")
    parser.add_argument("--changed", type=int, default=5_000, help="changed orders in the daily file")
    parser.add_argument("--spread", type=int, default=60, help="days before the run the changed orders span")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the one-day measurement (median)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ss-restate-") as tmp:
        for backend in args.backends.split(","):
            r = run_backend(backend.strip(), args, Path(tmp))
            print(f"{r['backend']}: {r['orders']} orders ingested in {r['ingest_s']} s; "
                  f"{r['stored_days']} days stored ({r['backfill_objects']} objects) in {r['backfill_s']} s")
            print(f"  one day (sales + performance, nothing pending): {r['one_day_s']} s")
            print(f"  daily file: {r['changed_orders']} changed orders over {r['changed_days']} days, "
                  f"ingested in {r['change_ingest_s']} s, {r['pending_days']} days pending")
            print(f"  restatement: {r['restatement_s']} s for {r['objects_rewritten']} objects "
                  f"({r['restated_sales']} sales + {r['restated_performance']} performance restated, "
                  f"+ the run's own 2) = {r['ratio_to_one_day']}x one day (target < 10x)")
            print(f"  same partitions one query pair at a time: {r['per_partition_s']} s, "
                  f"{r['per_partition_mismatches']} mismatches")
            print(json.dumps(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
