"""COMMERCE_TELEMETRY of a load: the per-event Python path (before session 8) against the
polars one, in the same process, on the same change frames.

    .venv/bin/python bench/commerce_telemetry.py --events 1000000 [--chunk-rows 20000] [--kinds mixed]

Prints one JSON line: seconds for each path (frames -> merged object in a local store,
a first write and a re-run merging the same events again), and whether the bytes agree.
``reference_write`` below is the old implementation, kept here (and used by the tests)
as the reference the product's output is compared with; it is not in the product.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl

from shopify_sync.storage.keys import commerce_telemetry_key
from shopify_sync.storage.object_store import LocalObjectStore, ObjectNotFoundError, ObjectStore
from shopify_sync.telemetry.commerce import _event_dict, write_commerce_lines
from shopify_sync.telemetry.commerce_frames import change_event_lines
from shopify_sync.vocab import ChangeKind
from shopify_sync.warehouse.ingest.decide import CHANGES_SCHEMA
from shopify_sync.warehouse.ingest.model import ChangeValue, OrderChange
from shopify_sync.warehouse.types import MONEY_SCALE

_MASK64 = (1 << 64) - 1


# -- the reference: change_store.changes_from_frame + commerce.write_commerce_events as they were


def reference_changes(frame: pl.DataFrame) -> Iterator[OrderChange]:
    for r in frame.iter_rows(named=True):
        at = r["updated_at"].replace(tzinfo=UTC)
        refunded = None if r["total_refunded"] is None else Decimal(r["total_refunded"])
        prev_units = r["previous_refunded_units"]
        prev_refunded = None if prev_units is None else Decimal(prev_units).scaleb(-MONEY_SCALE)
        cancelled_at = None if r["cancelled_at"] is None else r["cancelled_at"].replace(tzinfo=UTC)
        status: dict[str, ChangeValue] = {"financial_status": r["financial_status"],
                                          "fulfillment_status": r["fulfillment_status"]}
        order_id, name, currency = r["order_id"], r["order_name"], r["currency_code"]
        if r[ChangeKind.CREATED.value]:
            yield OrderChange(order_id, name, ChangeKind.CREATED, at, None,
                              {**status, "total_refunded": refunded, "cancelled_at": cancelled_at,
                               "currency_code": currency})
        if r[ChangeKind.STATUS_CHANGED.value]:
            yield OrderChange(order_id, name, ChangeKind.STATUS_CHANGED, at,
                              {"financial_status": r["previous_financial_status"],
                               "fulfillment_status": r["previous_fulfillment_status"]}, status)
        if r[ChangeKind.REFUNDED.value]:
            yield OrderChange(order_id, name, ChangeKind.REFUNDED, at,
                              {"total_refunded": prev_refunded, "currency_code": currency},
                              {"total_refunded": refunded, "currency_code": currency})
        if r[ChangeKind.CANCELLED.value]:
            yield OrderChange(order_id, name, ChangeKind.CANCELLED, at, {"cancelled_at": None},
                              {"cancelled_at": cancelled_at})


def _reference_lines_of(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8") as fh:
        yield from (ln.rstrip("\n") for ln in fh if ln.strip())


def _reference_write_unique(lines: Iterable[str], out: Path) -> None:
    seen: set[int] = set()
    with open(out, "w", encoding="utf-8") as fh:
        for line in lines:
            digest = (hash(line) & _MASK64) << 64 | (hash(line + "\x1f") & _MASK64)
            if digest not in seen:
                seen.add(digest)
                fh.write(line + "\n")


def reference_write(store: ObjectStore, key: str, events: Iterable[Mapping[str, object] | OrderChange],
                    shop: str | None = None) -> str | None:
    """``write_commerce_events`` before session 8: one dict and one ``json.dumps`` per event."""
    items = iter(events)
    first = next(items, None)
    if first is None:
        return None
    new_lines = (json.dumps(_event_dict(e, shop), ensure_ascii=False) for e in itertools.chain([first], items))
    with tempfile.TemporaryDirectory(prefix="shopify_sync_events_") as tmp:
        existing, merged = Path(tmp) / "existing.jsonl", Path(tmp) / "out.jsonl"
        try:
            store.download_file(key, existing)
            lines: Iterable[str] = itertools.chain(_reference_lines_of(existing), new_lines)
        except ObjectNotFoundError:
            lines = new_lines
        _reference_write_unique(lines, merged)
        store.put_file(key, merged)
    return key


def reference_publish(store: ObjectStore, key: str, frames: Iterable[pl.DataFrame], shop: str) -> str | None:
    return reference_write(store, key, (c for f in frames for c in reference_changes(f)), shop=shop)


def fast_publish(store: ObjectStore, key: str, frames: Iterable[pl.DataFrame], shop: str) -> str | None:
    """What ``sync.load.publish_job_events`` does with a job's frames."""
    return write_commerce_lines(store, key, (change_event_lines(f, shop) for f in frames))[0]


# -- change frames like the ingest stores them


def change_frames(events: int, chunk_rows: int, kinds: str) -> list[pl.DataFrame]:
    """``events`` orders in frames of ``chunk_rows``: all ``created`` (a first load), or a mix
    of every kind, nulls, unicode names and amounts with trailing zeros."""
    base = datetime(2026, 11, 1)
    frames = []
    for start in range(0, events, chunk_rows):
        ids = range(start, min(start + chunk_rows, events))
        mixed = kinds == "mixed"
        frames.append(pl.DataFrame({
            "order_id": [10_000_000 + i for i in ids],
            "order_name": [None if mixed and i % 17 == 0 else (f"#Zürich-{i} \"ü\"" if mixed and i % 5 == 0 else f"#{i}")
                           for i in ids],
            ChangeKind.CREATED.value: [not mixed or i % 3 == 0 for i in ids],
            ChangeKind.STATUS_CHANGED.value: [mixed and i % 3 != 0 and i % 2 == 0 for i in ids],
            ChangeKind.REFUNDED.value: [mixed and i % 3 != 0 and i % 4 != 1 for i in ids],
            ChangeKind.CANCELLED.value: [mixed and i % 3 != 0 and i % 7 == 0 for i in ids],
            "updated_at": [base + timedelta(seconds=i, microseconds=(i * 7919) % 3 * 250_001) for i in ids],
            "financial_status": [("PAID", "REFUNDED", None, "PARTIALLY_REFUNDED")[i % 4] for i in ids],
            "previous_financial_status": [("PENDING", None)[i % 2] for i in ids],
            "fulfillment_status": [(None, "FULFILLED")[i % 2] for i in ids],
            "previous_fulfillment_status": [None for _ in ids],
            "total_refunded": [(f"{i % 1000}.{i % 100:02d}", "0.00", "12.5000", None, "0")[i % 5] for i in ids],
            "previous_refunded_units": [(None, 0, 5, 123_450_000, 99)[i % 5] for i in ids],
            "cancelled_at": [base + timedelta(hours=i) if i % 7 == 0 else None for i in ids],
            "currency_code": [("EUR", "USD", None)[i % 3] for i in ids],
        }, schema=CHANGES_SCHEMA))
    return frames


def _timed(publish: object, frames: list[pl.DataFrame], root: Path) -> tuple[float, float, bytes]:
    assert callable(publish)
    store = LocalObjectStore(root)
    key = commerce_telemetry_key(date(2026, 11, 22), "bench-run")
    t0 = time.perf_counter()
    publish(store, key, frames, "DE")
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    publish(store, key, frames, "DE")  # a re-run: every line is already stored
    rerun = time.perf_counter() - t0
    return first, rerun, store.get_bytes(key)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000, help="orders (one created event each unless --kinds mixed)")
    ap.add_argument("--chunk-rows", type=int, default=20_000)
    ap.add_argument("--kinds", choices=("created", "mixed"), default="created")
    args = ap.parse_args(argv)
    frames = change_frames(args.events, args.chunk_rows, args.kinds)
    with tempfile.TemporaryDirectory(prefix="bench_commerce_") as tmp:
        old_first, old_rerun, old_bytes = _timed(reference_publish, frames, Path(tmp) / "old")
        new_first, new_rerun, new_bytes = _timed(fast_publish, frames, Path(tmp) / "new")
    print(json.dumps({
        "bench": "commerce_telemetry", "orders": args.events, "kinds": args.kinds,
        "lines": old_bytes.count(b"\n"), "chunk_rows": args.chunk_rows,
        "old_s": round(old_first, 3), "new_s": round(new_first, 3), "speedup": round(old_first / new_first, 1),
        "old_rerun_s": round(old_rerun, 3), "new_rerun_s": round(new_rerun, 3),
        "identical": old_bytes == new_bytes, "loadavg": [round(x, 2) for x in os.getloadavg()],
    }))
    return 0 if old_bytes == new_bytes else 1


if __name__ == "__main__":
    sys.exit(main())
