"""The sync engine's pure rules: modes, initiators, windows, watermark arithmetic (SPEC §3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shopify_sync.sync import (
    Initiator,
    Mode,
    RunInfo,
    Window,
    backfill_window,
    error_summary,
    incremental_window,
    initiator_from_tags,
    mode_from_tags,
    next_watermark,
)

NOW = datetime(2026, 5, 10, 6, 0, tzinfo=UTC)


def test_missing_watermark_starts_at_the_floor():
    w = incremental_window(None, now=NOW, floor_days=128, lookback_minutes=15)
    assert w == Window("updated_at", NOW - timedelta(days=128), None)
    assert "updated_at:>='2026-01-02T06:00:00Z'" in w.query()
    assert "sortKey: UPDATED_AT" in w.query()


def test_watermark_minus_lookback():
    wm = datetime(2026, 5, 9, 12, 0, tzinfo=UTC)
    w = incremental_window(wm, now=NOW, floor_days=128, lookback_minutes=15)
    assert w.start == datetime(2026, 5, 9, 11, 45, tzinfo=UTC)
    assert w.end is None


def test_floor_caps_an_old_watermark_and_naive_db_values_are_utc():
    old = datetime(2025, 1, 1, 0, 0)  # naive, as SQLite/MariaDB return it
    w = incremental_window(old, now=NOW, floor_days=30, lookback_minutes=15)
    assert w.start == NOW - timedelta(days=30)


def test_backfill_window_is_created_at_without_floor():
    w = backfill_window(datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 1, 4, tzinfo=UTC))
    q = w.query()
    assert "created_at:>='2020-01-01T00:00:00Z' AND created_at:<'2020-01-04T00:00:00Z'" in q
    assert "sortKey: CREATED_AT" in q


def test_next_watermark_never_goes_backwards():
    a = datetime(2026, 5, 1, tzinfo=UTC)
    b = datetime(2026, 5, 2, tzinfo=UTC)
    assert next_watermark(None, None) is None
    assert next_watermark(None, a) == a
    assert next_watermark(a, b) == b
    assert next_watermark(b, a) == b
    assert next_watermark(b, None) == b
    assert next_watermark(datetime(2026, 5, 2), a) == b  # naive from the DB == UTC


@pytest.mark.parametrize(
    ("tags", "mode", "initiator"),
    [
        ({}, Mode.DAILY_INCREMENTAL, Initiator.USER),
        ({"dagster/schedule_name": "shopify_sync_daily"}, Mode.DAILY_INCREMENTAL, Initiator.CRON),
        ({"dagster/backfill": "abc"}, Mode.FULL_BACKFILL_EXECUTE, Initiator.BACKFILL),
        ({"shopify_sync/mode": "REPLAY", "shopify_sync/initiator": "user"}, Mode.REPLAY, Initiator.USER),
        ({"shopify_sync/mode": "FULL_BACKFILL_EXECUTE", "shopify_sync/initiator": "backfill"},
         Mode.FULL_BACKFILL_EXECUTE, Initiator.BACKFILL),
    ],
)
def test_mode_and_initiator_from_run_tags(tags, mode, initiator):
    assert mode_from_tags(tags) is mode
    assert initiator_from_tags(tags) is initiator


def test_bad_tags_are_named():
    with pytest.raises(ValueError, match="shopify_sync/mode"):
        mode_from_tags({"shopify_sync/mode": "WEEKLY"})
    with pytest.raises(ValueError, match="replay_of"):
        RunInfo.from_tags("r1", {"shopify_sync/mode": "REPLAY"}, NOW)


def test_error_summary_is_one_line():
    err = error_summary(RuntimeError("first line\nTraceback (most recent call last): ..."))
    assert err == {"type": "RuntimeError", "message": "first line"}
