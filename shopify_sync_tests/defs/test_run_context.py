"""Run tags a run launched from the UI gets at its first step (job type, initiator, shop)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shopify_sync.defs.run_context import missing_run_tags
from shopify_sync.sync import RunInfo

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _missing(tags: dict[str, str]) -> dict[str, str]:
    return missing_run_tags(tags, RunInfo.from_tags("r1", tags, NOW))


def test_a_materialize_click_gets_its_job_type_initiator_and_shop() -> None:
    tags = {"dagster/partition": "2026-11-30|DEMO", "dagster/partition/date": "2026-11-30",
            "dagster/partition/shop": "DEMO", "dagster/from_ui": "true"}
    assert _missing(tags) == {"shopify_sync/mode": "DAILY_INCREMENTAL", "shopify_sync/initiator": "user",
                              "shopify_sync/shop": "DEMO"}


def test_a_ranged_backfill_run_gets_no_shop_tag() -> None:
    # The shop tag would put it under the one-run-per-shop limit, beside which SPEC §3 lets it run.
    tags = {"dagster/backfill": "abc", "dagster/asset_partition_range_start": "2026-11-01|DEMO",
            "dagster/asset_partition_range_end": "2026-11-07|DEMO"}
    assert _missing(tags) == {"shopify_sync/mode": "FULL_BACKFILL_EXECUTE", "shopify_sync/initiator": "backfill"}


def test_tagged_runs_are_left_alone() -> None:
    tags = {"shopify_sync/mode": "DAILY_INCREMENTAL", "shopify_sync/initiator": "cron", "shopify_sync/shop": "DA",
            "dagster/partition/shop": "DA"}
    assert _missing(tags) == {}


def test_a_step_hands_its_freed_memory_back_when_it_ends_even_failing(monkeypatch: pytest.MonkeyPatch) -> None:
    from shopify_sync.defs import run_context

    trims: list[int] = []
    monkeypatch.setattr(run_context, "malloc_trim", lambda: trims.append(1))
    with run_context.memory_released():
        assert trims == []
    assert trims == [1]
    with pytest.raises(RuntimeError), run_context.memory_released():
        raise RuntimeError("step failed")
    assert trims == [1, 1]
