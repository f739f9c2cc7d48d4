"""write_jsonl benchmark: lines/s of the emulator's fast JSONL writer (target > 100k lines/s).

Prints wall-clock and CPU lines/s for one process and for the parallel default, and
checks that both files are byte-identical. Timings are reported, never asserted.

    .venv/bin/python bench/emulator_jsonl.py --orders 300000
"""

from __future__ import annotations

import argparse
import filecmp
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from shopify_sync.emulator.fast import write_jsonl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=None, help="parallel run's workers (default: auto)")
    args = parser.parse_args()
    anchor = datetime(2026, 11, 1, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for label, workers in (("1 process", 1), ("parallel", args.workers)):
            path = Path(tmp) / f"{label.replace(' ', '_')}.jsonl"
            wall, cpu = time.perf_counter(), time.process_time()
            stats = write_jsonl(path, "BENCH", orders=args.orders, anchor=anchor, workers=workers)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            paths.append(path)
            print(f"{label:>10}: {stats.objects:,} lines, {stats.size / 1e6:,.1f} MB in {wall:.2f} s "
                  f"= {stats.objects / wall:,.0f} lines/s wall"
                  + (f", {stats.objects / cpu:,.0f} lines/s per CPU second" if workers == 1 else ""),
                  flush=True)
        print("identical output:", filecmp.cmp(paths[0], paths[1], shallow=False))


if __name__ == "__main__":
    main()
