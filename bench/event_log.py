"""Event-log writes of the embedded instance: Dagster's SQLite event log as shipped vs with
its engines and connections kept (``shopify_sync.launch.instance_storage``), in one process.

Runs a job of 3 assets over a 30-day partition range (one run, as a backfill month is)
``--runs`` times on a fresh instance of each kind, alternating, and prints the seconds
per run. Figures are printed, never asserted.

    .venv/bin/python bench/event_log.py --runs 6
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import dagster as dg

from shopify_sync.launch.instance_storage import keep_event_log_engines, release_event_log_connections

REPO = Path(__file__).resolve().parents[1]
DAYS = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-01-31")


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def first(context) -> dg.MaterializeResult:  # noqa: ANN001 - Dagster reads the annotation
    return dg.MaterializeResult(metadata={"n": len(context.partition_keys)})


@dg.asset(partitions_def=DAYS, deps=[first], backfill_policy=dg.BackfillPolicy.single_run())
def second() -> None:
    return None


@dg.asset(partitions_def=DAYS, deps=[second], backfill_policy=dg.BackfillPolicy.single_run())
def third() -> None:
    return None


def _run(kept: bool, runs: int) -> list[float]:
    job = dg.Definitions(assets=[first, second, third]).resolve_implicit_global_asset_job_def()
    home = Path(tempfile.mkdtemp(prefix="ss_evlog_"))
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    out = []
    try:
        with dg.DagsterInstance.from_config(str(home)) as inst:
            if kept:
                keep_event_log_engines(inst)
            for _ in range(runs):
                t0 = time.perf_counter()
                result = job.execute_in_process(instance=inst, tags={
                    "dagster/asset_partition_range_start": "2026-01-01",
                    "dagster/asset_partition_range_end": "2026-01-30"})
                assert result.success
                if kept:
                    release_event_log_connections(inst)  # as the CLI's launcher does after a run
                out.append(time.perf_counter() - t0)
    finally:
        shutil.rmtree(home)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=6)
    args = p.parse_args()
    shipped, kept = [], []
    for _ in range(2):  # alternate, so a change of the machine's pace hits both
        shipped += _run(False, args.runs // 2)
        kept += _run(True, args.runs // 2)
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    print(f"3 assets x 30 partitions per run, {len(shipped)} runs each; load {os.getloadavg()[0]:.1f}")
    print(f"  Dagster's SQLite event log: median {med(shipped):.2f} s per run")
    print(f"  with connections kept:      median {med(kept):.2f} s per run ({med(kept) / med(shipped):.2f}x)")


if __name__ == "__main__":
    main()
