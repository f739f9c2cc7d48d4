"""A run's status from its telemetry, decided once: the summaries the API, the CLI and the checks read.

SPEC §6: a run writes ``completed`` or ``failed`` last, so its state is that of its last
record. Summaries are per run, or per (run, shop) for a ranged run over several shops
(each shop's records are its own sequence of steps, so each gets its own state).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from shopify_sync.errors import ErrorSummary
from shopify_sync.storage.keys import parse_sync_telemetry_key, sync_telemetry_prefix
from shopify_sync.storage.object_store import ObjectStore
from shopify_sync.telemetry.readers import as_day, days_back, last_listed_day, list_sync_records
from shopify_sync.telemetry.records import JsonValue, SyncRecord, read_record
from shopify_sync.timeutil import as_utc
from shopify_sync.vocab import TERMINAL_STEPS, Step, StepStatus


class RunState(enum.StrEnum):
    """Where a run stands, as the API's ``/api/ingest/runs`` shows it."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


def run_state(last: Mapping[str, JsonValue]) -> RunState:
    """The state of a run (or of one shop in it) from its last record."""
    step = last.get("step")
    if step == Step.FAILED or last.get("status") == StepStatus.FAILED:
        return RunState.FAILED
    if step == Step.COMPLETED:
        return RunState.COMPLETED
    return RunState.RUNNING


@dataclass(frozen=True)
class RunSummary:
    """One run (or one shop of it) folded from its records, in seq order."""

    run_id: str
    day: date
    shops: tuple[str, ...]
    job_type: str | None
    initiator: str | None
    step: str | None  # the last record's
    status: str | None  # the last record's
    state: RunState
    started_at: datetime | None
    updated_at: datetime | None
    bulk_operation_id: str | None
    object_count: int | None
    rows: dict[str, int] | None
    error: ErrorSummary | None  # the latest error, when the run failed
    records: int

    @property
    def finished(self) -> bool:
        return self.step in TERMINAL_STEPS

    @property
    def shop(self) -> str | None:
        """The shop of a per-shop summary (the first one of a run over several)."""
        return self.shops[0] if self.shops else None


def _latest(records: Sequence[SyncRecord], name: str) -> JsonValue:
    return next((rec[name] for rec in reversed(records) if rec.get(name) is not None), None)


def _text(value: JsonValue) -> str | None:
    return value if isinstance(value, str) else None


def _instant(value: JsonValue) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


def _count(value: JsonValue) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _rows(value: JsonValue) -> dict[str, int] | None:
    if not isinstance(value, dict):
        return None
    return {k: v for k, v in value.items() if isinstance(v, int) and not isinstance(v, bool)}


def _error(value: JsonValue) -> ErrorSummary | None:
    if isinstance(value, dict):
        return ErrorSummary(type=str(value.get("type") or ""), message=str(value.get("message") or ""))
    if isinstance(value, str) and value:
        return ErrorSummary(type="", message=value)
    return None


def summarise_run(run_id: str, day: date, records: Sequence[SyncRecord]) -> RunSummary:
    """Fold one run's records (seq order, at least one) into its current state."""
    first, last = records[0], records[-1]
    state = run_state(last)
    return RunSummary(
        run_id=run_id,
        day=day,
        shops=tuple(dict.fromkeys(str(r["shop"]) for r in records if r.get("shop"))),
        job_type=_text(_latest(records, "job_type")),
        initiator=_text(_latest(records, "initiator")),
        step=_text(last.get("step")),
        status=_text(last.get("status")),
        state=state,
        started_at=_instant(first.get("process_initiated_at")) or _instant(first.get("at")),
        updated_at=_instant(last.get("at")),
        bulk_operation_id=_text(_latest(records, "bulk_operation_id")),
        object_count=_count(_latest(records, "object_count")),
        rows=_rows(_latest(records, "rows")),
        error=_error(_latest(records, "error")) if state is RunState.FAILED else None,
        records=len(records),
    )


def _keys_by_day(store: ObjectStore, since: date | None, until: date) -> Iterator[tuple[date, list[str]]]:
    """Telemetry keys grouped by date folder, newest day first. With ``since`` one listing
    per day, lazily, so a caller that has enough stops early; without, one scan of the stream."""
    if since is not None:
        for day in days_back(until, since):
            yield day, store.list_keys(sync_telemetry_prefix(day))
        return
    by_day: dict[date, list[str]] = {}
    for key in store.list_keys(sync_telemetry_prefix()):
        parsed = parse_sync_telemetry_key(key)
        if parsed is not None and parsed.day <= until:
            by_day.setdefault(parsed.day, []).append(key)
    yield from sorted(by_day.items(), reverse=True)


def _summaries_of_day(store: ObjectStore, day: date, keys: list[str], *, shop: str | None,
                      per_shop: bool) -> list[RunSummary]:
    by_run: dict[str, list[tuple[int, str]]] = {}
    for key in keys:
        parsed = parse_sync_telemetry_key(key)
        if parsed is not None and parsed.day == day:
            by_run.setdefault(parsed.run_id, []).append((parsed.seq, key))
    out = []
    for run_id, seq_keys in by_run.items():
        groups: dict[str | None, list[SyncRecord]] = {}
        for _seq, key in sorted(seq_keys):
            rec = read_record(store, key)
            if rec is not None and (shop is None or rec.get("shop") == shop):
                groups.setdefault(_text(rec.get("shop")) if per_shop else None, []).append(rec)
        out += [summarise_run(run_id, day, records) for records in groups.values() if records]
    return out


def run_summaries(
    store: ObjectStore,
    limit: int = 50,
    *,
    since: date | None = None,
    until: date | None = None,
    shop: str | None = None,
    per_shop: bool = False,
) -> list[RunSummary]:
    """Summaries of the runs created in ``[since, until]`` (UTC days; ``until`` defaults to
    tomorrow, ``since`` to the beginning), newest first; ties (the shops of one ranged run,
    with ``per_shop``) by shop code. Only ``shop``'s records with ``shop``.

    A run lives in the folder of the day it was created, so once whole days have been
    read and ``limit`` is reached, older days cannot matter and are not listed.
    """
    if limit <= 0:
        return []
    last = as_day(until) if until is not None else last_listed_day()
    summaries: list[RunSummary] = []
    for day, keys in _keys_by_day(store, as_day(since) if since is not None else None, last):
        summaries += _summaries_of_day(store, day, keys, shop=shop, per_shop=per_shop)
        if len(summaries) >= limit:
            break
    oldest = datetime.min.replace(tzinfo=UTC)
    summaries.sort(key=lambda s: s.shop or "")
    summaries.sort(key=lambda s: (s.day, s.started_at or s.updated_at or oldest, s.run_id), reverse=True)
    return summaries[:limit]


def has_completed(store: ObjectStore, run_id: str, *, shop: str | None = None,
                  run_date: date | None = None) -> bool:
    """True when the run's last record (of ``shop``, if given) is ``completed`` and not failed."""
    records = list_sync_records(store, run_id=run_id, run_date=run_date)
    if shop is not None:
        records = [r for r in records if r.get("shop") == shop]
    return bool(records) and run_state(records[-1]) is RunState.COMPLETED
