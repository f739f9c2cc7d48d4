"""SYNC_TELEMETRY and COMMERCE_TELEMETRY (SPEC §6) on the local store, plus one run on S3 (moto server)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from shopify_sync.errors import ErrorSummary
from shopify_sync.redact import scrub_secrets
from shopify_sync.storage import LocalObjectStore, ObjectStore, S3ObjectStore, commerce_telemetry_key
from shopify_sync.telemetry import (
    RECORD_FIELDS,
    RunState,
    SyncTelemetry,
    has_completed,
    list_sync_records,
    read_commerce_events,
    read_sync_records,
    run_summaries,
    write_commerce_events,
)
from shopify_sync.telemetry import readers as telemetry_readers
from shopify_sync_tests.storage.s3_server import aws_env, make_bucket, moto_endpoint  # noqa: F401

CREATED = datetime(2026, 11, 22, 23, 58, tzinfo=UTC)  # just before midnight: the folder stays this date


class IntLike:
    def __init__(self, n: int) -> None:
        self.n = n

    def __index__(self) -> int:
        return self.n


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects")


def tel(store: ObjectStore, run_id: str = "run-1", shop: str = "DE", **kw) -> SyncTelemetry:
    kw.setdefault("job_type", "DAILY_INCREMENTAL")
    kw.setdefault("initiator", "cron")
    kw.setdefault("run_created_at", CREATED)
    return SyncTelemetry(store, run_id=run_id, shop=shop, **kw)


def full_run(t: SyncTelemetry) -> list[str]:
    ws, we = datetime(2026, 11, 21, 5, 45, tzinfo=UTC), datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
    return [
        t.record("initiated", "started", window_start=ws, window_end=we, watermark_before=ws),
        t.record("requested", "succeeded", bulk_operation_id="gid://shopify/BulkOperation/42"),
        t.record("polling", "started"),
        t.record("downloading", "started", object_count="7"),  # Shopify's UnsignedInt64 is a string
        # integer-like values (numpy-style ints with __index__) are plain counts too
        t.record("upserting", "succeeded", rows={"order_header": 2, "order_line_item": IntLike(4),
                                                 "order_refund": 1}),
        t.record("transforming", "started"),
        t.record("completed", "succeeded", watermark_after=we),
    ]


def test_a_run_writes_one_ordered_record_per_step_with_every_spec_field(store: LocalObjectStore) -> None:
    keys = full_run(tel(store))
    assert keys[0] == "telemetry/sync/date=2026-11-22/run-1/000000-initiated.json"
    assert keys[-1] == "telemetry/sync/date=2026-11-22/run-1/000006-completed.json"
    assert store.list_keys("telemetry/sync/") == keys  # key order = write order
    records = [json.loads(store.get_bytes(k)) for k in keys]
    assert all(list(r) == list(RECORD_FIELDS) for r in records)
    assert [r["step"] for r in records] == ["initiated", "requested", "polling", "downloading", "upserting",
                                            "transforming", "completed"]
    last = records[-1]
    # Sticky fields carried to the end, so the last record alone tells the whole story.
    assert last["window_start"] == "2026-11-21T05:45:00Z" and last["window_end"] == "2026-11-22T06:00:00Z"
    assert last["bulk_operation_id"] == "gid://shopify/BulkOperation/42"
    assert last["object_count"] == 7 == sum(last["rows"].values())
    assert last["watermark_before"] == "2026-11-21T05:45:00Z" and last["watermark_after"] == "2026-11-22T06:00:00Z"
    assert last["process_initiated_at"] == "2026-11-22T23:58:00Z"
    assert (last["run_id"], last["shop"], last["job_type"], last["initiator"]) == ("run-1", "DE", "DAILY_INCREMENTAL",
                                                                                   "cron")
    assert records[0]["bulk_operation_id"] is None and records[0]["watermark_after"] is None
    assert all(r["error"] is None for r in records)
    ats = [datetime.fromisoformat(r["at"]) for r in records]
    assert ats == sorted(ats) and ats[0].tzinfo is not None


def test_later_writers_append_and_inherit_sticky_fields(store: LocalObjectStore) -> None:
    first = tel(store)
    first.record("initiated", "started", window_start=CREATED - timedelta(days=1), window_end=CREATED)
    first.record("requested", "succeeded", bulk_operation_id="gid://shopify/BulkOperation/9")
    # A re-executed step in another process, then the run-status sensor, with fresh recorders.
    second = tel(store)
    second.record("upserting", "started")
    sensor = tel(store, initiator="cron")
    key = sensor.record("failed", "failed", error={"type": "DagsterExecutionInterruptedError", "message": "killed"},
                        recorded_by="run_status_sensor")
    assert key.endswith("/000003-failed.json")
    records = read_sync_records(store, "run-1")
    assert [r["step"] for r in records] == ["initiated", "requested", "upserting", "failed"]
    assert records[-1]["bulk_operation_id"] == "gid://shopify/BulkOperation/9"
    assert records[-1]["window_end"] == "2026-11-22T23:58:00Z"
    assert records[-1]["error"] == {"type": "DagsterExecutionInterruptedError", "message": "killed"}
    assert records[-1]["recorded_by"] == "run_status_sensor" and "recorded_by" not in records[-2]


def test_sticky_fields_do_not_leak_between_shops_of_one_run(store: LocalObjectStore) -> None:
    tel(store, shop="DE").record("requested", "succeeded", bulk_operation_id="gid://op/DE")
    tel(store, shop="NL").record("requested", "succeeded", bulk_operation_id="gid://op/NL")
    de = tel(store, shop="DE").record("completed", "succeeded")
    assert json.loads(store.get_bytes(de))["bulk_operation_id"] == "gid://op/DE"
    assert de.endswith("/000002-completed.json")


def test_date_folder_is_the_run_creation_day_not_the_write_day(store: LocalObjectStore) -> None:
    # Created 23:58 UTC on the 22nd; records written "after midnight" still go to the 22nd.
    key = tel(store, process_initiated_at=CREATED, run_created_at=None).record("initiated", "started")
    assert key.startswith("telemetry/sync/date=2026-11-22/")
    with pytest.raises(ValueError, match="timezone-aware"):
        tel(store, run_created_at=datetime(2026, 11, 22))


def test_errors_are_scrubbed_of_secrets(store: LocalObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPIFY_DE_TOKEN", "envtoken-123456")
    monkeypatch.setenv("SHOPIFY_SYNC_DATABASE_URL", "mysql+pymysql://app:dbpass-9876@db.example:3306/shop")
    t = tel(store, secrets=["custom-secret-xyz"])
    message = (
        "boom: token shpat_0123456789abcdef0123 env envtoken-123456 custom custom-secret-xyz "
        "url postgresql+psycopg://sync:pg-Secret!@10.0.0.5/warehouse pass dbpass-9876 "
        "header Authorization: Bearer abc.def.ghi X-Shopify-Access-Token: zzz-leak-zzz"
    )
    key = t.record("failed", "failed", error=RuntimeError(message))
    raw = store.get_bytes(key).decode()
    for secret in ("shpat_0123456789abcdef0123", "envtoken-123456", "custom-secret-xyz", "pg-Secret!", "dbpass-9876",
                   "abc.def.ghi", "zzz-leak-zzz"):
        assert secret not in raw
    err = json.loads(raw)["error"]
    assert err["type"] == "RuntimeError"
    assert err["message"].startswith("boom: token <redacted>")
    assert "postgresql+psycopg://sync:<redacted>@10.0.0.5/warehouse" in err["message"]
    assert "secret" not in repr(t).lower()


def test_scrub_leaves_ordinary_text_alone() -> None:
    text = "bulk operation gid://shopify/BulkOperation/1 FAILED: INTERNAL_SERVER_ERROR at https://x.myshopify.com/a"
    assert scrub_secrets(text, include_env=False) == text


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda t: t.record("finished", "ok"), ValueError, "step must be one of"),
        (lambda t: t.record("completed", "OK!"), ValueError, "status"),
        (lambda t: t.record("completed", "succeeded", row_count=3), TypeError, "unknown telemetry field"),
        (lambda t: t.record("completed", "succeeded", rows={"order_header": 1.5}), TypeError, "rows"),
        (lambda t: t.record("completed", "succeeded", object_count=object()), TypeError, "object_count"),
        (lambda t: t.record("completed", "succeeded", object_count=True), TypeError, "object_count"),
        (lambda t: t.record("completed", "succeeded", rows={"order_header": "x"}), TypeError, "rows.order_header"),
    ],
)
def test_bad_records_are_refused_with_the_cause(store: LocalObjectStore, call, exc, match: str) -> None:
    with pytest.raises(exc, match=match):
        call(tel(store))
    assert store.list_keys("") == []


def test_bad_identity_is_refused(store: LocalObjectStore) -> None:
    with pytest.raises(ValueError, match="job_type"):
        tel(store, job_type="DAILY")
    with pytest.raises(ValueError, match="initiator"):
        tel(store, initiator="robot")
    with pytest.raises(ValueError, match="shop"):
        tel(store, shop="de")
    with pytest.raises(ValueError, match="run id"):
        tel(store, run_id="../x")


def test_readers_summaries_and_completion(store: LocalObjectStore) -> None:
    full_run(tel(store, run_id="old", run_created_at=CREATED - timedelta(days=2)))
    failing = tel(store, run_id="bad", job_type="FULL_BACKFILL_EXECUTE", initiator="backfill")
    failing.record("initiated", "started")
    failing.record("polling", "started", bulk_operation_id="gid://op/1")
    failing.record("failed", "failed", error=ValueError("ACCESS_DENIED: read_orders scope missing"))
    running = tel(store, run_id="new", run_created_at=CREATED + timedelta(minutes=1), initiator="user")
    running.record("initiated", "started")

    assert has_completed(store, "old") and not has_completed(store, "bad") and not has_completed(store, "new")
    assert not has_completed(store, "missing")
    assert has_completed(store, "old", run_date=CREATED - timedelta(days=2))
    assert not has_completed(store, "old", run_date=CREATED)  # wrong day: nothing there

    summaries = run_summaries(store, limit=10)
    assert [s.run_id for s in summaries] == ["new", "bad", "old"]
    new, bad, old = summaries
    assert (old.step, old.status, old.finished, old.records, old.object_count) == ("completed", "succeeded", True, 7, 7)
    assert (bad.step, bad.job_type, bad.initiator) == ("failed", "FULL_BACKFILL_EXECUTE", "backfill")
    assert bad.error == ErrorSummary("ValueError", "ACCESS_DENIED: read_orders scope missing")
    assert bad.bulk_operation_id == "gid://op/1"
    assert (new.step, new.finished, new.error) == ("initiated", False, None)
    assert (old.state, bad.state, new.state) == (RunState.COMPLETED, RunState.FAILED, RunState.RUNNING)
    assert [s.run_id for s in run_summaries(store, limit=1)] == ["new"]
    assert run_summaries(store, limit=0) == []

    assert len(list_sync_records(store)) == 7 + 3 + 1
    assert {r["run_id"] for r in list_sync_records(store, since_date=date(2026, 11, 22))} == {"bad", "new"}
    assert [r["step"] for r in list_sync_records(store, run_id="bad")][-1] == "failed"
    # A foreign or broken object in the stream is skipped, not fatal.
    store.put_bytes("telemetry/sync/date=2026-11-22/bad/000009-completed.json", b"{not json")
    store.put_bytes("telemetry/sync/date=2026-11-22/README.txt", b"hello")
    assert [r["step"] for r in read_sync_records(store, "bad")] == ["initiated", "polling", "failed"]


def test_commerce_events_one_object_per_run_never_duplicated(store: LocalObjectStore) -> None:
    at = datetime(2026, 11, 22, 6, 1, tzinfo=UTC)
    events = [
        {"order_id": 1001, "order_name": "#1001", "event": "created", "at": at, "before": None,
         "after": {"financial_status": "PAID", "total_price": Decimal("19.90")}},
        {"order_id": 1002, "order_name": "#1002", "event": "refunded", "at": at,
         "before": {"total_refunded": Decimal("0.00")}, "after": {"total_refunded": Decimal("5.00")}},
    ]
    run_1 = commerce_telemetry_key(date(2026, 11, 22), "run-1")
    key = write_commerce_events(store, run_1, events, shop="DE")
    assert key == "telemetry/commerce/date=2026-11-22/run-1.jsonl"
    local = store.local_file(key)
    assert local is not None and local.stat().st_mode & 0o777 == 0o600  # moved in, still owner-only
    assert not list(local.parent.glob(".*"))  # nothing half-written left beside it
    lines = store.get_bytes(key).decode().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert list(first) == ["shop", "order_id", "order_name", "event", "at", "before", "after"]
    assert first["after"] == {"financial_status": "PAID", "total_price": "19.90"}  # money as exact text
    assert first["at"] == "2026-11-22T06:01:00Z"

    # Same events again (a resumed load) plus another shop of the same run: merged, no duplicates.
    write_commerce_events(store, run_1, events, shop="DE")

    @dataclass
    class Change:  # objects with attributes work as well as dicts
        shop: str
        order_id: int
        order_name: str
        kind: str
        at: datetime
        before: dict
        after: dict

    change = Change("NL", 7, "#7", "cancelled", at, {"cancelled_at": None}, {"cancelled_at": at})
    write_commerce_events(store, run_1, [change])
    got = read_commerce_events(store, date(2026, 11, 22), "run-1")
    assert [(e["shop"], e["order_id"], e["event"]) for e in got] == [("DE", 1001, "created"), ("DE", 1002, "refunded"),
                                                                       ("NL", 7, "cancelled")]
    assert got[2]["after"] == {"cancelled_at": "2026-11-22T06:01:00Z"}
    assert write_commerce_events(store, commerce_telemetry_key(date(2026, 11, 22), "run-2"), []) is None
    assert read_commerce_events(store, date(2026, 11, 22), "run-2") == []
    with pytest.raises(ValueError, match="not a commerce telemetry key"):
        write_commerce_events(store, "telemetry/sync/x.jsonl", events, shop="DE")


@pytest.mark.parametrize(
    ("event", "match"),
    [
        ({"order_id": 1, "event": "deleted", "at": CREATED}, "must be one of"),
        ({"order_id": "1", "event": "created", "at": CREATED}, "int order_id"),
        ({"order_id": 1, "event": "created"}, "no time"),
        ({"order_id": 1, "event": "created", "at": CREATED, "after": {"x": object()}}, "not JSON"),
    ],
)
def test_bad_commerce_events_are_refused(store: LocalObjectStore, event: dict, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        write_commerce_events(store, commerce_telemetry_key(date(2026, 11, 22), "run-1"), [event], shop="DE")
    assert store.list_keys("") == []


def test_a_run_on_s3(moto_endpoint: str, aws_env: None) -> None:  # noqa: F811
    store = S3ObjectStore(make_bucket(moto_endpoint), "prod", endpoint_url=moto_endpoint)
    full_run(tel(store, run_id="s3-run"))
    tel(store, run_id="s3-run").record("failed", "failed", error=ErrorSummary("Note", "late sensor note"))
    assert store.list_keys("telemetry/sync/")[-1] == "telemetry/sync/date=2026-11-22/s3-run/000007-failed.json"
    assert not has_completed(store, "s3-run")
    (summary,) = run_summaries(store, limit=5)
    assert (summary.run_id, summary.step, summary.records) == ("s3-run", "failed", 8)
    write_commerce_events(store, commerce_telemetry_key(CREATED.date(), "s3-run"),
                          [{"order_id": 1, "event": "created", "at": CREATED}], shop="DE")
    assert read_commerce_events(store, CREATED.date(), "s3-run")[0]["order_id"] == 1


def test_since_queries_list_only_recent_date_folders(store: LocalObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    full_run(tel(store, run_id="ancient", run_created_at=CREATED - timedelta(days=400)))
    full_run(tel(store, run_id="recent", run_created_at=CREATED - timedelta(days=1)))
    full_run(tel(store, run_id="today", run_created_at=CREATED))
    monkeypatch.setattr(telemetry_readers, "utcnow", lambda: CREATED + timedelta(hours=3))
    prefixes: list[str] = []
    real_list = store.list_keys

    def spy(prefix: str = "") -> list[str]:
        prefixes.append(prefix)
        return real_list(prefix)

    monkeypatch.setattr(store, "list_keys", spy)
    recent = list_sync_records(store, since_date=(CREATED - timedelta(days=1)).date())
    assert {r["run_id"] for r in recent} == {"recent", "today"} and len(recent) == 14
    # one listing per day (since .. tomorrow; "now" is 2026-11-23 02:58Z), never the whole stream
    assert prefixes == [f"telemetry/sync/date={d}/" for d in ("2026-11-21", "2026-11-22", "2026-11-23",
                                                                        "2026-11-24")]
    assert [s.run_id for s in run_summaries(store, 10, since=date(2026, 11, 22))] == ["today"]
    # A long range falls back to one scan of the stream, with the same filtering.
    prefixes.clear()
    assert {r["run_id"] for r in list_sync_records(store, since_date=(CREATED - timedelta(days=100)).date())} == {
        "recent", "today"}
    assert prefixes == ["telemetry/sync/"]
    assert {s.run_id for s in run_summaries(store, 10)} == {"ancient", "recent", "today"}


def test_commerce_events_stream_in_batches_and_fail_atomically(store: LocalObjectStore) -> None:
    """A first load passes millions of events as a generator: they are written in batches
    (duplicates found across batch boundaries and against the stored object), and an event
    that fails half-way leaves the stored object exactly as it was."""
    at = datetime(2026, 11, 22, 6, 1, tzinfo=UTC)

    def gen(ids: range) -> Iterator[dict]:
        for i in ids:
            yield {"order_id": i, "event": "created", "at": at}

    big = commerce_telemetry_key(date(2026, 11, 22), "big")
    key = write_commerce_events(store, big, gen(range(15_000)), shop="DE")
    before = store.get_bytes(key)
    assert len(before.splitlines()) == 15_000

    # Overlaps the stored 10,000-14,999 and repeats 20,000-22,499 twice across batches.
    write_commerce_events(store, big, itertools.chain(gen(range(10_000, 25_000)), gen(range(20_000, 22_500))),
                          shop="DE")
    ids = [e["order_id"] for e in read_commerce_events(store, date(2026, 11, 22), "big")]
    assert ids == list(range(25_000))

    snapshot = store.get_bytes(key)

    def broken() -> Iterator[dict]:
        yield from gen(range(30_000, 42_000))  # more than one batch already written to the temp file
        yield {"order_id": "x", "event": "created", "at": at}

    with pytest.raises(ValueError, match="int order_id"):
        write_commerce_events(store, big, broken(), shop="DE")
    assert store.get_bytes(key) == snapshot


def test_restated_days_are_merged_per_asset_up_to_completed(store: LocalObjectStore) -> None:
    """SPEC §6 ``restated {asset: [dates]}``: each metric step reports its own asset; the
    ``completed`` record carries the union of the run's restated days per asset."""
    t = tel(store)
    d1, d2 = date(2026, 11, 3), date(2026, 11, 5)
    t.record("initiated", "started")
    t.record("transforming", "succeeded", restated={"measurement_sales": [d2, d1]})
    t.record("transforming", "succeeded", restated={"measurement_sales": [], "measurement_performance": ["2026-11-05"]})
    key = t.record("completed", "succeeded")
    assert json.loads(store.get_bytes(key))["restated"] == {"measurement_sales": ["2026-11-03", "2026-11-05"],
                                                          "measurement_performance": ["2026-11-05"]}
    with pytest.raises(TypeError, match="restated"):
        t.record("transforming", "started", restated={"measurement_sales": [12]})
    assert json.loads(store.get_bytes(tel(store, run_id="run-2").record("initiated", "started")))["restated"] is None
