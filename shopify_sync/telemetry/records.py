"""SYNC_TELEMETRY records: the writer, and reading one record back (SPEC §6).

One JSON object per step record at ``telemetry/sync/date=<D>/<run_id>/<seq>-<step>.json``
(D = UTC day the run was created). Records are never overwritten: each ``record``
lists the run's folder and takes the next ``seq``, so a sensor or a re-executed step
writing later (in another process, with another ``SyncTelemetry``) appends after what
is there. Window, bulk operation id, object count, rows and the watermark before are
*sticky*: they carry over from the shop's previous record of the run, so every record
is self-contained.

Secrets never reach the stream: error text goes through ``errors.summarize_error``
(root cause, first line, scrubbed of the caller's and the environment's secrets).
"""

from __future__ import annotations

import json
import logging
import operator
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import SupportsIndex, TypeAlias, TypedDict, TypeVar, Unpack

from shopify_sync.errors import ErrorSummary, summarize_error, summarize_text
from shopify_sync.storage.keys import parse_sync_telemetry_key, sync_telemetry_key, sync_telemetry_prefix
from shopify_sync.storage.object_store import ObjectNotFoundError, ObjectStore
from shopify_sync.timeutil import iso_z, utc_day, utcnow
from shopify_sync.vocab import Initiator, Mode, Step, StepStatus

log = logging.getLogger(__name__)

JsonValue: TypeAlias = "None | bool | int | float | str | list[JsonValue] | dict[str, JsonValue]"
# One stored record as read back: SPEC §6 fields, JSON-typed.
SyncRecord: TypeAlias = dict[str, JsonValue]

# Every record carries all SPEC §6 fields (null when unknown), in this order.
RECORD_FIELDS = (
    "run_id", "shop", "job_type", "initiator", "step", "status", "at", "process_initiated_at",
    "bulk_operation_id", "window_start", "window_end", "object_count", "rows", "watermark_before",
    "watermark_after", "restated", "error",
)
# What a caller may pass to ``record`` (the rest is the recorder's identity or automatic).
CALLER_FIELDS = (
    "bulk_operation_id", "window_start", "window_end", "object_count", "rows", "watermark_before",
    "watermark_after", "restated", "error",
)
# Optional, beyond SPEC: who wrote the record when it was not the run itself (the
# run-status sensor), so operators can tell a crash epilogue from a run's own report.
# Written only when given.
EXTRA_FIELDS = ("recorded_by",)
STICKY_FIELDS = ("bulk_operation_id", "window_start", "window_end", "object_count", "rows", "watermark_before",
                 "restated")

_WORD = re.compile(r"^[a-z][a-z_]*$")
SHOP_CODE = re.compile(r"^[A-Z0-9_]+$")

ErrorInput: TypeAlias = "BaseException | ErrorSummary | Mapping[str, str]"


class RecordFields(TypedDict, total=False):
    """What a caller may set on a record (``None`` leaves a sticky field as it was)."""

    bulk_operation_id: str | None
    window_start: datetime | None
    window_end: datetime | None
    object_count: int | None
    rows: Mapping[str, int] | None
    watermark_before: datetime | None
    watermark_after: datetime | None
    # SPEC §5 restatement: {asset: [days]} of partitions rewritten beyond the run's own;
    # a union per asset with the run's earlier records, so ``completed`` lists them all.
    restated: Mapping[str, Iterable[date]] | None
    error: ErrorInput | None
    recorded_by: str | None


def error_info(error: ErrorInput, secrets: Iterable[str] = ()) -> ErrorSummary:
    """The record's ``{type, message}``: an exception's root cause, or a summary / dict as given;
    one line, scrubbed, bounded (``errors``)."""
    return _error_of(error, secrets)


def _error_of(error: object, secrets: Iterable[str]) -> ErrorSummary:
    if isinstance(error, BaseException):
        return summarize_error(error, secrets=secrets)
    if isinstance(error, ErrorSummary):
        return summarize_text(error.type, error.message, secrets=secrets)
    if isinstance(error, Mapping):
        return summarize_text(str(error.get("type") or "Error"), str(error.get("message") or ""), secrets=secrets)
    raise TypeError(f"error must be an exception, an ErrorSummary or a {{type, message}} dict, "
                    f"got {type(error).__name__}")


# -- JSON values ----------------------------------------------------------------------------


def jsonable(value: object, what: str) -> JsonValue:
    """A field value as JSON: instants as ISO 8601 UTC with ``Z``, money as exact text."""
    if isinstance(value, Enum):
        return jsonable(value.value, what)
    if value is None or isinstance(value, bool | int | str | float):
        return value
    if isinstance(value, datetime):
        # The warehouse stores naive UTC; anything naive here came from it.
        return iso_z(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, ErrorSummary):
        return {"type": value.type, "message": value.message}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, f"{what}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v, what) for v in value]
    raise TypeError(f"telemetry field {what} has a value of type {type(value).__name__} that is not JSON")


def count(value: object, what: str) -> int:
    """A count as a plain int: numpy / polars integers and Shopify's UnsignedInt64 strings
    (``objectCount`` is a string in GraphQL) are accepted, fractions and bools are not."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, SupportsIndex) and not isinstance(value, bool):
        return operator.index(value)
    raise TypeError(f"telemetry {what} must be an int count, got {value!r}")


def _day(value: object, what: str) -> str:
    """A restated day as ``YYYY-MM-DD`` (a ``date`` or that text)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        return date.fromisoformat(value).isoformat()
    raise TypeError(f"telemetry {what} must hold dates, got {value!r}")


def _merge_restated(earlier: object, given: object) -> dict[str, list[str]]:
    """The run's restated days so far (a sticky field) plus ``given``: a union per asset."""
    merged: dict[str, set[str]] = {}
    for source in (earlier, given):
        if isinstance(source, Mapping):
            for asset, days in source.items():
                merged.setdefault(str(asset), set()).update(str(d) for d in days)
    return {asset: sorted(days) for asset, days in merged.items()}


def read_record(store: ObjectStore, key: str) -> SyncRecord | None:
    """One stored record, or None when it is gone or not a record (a reader must not fail on it)."""
    try:
        rec = json.loads(store.get_bytes(key))
    except (ObjectNotFoundError, ValueError) as exc:
        # Deleted meanwhile, half-written, or not ours.
        log.warning("skipping unreadable telemetry record %s: %s", key, type(exc).__name__)
        return None
    return rec if isinstance(rec, dict) else None


# -- the writer -----------------------------------------------------------------------------


class SyncTelemetry:
    """Step records of one run for one shop.

    ``run_created_at`` fixes the date folder (defaults to ``process_initiated_at``,
    then to now); ``secrets`` are extra strings to scrub from error messages (the
    environment's tokens are always scrubbed).
    """

    def __init__(
        self,
        store: ObjectStore,
        *,
        run_id: str,
        shop: str,
        job_type: Mode,
        initiator: Initiator,
        run_created_at: datetime | None = None,
        process_initiated_at: datetime | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        self.job_type = _member(Mode, job_type, "job_type")
        self.initiator = _member(Initiator, initiator, "initiator")
        if not isinstance(shop, str) or not SHOP_CODE.match(shop):
            raise ValueError(f"telemetry shop must be a shop code [A-Z0-9_]+, got {shop!r}")
        for name, value in (("run_created_at", run_created_at), ("process_initiated_at", process_initiated_at)):
            if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
                raise ValueError(f"telemetry {name} must be a timezone-aware datetime, got {value!r}")
        self.store = store
        self.run_id = run_id
        self.shop = shop
        self.run_created_at = run_created_at or process_initiated_at or utcnow()
        self.process_initiated_at = process_initiated_at or self.run_created_at
        self.day = utc_day(self.run_created_at)
        self.prefix = sync_telemetry_prefix(self.day, run_id)  # validates run_id
        self._secrets = [s for s in secrets if s]

    def __repr__(self) -> str:
        return f"SyncTelemetry(run_id={self.run_id!r}, shop={self.shop!r}, date={self.day})"

    def record(self, step: Step, status: StepStatus, **fields: Unpack[RecordFields]) -> str:
        """Write the next record; returns its key. Unknown field names are refused (typos)."""
        step = _member(Step, step, "step")
        status = _member(StepStatus, status, "status")
        given = self._checked(dict(fields))
        recorded_by = given.pop("recorded_by", None)
        existing = self._existing()
        values: dict[str, object] = dict.fromkeys(RECORD_FIELDS)
        values.update(self._sticky(existing))
        values.update(run_id=self.run_id, shop=self.shop, job_type=self.job_type, initiator=self.initiator,
                      step=step, status=status, at=utcnow(), process_initiated_at=self.process_initiated_at)
        for name, value in given.items():
            if name == "restated" and value is not None:
                value = _merge_restated(values.get("restated"), value)
            if value is not None or name not in STICKY_FIELDS:
                values[name] = value
        body = {name: jsonable(values[name], name) for name in RECORD_FIELDS}
        if recorded_by is not None:
            body["recorded_by"] = jsonable(recorded_by, "recorded_by")
        return self._put(existing, step, (json.dumps(body, ensure_ascii=False) + "\n").encode())

    def _checked(self, fields: dict[str, object]) -> dict[str, object]:
        unknown = sorted(set(fields) - set(CALLER_FIELDS) - set(EXTRA_FIELDS))
        if unknown:
            raise TypeError(f"unknown telemetry field(s) {', '.join(unknown)}; "
                            f"allowed: {', '.join(CALLER_FIELDS + EXTRA_FIELDS)}")
        recorded_by = fields.get("recorded_by")
        if recorded_by is not None and (not isinstance(recorded_by, str) or not _WORD.match(recorded_by)):
            raise ValueError(f"telemetry recorded_by must be a lowercase word, got {recorded_by!r}")
        rows = fields.get("rows")
        if rows is not None:
            if not isinstance(rows, Mapping) or not all(isinstance(k, str) for k in rows):
                raise TypeError(f"telemetry rows must map table name to an int count, got {rows!r}")
            fields["rows"] = {k: count(v, f"rows.{k}") for k, v in rows.items()}
        restated = fields.get("restated")
        if restated is not None:
            if not isinstance(restated, Mapping) or not all(isinstance(k, str) for k in restated):
                raise TypeError(f"telemetry restated must map asset name to days, got {restated!r}")
            fields["restated"] = {k: sorted({_day(d, f"restated.{k}") for d in v}) for k, v in restated.items()}
        if fields.get("object_count") is not None:
            fields["object_count"] = count(fields["object_count"], "object_count")
        error = fields.get("error")
        if error is not None:
            fields["error"] = _error_of(error, self._secrets)
        return fields

    def _existing(self) -> list[tuple[int, str]]:
        out = []
        for key in self.store.list_keys(self.prefix):
            parsed = parse_sync_telemetry_key(key)
            if parsed is not None:
                out.append((parsed.seq, key))
        return sorted(out)

    def _sticky(self, existing: list[tuple[int, str]]) -> dict[str, object]:
        """Sticky fields of this shop's latest readable record of the run and job type.

        The catalog's records (job type CATALOG) share the run's stream with the orders':
        neither carries the other's operation id, window or counts.
        """
        for _seq, key in reversed(existing):
            rec = read_record(self.store, key)
            if rec is not None and rec.get("shop") == self.shop and rec.get("job_type") == self.job_type.value:
                return {f: rec.get(f) for f in STICKY_FIELDS if rec.get(f) is not None}
        return {}

    def _put(self, existing: list[tuple[int, str]], step: Step, data: bytes) -> str:
        seq = existing[-1][0] + 1 if existing else 0
        # Another writer may have taken this seq between our listing and now; the
        # step name is part of the key, so only the same step at the same seq clashes.
        key = sync_telemetry_key(self.day, self.run_id, seq, step)
        while self.store.exists(key):
            seq += 1
            key = sync_telemetry_key(self.day, self.run_id, seq, step)
        self.store.put_bytes(key, data)
        return key


_E = TypeVar("_E", bound=Enum)


def _member(enum: type[_E], value: object, what: str) -> _E:
    """``value`` as a member of ``enum`` (its text is accepted: records and tags carry text)."""
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in enum)
        raise ValueError(f"telemetry {what} must be one of {allowed}, got {value!r}") from None
