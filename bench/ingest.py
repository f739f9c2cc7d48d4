"""Ingest benchmark: the project's ingest_jsonl vs a naive baseline, per backend.

Generates a Shopify-shaped bulk JSONL with the emulator's dataset
(``shopify_sync.emulator.write_jsonl``), then for each backend (SQLite, MariaDB,
PostgreSQL), in this one process and on a fresh database each time:

- ``ingest``: ``shopify_sync.warehouse.ingest_jsonl`` (file on disk → committed rows);
- ``baseline``: line-by-line ``json.loads`` + SQLAlchemy ``executemany`` upserts of the
  same rows (children kept in memory until the end, committed every ``--chunk-rows``).

Each phase runs in a fresh (spawned) process, so its peak RSS (ru_maxrss, interpreter
and imports included) is its own. Prints rows/s, the ratio and the peak RSS of each
phase, the machine's pace before and after each backend (CPU seconds of two fixed
workloads, to compare figures across machines and to flag a run during which the pace
changed), then one JSON line per backend. Timings are reported, never asserted. Example:

    .venv/bin/python bench/ingest.py --line-items 1000000
    .venv/bin/python bench/ingest.py --line-items 50000 --backends sqlite   # quick
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from shopify_sync.config import DEFAULT_CHUNK_ROWS
from shopify_sync.emulator import write_jsonl
from shopify_sync.warehouse import ingest_jsonl, jobs, make_engine
from shopify_sync.warehouse.tables import order_header, order_line_item, order_refund

MYSQL_URL = os.environ.get("SHOPIFY_SYNC_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
POSTGRES_URL = os.environ.get("SHOPIFY_SYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
LINE_ITEMS_PER_ORDER = 2.39  # the emulator dataset's average (measured), to size the file


@contextmanager
def fresh_database(backend: str, workdir: Path, keep: bool = False) -> Iterator[str]:
    """A new, empty database for one measured run, removed afterwards unless ``keep``."""
    name = f"ss_bench_{uuid.uuid4().hex[:8]}"
    if backend == "sqlite":
        path = workdir / f"{name}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm"):
                if not keep:
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    admin_url = MYSQL_URL if backend == "mariadb" else POSTGRES_URL
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    quote = "`" if backend == "mariadb" else '"'
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {quote}{name}{quote}"))
    try:
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        if keep:
            print(f"kept database {sa.make_url(admin_url).set(database=name).render_as_string()}", flush=True)
        else:
            with admin.connect() as conn:
                force = " WITH (FORCE)" if backend == "postgres" else ""
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quote}{name}{quote}{force}"))
        admin.dispose()


def _tail(gid: str | None) -> int | None:
    return None if gid is None else int(gid.rsplit("/", 1)[1])


def _ts(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).replace(
        tzinfo=None)


def _amount(bag: dict[str, Any] | None) -> Decimal | None:
    return None if bag is None else Decimal(bag["shopMoney"]["amount"])


def _upsert_statement(conn: sa.Connection, table: sa.Table, guard: str) -> Any:
    """A dialect-native upsert with the same "never older" guard, executed with executemany."""
    cols = [c.name for c in table.columns if not c.primary_key]
    pk = [c.name for c in table.primary_key.columns]
    name = conn.dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table)
        return stmt.on_conflict_do_update(index_elements=pk, set_={c: stmt.excluded[c] for c in cols},
                                          where=stmt.excluded[guard] >= table.c[guard])
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        pg_stmt = pg_insert(table)
        return pg_stmt.on_conflict_do_update(index_elements=pk, set_={c: pg_stmt.excluded[c] for c in cols},
                                             where=pg_stmt.excluded[guard] >= table.c[guard])
    from sqlalchemy.dialects.mysql import insert as my_insert

    my_stmt = my_insert(table)
    newer = my_stmt.inserted[guard] >= table.c[guard]
    sets = {c: sa.func.IF(newer, my_stmt.inserted[c], table.c[c]) for c in cols if c != guard}
    sets[guard] = sa.func.GREATEST(table.c[guard], my_stmt.inserted[guard])
    return my_stmt.on_duplicate_key_update(**sets)


def naive_ingest(engine: sa.Engine, path: Path, shop: str, chunk_rows: int) -> dict[str, int]:
    """The straightforward way: json.loads per line, dicts, SQLAlchemy executemany upserts."""
    rows = {"order_header": 0, "order_line_item": 0, "order_refund": 0}
    versions: dict[int, datetime] = {}
    headers: list[dict[str, Any]] = []
    refunds: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    now = datetime.now(UTC).replace(tzinfo=None)

    def flush(conn: sa.Connection) -> None:
        for table, batch, guard in ((order_header, headers, "updated_at"), (order_refund, refunds, "order_updated_at"),
                                    (order_line_item, lines, "order_updated_at")):
            if batch:
                conn.execute(_upsert_statement(conn, table, guard), batch)
                rows[table.name] += len(batch)
                batch.clear()

    with open(path, "rb") as fh:
        pending = 0
        for raw in fh:
            obj = json.loads(raw)
            gid = obj["id"]
            if "/Order/" in gid:
                oid = _tail(gid)
                assert oid is not None
                updated = _ts(obj["updatedAt"])
                assert updated is not None
                versions[oid] = updated
                headers.append({
                    "shop": shop, "order_id": oid, "order_name": obj["name"], "created_at": _ts(obj["createdAt"]),
                    "updated_at": updated, "processed_at": _ts(obj["processedAt"]),
                    "cancelled_at": _ts(obj["cancelledAt"]), "test": obj["test"],
                    "currency_code": obj["currencyCode"], "financial_status": obj["displayFinancialStatus"],
                    "fulfillment_status": obj["displayFulfillmentStatus"],
                    "total_price": _amount(obj["currentTotalPriceSet"]),
                    "subtotal_price": _amount(obj["currentSubtotalPriceSet"]),
                    "total_discounts": _amount(obj["currentTotalDiscountsSet"]),
                    "total_tax": _amount(obj["currentTotalTaxSet"]),
                    "total_shipping": _amount(obj["currentShippingPriceSet"]),
                    "total_refunded": _amount(obj["totalRefundedSet"]), "synced_at": now,
                })
                for r in obj["refunds"]:
                    refunds.append({"shop": shop, "refund_id": _tail(r["id"]), "order_id": oid,
                                    "created_at": _ts(r["createdAt"]), "total_refunded": _amount(r["totalRefundedSet"]),
                                    "order_updated_at": updated})
            else:
                parent = _tail(obj["__parentId"])
                assert parent is not None
                lines.append({
                    "shop": shop, "line_item_id": _tail(gid), "order_id": parent,
                    "product_id": _tail((obj.get("product") or {}).get("id")),
                    "variant_id": _tail((obj.get("variant") or {}).get("id")),
                    "sku": obj.get("sku"), "title": obj.get("title"), "quantity": obj["quantity"],
                    "current_quantity": obj["currentQuantity"],
                    "original_unit_price": _amount(obj["originalUnitPriceSet"]),
                    "discounted_unit_price": _amount(obj["discountedUnitPriceAfterAllDiscountsSet"]),
                    "discounted_total": _amount(obj["discountedTotalSet"]),
                    "currency_code": obj["discountedTotalSet"]["shopMoney"]["currencyCode"],
                    "order_updated_at": versions[parent],
                })
            pending += 1
            if pending >= chunk_rows:
                with engine.begin() as conn:
                    flush(conn)
                pending = 0
    with engine.begin() as conn:
        flush(conn)
    return rows


def count_rows(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return sum(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                   for t in (order_header, order_line_item, order_refund))


def _phase_child(kind: str, url: str, paths: list[str], chunk_rows: int, out: Any) -> None:
    """One measured phase in a fresh process, so its peak RSS is its own (ru_maxrss).

    Several files (a backfill's runs, one per month) are ingested one after the other."""
    engine = make_engine(url)
    timings: dict[str, float] = {}
    job_id = jobs.create_job(engine, shop="BENCH", job_type="FULL_BACKFILL_EXECUTE", partition_key="bench").job_id
    before = resource.getrusage(resource.RUSAGE_SELF)
    busy_before = machine_busy_seconds()
    t0 = time.perf_counter()
    rows: dict[str, int] = {}
    for path in paths:
        if kind == "ingest":
            result = ingest_jsonl(engine, Path(path), shop="BENCH", job_id=job_id, chunk_rows=chunk_rows)
            part, timings = result.rows, {k: timings.get(k, 0.0) + v for k, v in result.timings.items()}
        else:
            part = naive_ingest(engine, Path(path), "BENCH", chunk_rows)
        rows = {k: rows.get(k, 0) + part.get(k, 0) for k in {*rows, *part}}
    seconds = time.perf_counter() - t0
    busy_after = machine_busy_seconds()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime
    machine_cpu = None if busy_before is None or busy_after is None else busy_after - busy_before
    stored = count_rows(engine)
    engine.dispose()
    out.send({"rows": sum(rows.values()), "stored": stored, "seconds": seconds, "timings": timings,
              "peak_rss_mb": own_peak_rss_mb(usage), "client_cpu_s": client_cpu, "machine_cpu_s": machine_cpu})


def own_peak_rss_mb(usage: resource.struct_rusage | None = None, pid: int | str = "self") -> float:
    """This (or ``pid``'s) process's own peak RSS: ``VmHWM`` on Linux. ``ru_maxrss`` is kept
    across fork and exec on Linux, so a spawned child reports at least its parent's size
    at the fork (seen: the floor "peaked" at exactly the bench's own 367 MB)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return (usage or resource.getrusage(resource.RUSAGE_SELF)).ru_maxrss / 1024


def machine_busy_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy (Linux /proc/stat), None elsewhere."""
    try:
        with open("/proc/stat") as fh:
            fields = fh.readline().split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def machine_pace(path: Path) -> dict[str, float]:
    """CPU seconds of two fixed workloads: a pure-Python loop and pyarrow parsing the file's
    first 64 MB with the ingest's options. The machines this runs on change pace (seen: the
    same ingest 3x slower from one session to the next, and by tens of per cent within
    minutes), so figures are only comparable next to these.

    In a spawned process of its own: the parse peaks at about 270 MB, which in
    ``bench/e2e.py``'s process was counted as the emulator's peak RSS (docs/benchmarks.md,
    session 11)."""
    with mp.get_context("spawn").Pool(1) as pool:
        pace: dict[str, float] = pool.apply(_pace_here, (path,))
    return pace


def _pace_here(path: Path) -> dict[str, float]:
    import pyarrow as pa
    import pyarrow.json as pj

    from shopify_sync.warehouse.ingest.read import PARSE_OPTIONS, READ_OPTIONS

    t = time.process_time()
    total = 0
    for i in range(10_000_000):
        total += i
    python_s = time.process_time() - t
    with open(path, "rb") as fh:
        data = fh.read(64 << 20)
    data = data[:data.rfind(b"\n") + 1]
    t = time.process_time()
    pj.read_json(pa.BufferReader(data), read_options=READ_OPTIONS, parse_options=PARSE_OPTIONS)
    return {"python_s": round(python_s, 3), "pyarrow_s": round(time.process_time() - t, 3)}


def _pace_text(pace: dict[str, float]) -> str:
    return f"python loop {pace['python_s']:.2f} s, pyarrow 64 MB {pace['pyarrow_s']:.2f} s"


def run_phase(label: str, kind: str, url: str, path: Path | list[Path], chunk_rows: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    paths = [str(p) for p in (path if isinstance(path, list) else [path])]
    proc = ctx.Process(target=_phase_child, args=(kind, url, paths, chunk_rows, child))
    proc.start()
    child.close()
    try:
        result: dict[str, Any] = parent.recv()
    except EOFError:
        proc.join()
        raise RuntimeError(f"{label} phase died (exit code {proc.exitcode})") from None
    proc.join()
    total, seconds = result["rows"], result["seconds"]
    print(f"  {label:<9} {total:>10,} rows in {seconds:7.2f} s = {total / seconds:>10,.0f} rows/s, "
          f"peak RSS {result['peak_rss_mb']:6.0f} MB", flush=True)
    # The CPU budget: client and database server share the machine's cores, so the busy
    # seconds over the timed section bound the rate.
    if result["machine_cpu_s"] is not None:
        print(f"  cpu       client {result['client_cpu_s']:.1f} s, whole machine {result['machine_cpu_s']:.1f} s "
              f"in the timed section ({os.cpu_count()} CPUs)", flush=True)
    if result["timings"]:
        print("  phases    " + ", ".join(f"{k} {v:.1f}s" for k, v in result["timings"].items()), flush=True)
    if result["stored"] != total and len(paths) == 1:  # several files may hold an order twice
        print(f"  WARNING: {result['stored']:,} rows stored for {total:,} in the file", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--line-items", type=int, default=1_000_000, help="approximate line items in the file")
    ap.add_argument("--backends", default="sqlite,mariadb,postgres")
    ap.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workdir", type=Path, default=None, help="where the JSONL and SQLite files go")
    ap.add_argument("--no-baseline", action="store_true", help="only measure the project's ingest")
    args = ap.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - {"sqlite", "mariadb", "postgres"}
    if unknown:
        ap.error(f"unknown backend(s): {', '.join(sorted(unknown))}")

    with tempfile.TemporaryDirectory(prefix="ss_bench_", dir=args.workdir) as tmp:
        workdir = Path(tmp)
        path = workdir / "orders.jsonl"
        orders = max(1, round(args.line_items / LINE_ITEMS_PER_ORDER))
        t0 = time.perf_counter()
        stats = write_jsonl(path, "BENCH", orders=orders, seed=args.seed,
                            anchor=datetime(2026, 11, 23, tzinfo=UTC))
        print(f"generated {stats.objects:,} lines ({stats.roots:,} orders, {stats.objects - stats.roots:,} line "
              f"items), {stats.size / 2**20:,.0f} MB in {time.perf_counter() - t0:.1f} s; "
              f"chunk_rows={args.chunk_rows}; {os.cpu_count()} CPUs, load average "
              f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        results = []
        for backend in backends:
            print(f"{backend}:", flush=True)
            pace_before = machine_pace(path)
            print(f"  pace      {_pace_text(pace_before)} (CPU seconds; lower is faster)", flush=True)
            with fresh_database(backend, workdir) as url:
                ours = run_phase("ingest", "ingest", url, path, args.chunk_rows)
            rate = ours["rows"] / ours["seconds"]
            base_rate = None
            if not args.no_baseline:
                with fresh_database(backend, workdir) as url:
                    base = run_phase("baseline", "baseline", url, path, args.chunk_rows)
                base_rate = base["rows"] / base["seconds"]
                print(f"  ratio     {rate / base_rate:.2f}x the baseline", flush=True)
            pace_after = machine_pace(path)
            # Only workloads long enough to time (a small file's 64 MB prefix is the whole file).
            ratios = [max(pace_after[k], pace_before[k]) / min(pace_after[k], pace_before[k])
                      for k in pace_before if min(pace_after[k], pace_before[k]) >= 0.05]
            drift = max(ratios, default=1.0)
            print(f"  pace      {_pace_text(pace_after)} after"
                  + (f"; note: the machine's pace changed by {drift - 1:.0%} during this backend's phases"
                     if drift > 1.2 else ""), flush=True)
            results.append({"bench": "ingest", "backend": backend, "rows": ours["rows"],
                            "rows_per_s": round(rate), "baseline_rows_per_s": None if base_rate is None
                            else round(base_rate), "peak_rss_mb": round(ours["peak_rss_mb"]),
                            "seconds": round(ours["seconds"], 2), "client_cpu_s": round(ours["client_cpu_s"], 1),
                            "machine_cpu_s": None if ours["machine_cpu_s"] is None else round(ours["machine_cpu_s"], 1),
                            "pace_before": pace_before, "pace_after": pace_after, "lines": stats.objects,
                            "file_mb": round(stats.size / 2**20, 1), "chunk_rows": args.chunk_rows})
        for r in results:
            print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
