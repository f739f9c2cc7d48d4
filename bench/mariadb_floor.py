"""MariaDB's own cost per row for the ingest's statements: the server-side floor.

Renders line items exactly as the ingest does (``MysqlWriter``: multi-row ``INSERT``, the
PlanetScale-compatible path) and sends them into a fresh database migrated to head, then
prints the database server's CPU seconds per row, read from ``/proc`` (so the server must
run on this machine). One connection's statements run on one server thread, so
``1 / (server µs per row)`` bounds what one connection can ingest even with a client that
costs nothing. Also measures two other timestamp literal forms, to show whether the
statement text could be made cheaper for the server.

    .venv/bin/python bench/mariadb_floor.py             # 200k line items
    .venv/bin/python bench/mariadb_floor.py --rows 50000
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import polars as pl
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shopify_sync.warehouse import make_engine  # noqa: E402
from shopify_sync.warehouse.ingest import upsert  # noqa: E402

MYSQL_URL = os.environ.get("SHOPIFY_SYNC_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def server_cpu_seconds() -> float:
    pid = subprocess.check_output(["pgrep", "-o", "-x", "mariadbd"]).split()[0].decode()
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def line_items(n: int, seed: int = 1) -> pl.DataFrame:
    rng = random.Random(seed)
    price = [f"{rng.randint(1, 300)}.{rng.randint(0, 99):02d}" for _ in range(n)]
    return pl.DataFrame({
        "shop": ["BENCH"] * n,
        "line_item_id": [10**12 + i for i in range(n)],
        "order_id": [10**9 + i // 3 for i in range(n)],
        "product_id": [rng.randint(1, 9_999) for _ in range(n)],
        "variant_id": [rng.randint(1, 99_999) for _ in range(n)],
        "sku": [f"SKU-{rng.randint(1, 5000)}" for _ in range(n)],
        "title": [f"Product {rng.randint(1, 5000)} - Blue / XL" for _ in range(n)],
        "quantity": [rng.randint(1, 5) for _ in range(n)],
        "current_quantity": [rng.randint(0, 5) for _ in range(n)],
        "original_unit_price": price, "discounted_unit_price": price, "discounted_total": price,
        "currency_code": ["EUR"] * n,
        "order_updated_at": [datetime(2026, 11, 20, 10, 0, 0)] * n,
    }, schema_overrides={"quantity": pl.Int64, "current_quantity": pl.Int64})


def measure(url: str, frame: pl.DataFrame, ts_form: str, chunk: int = 20_000) -> tuple[float, float]:
    """(wall seconds, server CPU seconds) to insert the frame in chunk-sized transactions."""
    engine = make_engine(url)
    original = upsert._ts_text
    if ts_form == "no fraction":
        upsert._ts_text = lambda col: pl.col(col).dt.strftime("%Y-%m-%d %H:%M:%S")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("TRUNCATE TABLE order_line_item")  # DDL: no purge work left behind
        time.sleep(2)  # let the previous round's background flushing settle
        before, t0 = server_cpu_seconds(), time.perf_counter()
        for part in frame.iter_slices(chunk):
            with engine.begin() as conn:
                writer = upsert.writer_for(conn, upsert.default_statement_bytes(conn))
                writer.insert(upsert.LINES, part)
        return time.perf_counter() - t0, server_cpu_seconds() - before
    finally:
        upsert._ts_text = original
        engine.dispose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    args = ap.parse_args()
    frame = line_items(args.rows)
    admin = sa.create_engine(MYSQL_URL)
    name = f"ss_floor_{uuid.uuid4().hex[:8]}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    url = sa.make_url(MYSQL_URL).set(database=name).render_as_string(hide_password=False)
    try:
        for form in ("as the ingest sends", "no fraction", "as the ingest sends", "no fraction"):
            wall, server = measure(url, frame, form)
            per_row = server / args.rows * 1e6
            print(f"{form:<20} {args.rows:,} line items: wall {wall:5.2f} s, server CPU {server:5.2f} s "
                  f"= {per_row:4.1f} µs/row -> one connection at most {1e6 / per_row:,.0f} rows/s", flush=True)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        admin.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
