"""Partitions (day × shop), ranged-run splitting and the 06:00 UTC schedule."""

from __future__ import annotations

from datetime import UTC, date, datetime

import dagster as dg
import pytest

from shopify_sync.config import load_settings
from shopify_sync.defs.jobs import build_sync_job
from shopify_sync.defs.partitions import build_partitions_def, split_by_shop
from shopify_sync.defs.schedules import build_daily_schedule
from shopify_sync.launch.plan import DATE_DIM, SHOP_DIM, day_range_key, parse_day_range_key, partition_key


def _settings(**env: str):
    return load_settings({"SHOPIFY_SHOPS": "DA,DE", "SHOPIFY_DA_STORE": "emulator", "SHOPIFY_DE_STORE": "emulator",
                          "SHOPIFY_SYNC_START_DATE": "2026-02-01", **env})


def test_partitions_are_utc_days_times_shops():
    pd = build_partitions_def(_settings())
    keys = pd.get_partition_keys(current_time=datetime(2026, 2, 4, 1, tzinfo=UTC))
    assert keys[:2] == ["2026-02-01|DA", "2026-02-01|DE"]
    assert len(keys) == 3 * 2  # 02-01..02-03 (the running day is not a partition yet)


def test_a_multi_shop_single_run_backfill_becomes_one_range_per_shop():
    """What Dagster does with BackfillPolicy.single_run() over day × shop: one run per shop."""
    pd = build_partitions_def(_settings())
    keys = [f"2026-02-0{d}|{s}" for d in (1, 2, 3) for s in ("DA", "DE")]
    ranges = pd.subset_with_partition_keys(keys).get_partition_key_ranges(pd)
    assert sorted((r.start, r.end) for r in ranges) == [("2026-02-01|DA", "2026-02-03|DA"),
                                                         ("2026-02-01|DE", "2026-02-03|DE")]


def test_the_launchers_partition_key_is_dagsters():
    """``launch.plan`` spells keys without importing Dagster (the API); they must be Dagster's."""
    pd = build_partitions_def(_settings())
    assert set(pd.partition_dimension_names) == {DATE_DIM, SHOP_DIM}
    key = dg.MultiPartitionKey({DATE_DIM: "2026-02-03", SHOP_DIM: "DE"})
    assert partition_key(date(2026, 2, 3), "DE") == str(key)
    assert str(key) in pd.get_partition_keys(current_time=datetime(2026, 2, 5, tzinfo=UTC))
    assert parse_day_range_key(day_range_key(date(2026, 2, 1), date(2026, 2, 3))) == (date(2026, 2, 1),
                                                                                       date(2026, 2, 3))
    assert day_range_key(date(2026, 2, 1), date(2026, 2, 1)) == "2026-02-01"


def test_split_by_shop_groups_and_sorts():
    parts = split_by_shop(["2026-02-03|DE", "2026-02-01|DA", "2026-02-02|DE", "2026-02-02|DA"])
    assert [(p.shop, p.key) for p in parts] == [("DA", "2026-02-01..2026-02-02"), ("DE", "2026-02-02..2026-02-03")]
    assert parts[0].start == datetime(2026, 2, 1, tzinfo=UTC)
    assert parts[0].end == datetime(2026, 2, 3, tzinfo=UTC)
    assert split_by_shop(["2026-02-01|DA"])[0].key == "2026-02-01"
    with pytest.raises(ValueError, match="partition key"):
        split_by_shop(["2026-02-01"])


def test_schedule_requests_yesterday_for_every_shop_as_cron():
    settings = _settings()
    job = build_sync_job(build_partitions_def(settings))
    schedule = build_daily_schedule(job, settings.shop_codes)
    assert schedule.cron_schedule == "0 6 * * *"
    assert schedule.execution_timezone == "UTC"
    ctx = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 3, 10, 6, 0, tzinfo=UTC))
    requests = list(schedule(ctx))
    assert [r.partition_key for r in requests] == ["2026-03-09|DA", "2026-03-09|DE"]
    assert all(r.tags["shopify_sync/initiator"] == "cron" for r in requests)
    assert all(r.tags["shopify_sync/mode"] == "DAILY_INCREMENTAL" for r in requests)
    assert len({r.run_key for r in requests}) == 2
    assert date(2026, 3, 9).isoformat() in requests[0].run_key
