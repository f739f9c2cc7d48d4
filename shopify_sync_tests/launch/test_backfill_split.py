"""Long backfills in bounded runs (issue 14.13): the CLI's month per run with progress
lines, and Dagster's backfill of day x shop as one run per (day, shop) under the
one-run-per-shop limit, with one backfill policy on every asset (issue 17)."""

from __future__ import annotations

import importlib.util
import io
import os
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.definitions.automation_tick_evaluation_context import (
    build_run_requests_with_backfill_policies,
)
from dagster._core.definitions.events import AssetKeyPartitionKey

from shopify_sync.config import load_settings
from shopify_sync.defs import build_definitions
from shopify_sync.defs.partitions import BACKFILL_POLICY
from shopify_sync.launch.plan import (
    DAILY_PRIORITY,
    TAG_PARTITION_SHOP,
    TAG_PRIORITY,
    backfill_launch,
    daily_launch,
    month_ranges,
)
from shopify_sync.launch.progress import BackfillProgress, Piece, duration


def test_month_ranges_cut_at_month_ends_and_cover_the_range_once() -> None:
    assert month_ranges(date(2025, 1, 15), date(2025, 3, 2)) == [
        (date(2025, 1, 15), date(2025, 1, 31)), (date(2025, 2, 1), date(2025, 2, 28)),
        (date(2025, 3, 1), date(2025, 3, 2))]
    assert month_ranges(date(2025, 12, 1), date(2026, 1, 1)) == [
        (date(2025, 12, 1), date(2025, 12, 31)), (date(2026, 1, 1), date(2026, 1, 1))]  # 32 days
    assert month_ranges(date(2024, 2, 29), date(2024, 2, 29)) == [(date(2024, 2, 29), date(2024, 2, 29))]
    assert month_ranges(date(2025, 3, 2), date(2025, 3, 1)) == []


def test_a_range_no_longer_than_a_month_is_one_run_across_a_month_end() -> None:
    # The last 30 days on 4 December: one bulk operation, not November's and December's.
    assert month_ranges(date(2026, 11, 4), date(2026, 12, 3)) == [(date(2026, 11, 4), date(2026, 12, 3))]
    assert month_ranges(date(2025, 12, 5), date(2026, 1, 1)) == [(date(2025, 12, 5), date(2026, 1, 1))]
    assert month_ranges(date(2025, 1, 15), date(2025, 2, 14)) == [(date(2025, 1, 15), date(2025, 2, 14))]  # 31 days
    assert month_ranges(date(2025, 1, 15), date(2025, 2, 15)) == [  # 32 days: cut at the month end
        (date(2025, 1, 15), date(2025, 1, 31)), (date(2025, 2, 1), date(2025, 2, 15))]
    ten_years = month_ranges(date(2016, 1, 1), date(2026, 11, 30))
    assert len(ten_years) == 131
    days = sum((last - first).days + 1 for first, last in ten_years)
    assert days == (date(2026, 11, 30) - date(2016, 1, 1)).days + 1
    assert all((b[0] - a[1]).days == 1 for a, b in zip(ten_years, ten_years[1:], strict=False))


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_lines_give_counts_and_an_estimate_by_days() -> None:
    pieces = [Piece("DEMO", first, last) for first, last in month_ranges(date(2025, 1, 1), date(2025, 4, 30))]
    out, clock = io.StringIO(), _Clock()
    progress = BackfillProgress(pieces, out, clock=clock)
    progress.plan(date(2025, 1, 1), date(2025, 4, 30), ["DEMO"])
    clock.now += 31
    progress.run_ended(pieces[0], "backfill DEMO 2025-01-01..2025-01-31", "abcdef0123456789",
                       {"order_header": 1200, "order_line_item": 2500, "order_refund": 7}, 31)
    clock.now += 28
    progress.run_ended(pieces[1], "backfill DEMO 2025-02-01..2025-02-28", "fedcba9876543210", None, 28)
    progress.skipped(pieces[2:])
    lines = out.getvalue().splitlines()
    assert lines[0] == ("backfill 2025-01-01..2025-04-30 for DEMO: 4 runs of at most one month (31 days) each, "
                        "one run per shop at a time")
    # 31 of 120 days in 31 s: 89 days left at a day per second.
    assert lines[1] == ("[1/4] ok     backfill DEMO 2025-01-01..2025-01-31  run abcdef01: 1,200 orders, "
                        "2,500 lines, 7 refunds in 31 s; 26% done, about 1 min 29 s left")
    assert lines[2].startswith("[2/4] FAILED backfill DEMO 2025-02-01..2025-02-28  run fedcba98: 0 orders")
    assert progress.summary(1) == "backfill ended with 1 failed run(s): 2 runs, 1,200 orders, 2,500 lines, " \
                                  "7 refunds in 59 s"
    assert [duration(s) for s in (0, 59.4, 61, 3600 + 125)] == ["0 s", "59 s", "1 min 01 s", "1 h 02 min"]


def _settings():
    return load_settings({"SHOPIFY_SHOPS": "DA,DE", "SHOPIFY_DA_STORE": "emulator", "SHOPIFY_DE_STORE": "emulator",
                          "SHOPIFY_SYNC_START_DATE": "2026-01-01"})


def test_every_partitioned_asset_has_the_same_backfill_policy() -> None:
    """One policy for all: Dagster's launch dialog warns "using varying backfill policies"
    unless every asset's policy is absent (it compares them by object identity)."""
    graph = build_definitions(_settings()).resolve_asset_graph()
    partitioned = [key for key in graph.get_all_asset_keys() if graph.get(key).partitions_def is not None]
    assert len(partitioned) >= 7
    assert BACKFILL_POLICY is None
    assert {graph.get(key).backfill_policy for key in partitioned} == {BACKFILL_POLICY}


def test_a_dagster_backfill_is_one_run_per_day_and_shop_in_date_order_under_the_shop_limit() -> None:
    """What the backfill daemon asks for over 45 days x 2 shops: bounded runs carrying the
    shop tag the per-shop run limit keys on, in date order; the daily sync outranks them."""
    settings = _settings()
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    pd = next(graph.get(k).partitions_def for k in graph.get_all_asset_keys())
    keys = [k for k in pd.get_partition_keys(current_time=datetime(2026, 3, 1, tzinfo=UTC)) if k < "2026-02-15"]
    wanted = [AssetKeyPartitionKey(asset, key) for asset in graph.get_all_asset_keys() for key in keys]
    with dg.instance_for_test() as instance:
        requests = build_run_requests_with_backfill_policies(wanted, graph, instance)
    assert len(requests) == len(keys) == 45 * 2
    assert all(set(r.asset_selection or []) == set(graph.get_all_asset_keys()) for r in requests)
    for shop in ("DA", "DE"):
        mine = [r for r in requests if r.tags.get(TAG_PARTITION_SHOP) == shop]
        assert [r.partition_key for r in mine] == sorted(k for k in keys if k.endswith(shop))
    assert daily_launch("DA", date(2026, 2, 1)).tags[TAG_PRIORITY] == DAILY_PRIORITY
    assert all(int(r.tags.get(TAG_PRIORITY, "0")) < int(DAILY_PRIORITY) for r in requests)
    assert TAG_PRIORITY not in backfill_launch("DA", date(2026, 1, 1), date(2026, 1, 31)).tags


_RUN_LINE = re.compile(r"^\[\s*(\d+)/(\d+)\] ok\s+backfill (\w+) (\S+)\.\.(\S+)  run \w{8}: ([\d,]+) orders, "
                       r"([\d,]+) lines, ([\d,]+) refunds in .+; (\d+% done, about .+ left|100% done in .+)$")


def _env(tmp: Path, name: str, server: object, start: date) -> dict[str, str]:
    return {"SHOPIFY_SHOPS": "DEMO", "SHOPIFY_SYNC_HOME": str(tmp / name),
            "SHOPIFY_SYNC_DATABASE_URL": f"sqlite:///{tmp}/{name}.db", "SHOPIFY_SYNC_STORAGE_URL": f"file://{tmp}/{name}-objects",
            "SHOPIFY_SYNC_START_DATE": start.isoformat(), "SHOPIFY_POLL_INTERVAL_SECONDS": "0.05",
            "SHOPIFY_DEMO_STORE": server.emulator.shop_base_url("DEMO"),  # type: ignore[attr-defined]
            "SHOPIFY_DEMO_TOKEN": "shpat_emulator", "DAGSTER_HOME": ""}


def _tables(db_url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the order tables and product, without the load instant."""
    engine = sa.create_engine(db_url)
    out = {}
    try:
        meta = sa.MetaData()
        meta.reflect(engine, only=["order_header", "order_line_item", "order_refund", "product"])
        with engine.connect() as conn:
            for name, table in meta.tables.items():
                cols = [c for c in table.c if c.name != "synced_at"]
                out[name] = [tuple(r) for r in conn.execute(sa.select(*cols).order_by(*table.primary_key.columns))]
    finally:
        engine.dispose()
    return out


def _measurements(root: Path) -> dict[str, bytes]:
    base = root / "measurement"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(base.rglob("*.parquet"))}


def test_a_multi_month_cli_backfill_runs_a_month_per_run_with_progress_and_equals_one_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from shopify_sync.cli import main
    from shopify_sync.emulator import EmulatorConfig, EmulatorServer
    from shopify_sync.launch.inprocess import run_sync_job

    for name in list(os.environ):
        if name.startswith(("SHOPIFY_", "DAGSTER_")):
            monkeypatch.delenv(name, raising=False)
    end = datetime.now(UTC).date() - timedelta(days=1)
    start = end - timedelta(days=75)
    months = month_ranges(start, end)
    assert len(months) >= 3
    with EmulatorServer(EmulatorConfig(seed=19, orders_per_shop=90, days=70)) as server:
        for k, v in _env(tmp_path, "split", server, start).items():
            monkeypatch.setenv(k, v)
        assert main(["backfill", "--start", start.isoformat(), "--end", end.isoformat()]) == 0, capsys.readouterr()
        out = capsys.readouterr().out.splitlines()
        split_instance = dg.DagsterInstance.from_config(str(tmp_path / "split" / "dagster_home"))
        split_runs = split_instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS]))
        split_instance.dispose()

        for k, v in _env(tmp_path, "one", server, start).items():
            monkeypatch.setenv(k, v)
        with dg.instance_for_test() as instance:
            outcome = run_sync_job(load_settings(), instance, tags=backfill_launch("DEMO", start, end).tags,
                                   partition_key=None)
        assert outcome.success, outcome.error
    created = [o for o in server.emulator.orders("DEMO") if start <= o.created_at.date() <= end]

    # The plan first, then one line per month with its counts and the estimate, then the total.
    assert out[0].startswith(f"backfill {start}..{end} for DEMO: {len(months)} runs of at most one month")
    matches = [_RUN_LINE.match(line) for line in out[1:-1]]
    assert all(matches), out
    assert [(m.group(4), m.group(5)) for m in matches if m] == [(str(a), str(b)) for a, b in months]
    assert [int(m.group(1)) for m in matches if m] == list(range(1, len(months) + 1))
    assert matches[-1] and matches[-1].group(9).startswith("100% done")
    assert sum(int(m.group(6).replace(",", "")) for m in matches if m) == len(created)
    assert out[-1].startswith(f"backfill done: {len(months)} runs, {len(created):,} orders")
    assert len(split_runs) == len(months)

    # The same warehouse as one run over the whole range.
    split, one = _tables(f"sqlite:///{tmp_path}/split.db"), _tables(f"sqlite:///{tmp_path}/one.db")
    assert len(one["order_header"]) == len(created) > 0
    for table in ("order_header", "order_line_item", "order_refund"):
        assert split[table] == one[table], table
    # `product`: the same figures. A product that sold in an earlier month of the range
    # keeps its row with zeros in the split (as after daily syncs; SPEC §5: 0, never a
    # stale figure), where one run over the range never wrote it.
    split_products = {row[:2]: row for row in split["product"]}
    assert [split_products[row[:2]] for row in one["product"]] == one["product"]
    extra = [row for key, row in split_products.items() if key not in {r[:2] for r in one["product"]}]
    assert all(set(row[3:9]) == {0} for row in extra), extra
    # An order created in month M+1 but processed (its metric day) in month M changes
    # measurements the run of M already wrote: only restatement (issue 13) rewrites them.
    crossing = [o for o in created if not o.test and o.cancelled_at is None
                and start <= o.processed_at.date() < o.created_at.date().replace(day=1)]
    if crossing and importlib.util.find_spec("shopify_sync.metrics.restate") is None:
        pytest.skip(f"{len(crossing)} order(s) processed in the month before their creation month: measurement "
                    "equality needs issue 13's restatement")
    assert _measurements(tmp_path / "split-objects") == _measurements(tmp_path / "one-objects")
