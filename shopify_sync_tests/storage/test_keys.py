from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from shopify_sync.storage import (
    InvalidKeyError,
    commerce_telemetry_key,
    parse_sync_telemetry_key,
    performance_key,
    raw_key,
    sales_key,
    sync_telemetry_key,
    validate_key,
)
from shopify_sync.storage.keys import JOB_TYPES, STEPS, SyncTelemetryKey
from shopify_sync.timeutil import utc_day
from shopify_sync.vocab import Mode, Step


def test_layout_matches_spec() -> None:
    d = date(2026, 3, 9)
    assert raw_key("DE", Mode.DAILY_INCREMENTAL, d, "r-1") == (
        "raw/shopify/shop=DE/DAILY_INCREMENTAL/date=2026-03-09/r-1.jsonl")
    assert raw_key("DE", Mode.REPLAY, d, "r-1", gz=True).endswith("/REPLAY/date=2026-03-09/r-1.jsonl.gz")
    assert sales_key("NL", d) == "measurement/sales/shop=NL/date=2026-03-09/part-0.parquet"
    assert performance_key("NL", d) == "measurement/performance/shop=NL/date=2026-03-09/part-0.parquet"
    assert sync_telemetry_key(d, "abc", 3, Step.POLLING) == "telemetry/sync/date=2026-03-09/abc/000003-polling.json"
    assert commerce_telemetry_key(d, "abc") == "telemetry/commerce/date=2026-03-09/abc.jsonl"


def test_the_day_of_an_instant_is_its_utc_day() -> None:
    late_evening_west = datetime(2026, 3, 9, 22, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert sales_key("DE", utc_day(late_evening_west)).endswith("date=2026-03-10/part-0.parquet")
    # A datetime is a date to Python: one passed anyway is keyed by its UTC day, never its local date.
    assert sales_key("DE", late_evening_west).endswith("date=2026-03-10/part-0.parquet")
    assert sales_key("DE", datetime(2026, 3, 9, 23, 59, tzinfo=UTC)).endswith("date=2026-03-09/part-0.parquet")
    with pytest.raises(InvalidKeyError, match="no timezone"):
        sales_key("DE", datetime(2026, 3, 9, 12))


def test_job_types_and_steps_are_the_vocabulary() -> None:
    assert JOB_TYPES == ("DAILY_INCREMENTAL", "FULL_BACKFILL_EXECUTE", "REPLAY", "CATALOG")
    assert STEPS == ("initiated", "requested", "polling", "downloading", "upserting", "transforming", "completed",
                     "failed")


def test_seq_padding_sorts_numerically() -> None:
    d = date(2026, 1, 1)
    keys = [sync_telemetry_key(d, "r", n, Step.UPSERTING) for n in (10, 2, 100, 1)]
    assert [parse_sync_telemetry_key(k).seq for k in sorted(keys)] == [1, 2, 10, 100]
    assert parse_sync_telemetry_key(keys[0]) == SyncTelemetryKey(d, "r", 10, "upserting")
    assert parse_sync_telemetry_key("telemetry/sync/date=2026-01-01/r/notes.txt") is None
    assert parse_sync_telemetry_key("telemetry/sync/date=2026-02-30/r/000001-polling.json") is None
    assert parse_sync_telemetry_key("raw/x") is None


D = date(2026, 1, 1)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: sales_key("de", D), "shop code"),
        (lambda: sales_key("DE/../X", D), "shop code"),
        (lambda: sales_key("DE", "2026-01-01"), "date"),  # text is not a day: parse it first
        (lambda: sales_key("DE", None), "date"),
        (lambda: raw_key("DE", "DAILY", D, "r"), "job type"),
        (lambda: raw_key("DE", Mode.REPLAY, D, "../r"), "run id"),
        (lambda: raw_key("DE", Mode.REPLAY, D, "a/b"), "run id"),
        (lambda: sync_telemetry_key(D, "r", -1, Step.FAILED), "seq"),
        (lambda: sync_telemetry_key(D, "r", 1, "Bad Step"), "step"),
        (lambda: sync_telemetry_key(D, "r", 1, "finished"), "step"),
    ],
)
def test_bad_components_are_rejected_with_the_cause(call, match: str) -> None:
    with pytest.raises(InvalidKeyError, match=match):
        call()


@pytest.mark.parametrize("key", ["", "/abs/key", "a/../b", "..", "a//b", "a/./b", "a\\b", ".hidden/x", "a/.tmp-x",
                                 "a/b/", "sp ace"])
def test_unsafe_keys_are_rejected(key: str) -> None:
    with pytest.raises(InvalidKeyError):
        validate_key(key)


def test_ordinary_keys_pass() -> None:
    for key in ("a", "raw/shopify/shop=DE/REPLAY/date=2026-01-01/r.jsonl.gz", "x/y-z_1.parquet"):
        assert validate_key(key) == key


def test_measurement_days_of_a_listing() -> None:
    from shopify_sync.storage import measurement_days, measurement_prefix

    assert measurement_prefix("sales", "DE") == "measurement/sales/shop=DE/"
    keys = [sales_key("DE", date(2026, 3, 2)), sales_key("DE", date(2026, 3, 1)), sales_key("DEX", date(2026, 3, 3)),
            "measurement/sales/shop=DE/date=2026-13-01/part-0.parquet",
            "measurement/sales/shop=DE/date=2026-03-04/part-1.parquet"]
    assert measurement_days(keys, "sales", "DE") == [date(2026, 3, 1), date(2026, 3, 2)]
    with pytest.raises(InvalidKeyError):
        measurement_prefix("orders", "DE")
