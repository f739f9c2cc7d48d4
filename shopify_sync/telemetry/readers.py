"""Reading SYNC_TELEMETRY back: the records of a run, or of every run since a day."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta

from shopify_sync.storage.keys import SYNC_TELEMETRY_PREFIX, parse_sync_telemetry_key, sync_telemetry_prefix
from shopify_sync.storage.object_store import ObjectStore
from shopify_sync.telemetry.records import SyncRecord, read_record
from shopify_sync.timeutil import utc_day, utcnow

# Up to this many days back, a ``since`` query lists one date folder per day instead
# of the whole stream (which grows forever; S3 lists 1,000 keys per request).
PER_DAY_LISTING_MAX_DAYS = 31


def as_day(day: date) -> date:
    """A ``datetime`` is a ``date`` to Python: it stands for its UTC day, as in the keys."""
    return utc_day(day) if isinstance(day, datetime) else day


def days_back(newest: date, oldest: date) -> Iterator[date]:
    """``newest``, the day before, ... down to ``oldest`` (none when ``oldest`` is later)."""
    for n in range((newest - oldest).days + 1):
        yield newest - timedelta(days=n)


def last_listed_day() -> date:
    """Tomorrow (UTC): a run created by a host whose clock is slightly ahead is still found."""
    return utcnow().date() + timedelta(days=1)


def _sync_keys(store: ObjectStore, since: date | None) -> list[str]:
    """Sync telemetry keys, all of them or only date folders >= ``since`` (unfiltered otherwise)."""
    if since is not None:
        last = last_listed_day()
        if 0 <= (last - since).days <= PER_DAY_LISTING_MAX_DAYS:
            keys: list[str] = []
            for day in reversed(list(days_back(last, since))):
                keys.extend(store.list_keys(sync_telemetry_prefix(day)))
            return keys
    return store.list_keys(SYNC_TELEMETRY_PREFIX)


def list_sync_records(
    store: ObjectStore,
    since_date: date | None = None,
    run_id: str | None = None,
    *,
    run_date: date | None = None,
) -> list[SyncRecord]:
    """Sync records in (date, run_id, seq) order, optionally only runs created on or after
    ``since_date`` and/or of one ``run_id``. ``run_date`` (the day that run was created)
    makes a ``run_id`` lookup a single listing instead of a scan of every date folder.
    """
    since = as_day(since_date) if since_date is not None else None
    if run_date is not None:
        if run_id is None:
            raise ValueError("run_date narrows a run_id lookup; pass run_id too")
        keys = store.list_keys(sync_telemetry_prefix(as_day(run_date), run_id))
    else:
        keys = _sync_keys(store, since)
    selected = []
    for key in keys:
        parsed = parse_sync_telemetry_key(key)
        if parsed is None:
            continue
        if (run_id is not None and parsed.run_id != run_id) or (since is not None and parsed.day < since):
            continue
        selected.append((parsed.day, parsed.run_id, parsed.seq, key))
    selected.sort()
    records = []
    for *_order, key in selected:
        rec = read_record(store, key)
        if rec is not None:
            records.append(rec)
    return records


def read_sync_records(store: ObjectStore, run_id: str, *, run_date: date | None = None) -> list[SyncRecord]:
    """One run's records in seq order (what the asset checks and the sensors read)."""
    return list_sync_records(store, run_id=run_id, run_date=run_date)
