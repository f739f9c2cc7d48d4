"""A one-year ``shopify-sync backfill`` through the real CLI: when its lines come.

Serves the emulator in this process (a year of orders for one shop), runs the console
command in a subprocess on a fresh SQLite warehouse, local store and DAGSTER_HOME, and
prints, for each stdout line, the seconds since the command started. Issue 14.13's
targets: the first progress line within 30 s, then a line per run (a month) with
counts and an estimate, and the whole year in one command.

    .venv/bin/python bench/backfill_progress.py                 # 365 days, 3000 orders
    .venv/bin/python bench/backfill_progress.py --days 120 --orders 800
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shopify_sync.emulator import EmulatorConfig, EmulatorServer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--orders", type=int, default=3000)
    args = parser.parse_args()
    end = datetime.now(UTC).date() - timedelta(days=1)
    start = end - timedelta(days=args.days - 1)
    cli = Path(sys.executable).with_name("shopify-sync")
    with tempfile.TemporaryDirectory() as tmp, \
            EmulatorServer(EmulatorConfig(seed=3, orders_per_shop=args.orders, days=args.days)) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOPIFY_", "DAGSTER_"))}
        env.update({"SHOPIFY_SHOPS": "DEMO", "SHOPIFY_SYNC_HOME": tmp, "SHOPIFY_SYNC_START_DATE": start.isoformat(),
                    "SHOPIFY_DEMO_STORE": server.shop_base_url("DEMO"), "SHOPIFY_DEMO_TOKEN": server.token,
                    "SHOPIFY_POLL_INTERVAL_SECONDS": "0.2"})
        began = time.monotonic()
        proc = subprocess.Popen([str(cli), "backfill", "--start", start.isoformat(), "--end", end.isoformat()],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert proc.stdout is not None
        stamps = []
        for line in proc.stdout:
            stamps.append(time.monotonic() - began)
            print(f"{stamps[-1]:7.1f} s  {line.rstrip()}", flush=True)
        rc = proc.wait()
    total = time.monotonic() - began
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    print(f"exit {rc}; first line after {stamps[0]:.1f} s; longest gap between lines {max(gaps, default=0):.1f} s; "
          f"total {total:.1f} s for {args.days} days ({args.orders} orders in the emulator)")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
