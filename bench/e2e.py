"""End-to-end benchmark: orders from the emulator through Dagster into each warehouse.

For each backend (SQLite, PostgreSQL, MariaDB), on a fresh database and object store:

1. ``backfill``: ``shopify-sync backfill`` over the last ``--days`` days (the CLI process
   runs the Dagster job: asset graph, archive, ingest, transforms), against the emulator
   with zero poll delay serving ``--orders`` orders of one shop over those days;
2. ``floor``: the project's ``ingest_jsonl`` alone on the very file the backfill archived,
   into a fresh database (``bench/ingest.py``'s measured phase), and the naive baseline;
3. ``daily``: a first daily sync (sets the watermark; everything in the floor window), then
   ``--changes`` orders updated in the emulator and the daily sync again: the incremental.

Per run: wall time per phase from the run's own telemetry records (request/poll,
download + archive, parse + upsert, transform; SPEC §6 steps), CPU seconds and peak RSS of
the CLI process tree (``RUSAGE_CHILDREN``: the largest process), rows/s, and the
orchestration overhead: everything that is not parse + upsert, as a share of the wall
time less the seconds the emulator spent rendering the result (Shopify's work: with
zero poll delay that is all request/poll would otherwise hold besides the client's own
request and polls); the figure with the rendering and the one without request/poll are
printed too. The emulator runs in this process (its CPU is not the run's). Figures are printed,
never asserted; docs/benchmarks.md records them with the machine's load.

    .venv/bin/python bench/e2e.py --orders 100000 --backends sqlite       # quick
    .venv/bin/python bench/e2e.py --orders 1000000                        # the full run
    .venv/bin/python bench/e2e.py --backends mariadb --mariadb-buffer-pool 1G   # a sized server
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ingest as ingest_bench  # noqa: E402
from ingest import (  # noqa: E402
    _pace_text,
    fresh_database,
    machine_busy_seconds,
    machine_pace,
    own_peak_rss_mb,
    run_phase,
)
from mariadb_server import private_mariadb, server_settings  # noqa: E402

from shopify_sync.config import DEFAULT_CHUNK_ROWS  # noqa: E402
from shopify_sync.emulator import EmulatorConfig, EmulatorServer  # noqa: E402
from shopify_sync.emulator.dataset import order_id_base  # noqa: E402

SHOP = "BENCH"
RUN_ID = re.compile(r"\brun ([0-9a-f][0-9a-f-]{7,})")
CLI = Path(sys.executable).with_name("shopify-sync")
# SPEC §6 steps in order: a phase runs from its step's first record to the next step's.
PHASES = [("request/poll", "requested", "downloading"), ("download+archive", "downloading", "upserting"),
          ("parse+upsert", "upserting", "transforming"), ("transform", "transforming", "completed")]


PROFILE_DIR: Path | None = None


def _env(url: str, work: Path, base_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOPIFY_", "DAGSTER_"))}
    env.update({"SHOPIFY_SHOPS": SHOP, f"SHOPIFY_{SHOP}_STORE": base_url, f"SHOPIFY_{SHOP}_TOKEN": "shpat_emulator",
                "SHOPIFY_POLL_INTERVAL_SECONDS": "0", "SHOPIFY_SYNC_HOME": str(work / "home"),
                "SHOPIFY_SYNC_DATABASE_URL": url, "SHOPIFY_SYNC_STORAGE_URL": f"file://{work / 'objects'}",
                "SHOPIFY_SYNC_START_DATE": "2026-01-01", "DAGSTER_HOME": str(work / "dagster_home")})
    return env


def run_cli(argv: list[str], env: dict[str, str], server: EmulatorServer) -> dict[str, Any]:
    """One CLI invocation: wall, CPU of its process tree, its own peak RSS (sampled), and
    the seconds the emulator spent rendering bulk results meanwhile (Shopify's work)."""
    rendering = server.emulator.bulk.render_seconds
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy = machine_busy_seconds()
    t0 = time.perf_counter()
    command = [str(CLI), *argv]
    if PROFILE_DIR is not None:  # diagnosis only: py-spy's collapsed stacks of the CLI (RSS is then py-spy's)
        label = f"{argv[0]}-{len(list(PROFILE_DIR.glob('*.txt')))}"
        command = ["py-spy", "record", "--rate", "50", "--format", "raw", "--output",
                   str(PROFILE_DIR / f"{label}.txt"), "--", *command]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0.0]

    def sample() -> None:
        # VmHWM is monotonic: the last reading before the exit is within 0.2 s of the peak.
        while proc.poll() is None:
            peak[0] = max(peak[0], own_peak_rss_mb(pid=proc.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        stdout, stderr = proc.communicate()
    except BaseException:
        # Interrupted or terminated: the CLI would go on retrying against a stopped emulator.
        proc.kill()
        proc.wait()
        raise
    wall = time.perf_counter() - t0
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {stderr.strip()[-500:]}")
    # A backfill is one run per calendar month, or one for up to 31 days (progress lines name runs by their first 8
    # characters); a sync prints the full id.
    run_ids = RUN_ID.findall(stdout)
    busy_after = machine_busy_seconds()
    return {"run_ids": run_ids, "wall_s": wall,
            "cpu_s": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
            "machine_cpu_s": None if busy is None or busy_after is None else busy_after - busy,
            "peak_rss_mb": peak[0], "emulator_render_s": server.emulator.bulk.render_seconds - rendering}


def run_phases(objects: Path, run_ids: list[str]) -> dict[str, Any]:
    """Phase walls from the runs' telemetry records (summed over the runs), plus their rows."""
    phases: dict[str, float] = {}
    total = 0
    for run_id in run_ids:
        first: dict[str, datetime] = {}
        rows: dict[str, int] = {}
        for path in sorted(objects.glob(f"telemetry/sync/date=*/{run_id}*/*.json")):
            record = json.loads(path.read_text())
            at = datetime.fromisoformat(record["at"].replace("Z", "+00:00"))
            first.setdefault(record["step"], at)
            rows = record.get("rows") or rows
        for name, start, end in PHASES:
            if start in first and end in first:
                phases[name] = phases.get(name, 0.0) + (first[end] - first[start]).total_seconds()
        total += sum(rows.values())
    return {"phases": phases, "rows": total, "runs": len(run_ids)}


def archived_files(objects: Path, run_ids: list[str]) -> list[Path]:
    """The raw files the runs archived, one per run, in run order."""
    return [path for run_id in run_ids for path in objects.glob(f"raw/shopify/shop={SHOP}/*/date=*/{run_id}*.jsonl*")]


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def report(label: str, result: dict[str, Any]) -> None:
    phases = result["phases"]
    upsert = phases.get("parse+upsert", 0.0)
    wall = result["wall_s"]
    result["overhead_share"] = 1 - upsert / wall if wall else None
    # With zero poll delay the operation is complete when first polled, but the emulator
    # (in this process) still renders the result file then: Shopify's work, not the
    # project's. The target's figure takes it out and keeps the client's own request and
    # polls; "without request/poll" also drops those (docs/benchmarks.md).
    render = result["emulator_render_s"]
    end_to_end = wall - render
    result["end_to_end_s"] = end_to_end
    result["overhead_share_without_render"] = 1 - upsert / end_to_end if end_to_end > 0 else None
    project = wall - phases.get("request/poll", 0.0)
    result["project_s"] = project
    result["overhead_share_without_poll"] = 1 - upsert / project if project > 0 else None
    result["load_average"] = os.getloadavg()
    rate = result["rows"] / wall if wall else 0
    print(f"  {label:<11} {result['rows']:>10,} rows in {wall:7.1f} s = {rate:>8,.0f} rows/s; "
          f"CPU {result['cpu_s']:.1f} s; peak RSS {result['peak_rss_mb']:.0f} MB; "
          f"orchestration overhead {result['overhead_share_without_render']:.1%} of {end_to_end:.1f} s "
          f"without the emulator's rendering ({render:.1f} s; {result['overhead_share']:.0%} with it), "
          f"{result['overhead_share_without_poll']:.1%} without request/poll ({project:.1f} s); "
          f"load average {_load()}", flush=True)
    outside = wall - sum(phases.values())
    print("              " + ", ".join(f"{k} {v:.1f}s" for k, v in phases.items())
          + f", outside the phases {outside:.1f}s ({result['runs']} run(s))", flush=True)


def change_orders(server: EmulatorServer, count: int, seed: int = 5) -> int:
    """Update ``count`` orders (financial status), as a day of order edits would."""
    total = server.emulator.params(SHOP).orders
    # By index (order ids are consecutive): a list of a million orders would take gigabytes.
    picked = random.Random(seed).sample(range(total), min(count, total))
    base = order_id_base(SHOP)
    for i in picked:
        # at=None: now, or just after the order's last update (the dataset's clock runs ahead).
        server.emulator.update_order(SHOP, base + i, financial_status="PARTIALLY_REFUNDED")
    return len(picked)


def bench_backend(backend: str, server: EmulatorServer, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    start = yesterday - timedelta(days=args.days - 1)
    out: dict[str, Any] = {"bench": "e2e", "backend": backend, "orders": args.orders}
    with fresh_database(backend, work, keep=args.keep is not None) as url:
        env = _env(url, work / backend, server.shop_base_url(SHOP))
        backfill = run_cli(["backfill", "--start", str(start), "--end", str(yesterday)], env, server)
        backfill.update(run_phases(work / backend / "objects", backfill["run_ids"]))
        report("backfill", backfill)
        out["backfill"] = backfill
        raw = archived_files(work / backend / "objects", backfill["run_ids"])
        if args.changes:
            out["daily"] = bench_daily(server, args, env, work / backend / "objects", yesterday)
            # The next backend gets the same orders, and the emulator's rendered results.
            server.emulator.reset_orders(SHOP)
    out["pace"] = machine_pace(raw[0])
    print(f"  pace      {_pace_text(out['pace'])}; load average {_load()}", flush=True)
    with fresh_database(backend, work) as url:
        out["floor"] = run_phase("floor", "ingest", url, raw, args.chunk_rows)
    if args.baseline:
        with fresh_database(backend, work) as url:
            out["baseline"] = run_phase("baseline", "baseline", url, raw, args.chunk_rows)
    return out


def bench_daily(server: EmulatorServer, args: argparse.Namespace, env: dict[str, str], objects: Path,
                day: date) -> dict[str, Any]:
    first = run_cli(["sync", "--date", str(day)], env, server)
    first.update(run_phases(objects, first["run_ids"]))
    report("daily-first", first)
    changed = change_orders(server, args.changes)
    daily = run_cli(["sync", "--date", str(day)], env, server)
    daily.update(run_phases(objects, daily["run_ids"]))
    daily["changed_orders"] = changed
    # Project time (report): everything but request/poll, the emulator's work and the poll wait.
    report("daily", daily)
    return {"first": first, "incremental": daily}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--orders", type=int, default=1_000_000, help="orders of the shop over --days")
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--backends", default="sqlite,postgres,mariadb")
    p.add_argument("--changes", type=int, default=5000, help="orders changed before the incremental (0: skip)")
    p.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS,
                   help="the floor's chunk size; the runs use SHOPIFY_SYNC_CHUNK_ROWS' default, the same")
    p.add_argument("--no-baseline", dest="baseline", action="store_false")
    p.add_argument("--profile", type=Path, help="record each CLI run with py-spy into this folder (diagnosis)")
    p.add_argument("--emulator-tmp", type=Path,
                   help="the emulator's folder for result files (default: /dev/shm where it exists)")
    p.add_argument("--keep", type=Path, help="work in this (new) folder and keep it: the backfill's and daily's database (a server "
                        "database is left on the server, its URL printed), objects, homes")
    p.add_argument("--mariadb-buffer-pool", metavar="SIZE",
                   help="run MariaDB on a private server with this InnoDB buffer pool (e.g. 1G), started for the "
                        "bench; default: the server of SHOPIFY_SYNC_TEST_MYSQL_URL as it is")
    args = p.parse_args(argv)
    # A plain `kill` ends the bench like Ctrl-C does: the running CLI is stopped and the
    # emulator's files, the work folder and a private MariaDB are removed on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    global PROFILE_DIR
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        PROFILE_DIR = args.profile
    # The dataset ends a minute ago (the default anchor is the next full hour): an order
    # changed now is then newer than the watermark the first daily sync leaves.
    anchor = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    config = EmulatorConfig(seed=11, orders_per_shop=args.orders, days=args.days, completion_seconds=0.0,
                            anchor=anchor)
    print(f"e2e: {args.orders:,} orders over {args.days} days; load average {_load()}", flush=True)
    results = []
    # The emulator plays Shopify and its storage host, which are other machines: its result
    # files go to memory (/dev/shm) where there is one, so that writing them does not
    # queue the client's own writes behind them on this machine's disk.
    emulator_tmp = args.emulator_tmp if args.emulator_tmp is not None else (
        Path("/dev/shm") if Path("/dev/shm").is_dir() else None)
    tempfile.tempdir = None if emulator_tmp is None else str(emulator_tmp)
    try:
        server = EmulatorServer(config)
    finally:
        tempfile.tempdir = None
    print(f"emulator files in {emulator_tmp or tempfile.gettempdir()}", flush=True)
    with server, tempfile.TemporaryDirectory(prefix="ss_e2e_") as tmp:
        work = Path(tmp)
        if args.keep is not None:
            args.keep.mkdir(parents=True)
            work = args.keep
        for backend in args.backends.split(","):
            with contextlib.ExitStack() as stack:
                header = ""
                if backend == "mariadb":
                    if args.mariadb_buffer_pool:
                        ingest_bench.MYSQL_URL = stack.enter_context(private_mariadb(args.mariadb_buffer_pool)).url()
                    header = f" {server_settings(ingest_bench.MYSQL_URL)}"
                print(f"[{backend}]{header}", flush=True)
                result = bench_backend(backend, server, args, work)
                result["server"] = header.strip() or None
                results.append(result)
    own = own_peak_rss_mb()
    print(f"load average at the end {_load()}; the bench's own process (emulator) peaked at {own:.0f} MB",
          flush=True)
    for result in results:
        print(json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
