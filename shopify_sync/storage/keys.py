"""Object keys of SPEC §6, built in one place.

The layout is public (operators, the API and other tools read it), so every writer
goes through these helpers and every component is validated: a shop code or run id
containing ``/`` or ``..`` would otherwise silently write outside its partition.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime
from typing import NamedTuple

from shopify_sync.timeutil import utc_day
from shopify_sync.vocab import Mode, Step

JOB_TYPES = tuple(m.value for m in Mode)
STEPS = tuple(s.value for s in Step)

RAW_PREFIX = "raw/shopify/"
SALES_PREFIX = "measurement/sales/"
PERFORMANCE_PREFIX = "measurement/performance/"
SYNC_TELEMETRY_PREFIX = "telemetry/sync/"
COMMERCE_TELEMETRY_PREFIX = "telemetry/commerce/"

# Six digits keep lexical order equal to numeric order for any realistic run
# (a run writes ~8 records per shop); wider numbers still parse, they just sort late.
SEQ_WIDTH = 6
MEASUREMENT_KINDS = ("sales", "performance")
_MEASUREMENT_TAIL = re.compile(r"^date=(\d{4}-\d{2}-\d{2})/part-0\.parquet$")

_SHOP = re.compile(r"^[A-Z0-9_]+$")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SEGMENT_OK = re.compile(r"^[A-Za-z0-9_.=+@,-][A-Za-z0-9_.=+@,:-]*$")


class InvalidKeyError(ValueError):
    """An object key or one of its components is unsafe or malformed."""


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise ``InvalidKeyError``.

    Rejected: empty, absolute, backslashes, empty / ``.`` / ``..`` segments, control
    characters and segments starting with ``.`` (the local store uses hidden names
    for its in-flight temp files, so they must never collide with a real key).
    """
    if not isinstance(key, str) or not key:
        raise InvalidKeyError(f"object key must be a non-empty string, got {key!r}")
    if key.startswith("/") or "\\" in key or "\x00" in key:
        raise InvalidKeyError(f"object key must be relative without backslashes or NUL, got {key!r}")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidKeyError(f"object key has an empty, '.' or '..' segment: {key!r}")
        if segment.startswith(".") or not _SEGMENT_OK.match(segment):
            raise InvalidKeyError(f"object key segment {segment!r} has unsupported characters (key {key!r})")
    return key


def validate_prefix(prefix: str) -> str:
    """A listing prefix: empty, or a key-like string that may end with ``/``."""
    if prefix == "":
        return prefix
    validate_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def _shop(shop: str) -> str:
    if not isinstance(shop, str) or not _SHOP.match(shop):
        raise InvalidKeyError(f"shop code must match [A-Z0-9_]+, got {shop!r}")
    return shop


def _run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
        raise InvalidKeyError(f"run id must match [A-Za-z0-9][A-Za-z0-9_.-]*, got {run_id!r}")
    return run_id


def _job_type(job_type: Mode) -> str:
    try:
        return Mode(job_type).value
    except ValueError:
        raise InvalidKeyError(f"job type must be one of {', '.join(JOB_TYPES)}, got {job_type!r}") from None


def _step(step: Step) -> str:
    try:
        return Step(step).value
    except ValueError:
        raise InvalidKeyError(f"telemetry step must be one of {', '.join(STEPS)}, got {step!r}") from None


def key_date(day: date) -> str:
    """``YYYY-MM-DD`` of a UTC day.

    Callers pass the day (``timeutil.utc_day`` of an instant). A ``datetime`` is a
    ``date`` to Python too, so one that slips through is keyed by its UTC day, never
    by its local date, and a naive one is refused: the layout must not depend on a
    host's time zone.
    """
    if isinstance(day, datetime):
        if day.tzinfo is None:
            raise InvalidKeyError(f"datetime {day!r} has no timezone; pass its UTC day (timeutil.utc_day)")
        return utc_day(day).isoformat()
    if isinstance(day, date):
        return day.isoformat()
    raise InvalidKeyError(f"date must be a datetime.date, got {day!r}")


def raw_key(shop: str, job_type: Mode, day: date, run_id: str, gz: bool = False) -> str:
    """``raw/shopify/shop=<CODE>/<job_type>/date=<D>/<run_id>.jsonl[.gz]``."""
    ext = ".jsonl.gz" if gz else ".jsonl"
    return f"{RAW_PREFIX}shop={_shop(shop)}/{_job_type(job_type)}/date={key_date(day)}/{_run_id(run_id)}{ext}"


def sales_key(shop: str, day: date) -> str:
    """``measurement/sales/shop=<CODE>/date=<D>/part-0.parquet``."""
    return f"{SALES_PREFIX}shop={_shop(shop)}/date={key_date(day)}/part-0.parquet"


def performance_key(shop: str, day: date) -> str:
    """``measurement/performance/shop=<CODE>/date=<D>/part-0.parquet``."""
    return f"{PERFORMANCE_PREFIX}shop={_shop(shop)}/date={key_date(day)}/part-0.parquet"


def measurement_prefix(kind: str, shop: str) -> str:
    """The prefix of one shop's ``sales`` or ``performance`` objects, for listing them."""
    if kind not in MEASUREMENT_KINDS:
        raise InvalidKeyError(f"measurement kind must be one of {', '.join(MEASUREMENT_KINDS)}, got {kind!r}")
    return f"measurement/{kind}/shop={_shop(shop)}/"


def measurement_days(keys: Iterable[str], kind: str, shop: str) -> list[date]:
    """The days of the listed keys that are ``kind`` objects of ``shop`` (others ignored), sorted."""
    prefix = measurement_prefix(kind, shop)
    days = []
    for key in keys:
        m = _MEASUREMENT_TAIL.match(key[len(prefix):]) if key.startswith(prefix) else None
        if m is not None:
            try:
                days.append(date.fromisoformat(m.group(1)))
            except ValueError:
                continue  # not a date: not one of ours
    return sorted(days)


def sync_telemetry_prefix(day: date | None = None, run_id: str | None = None) -> str:
    """Listing prefix of the sync telemetry, narrowed to a day and then a run."""
    if day is None:
        if run_id is not None:
            raise InvalidKeyError("a run's telemetry prefix needs the day the run was created")
        return SYNC_TELEMETRY_PREFIX
    prefix = f"{SYNC_TELEMETRY_PREFIX}date={key_date(day)}/"
    return prefix if run_id is None else f"{prefix}{_run_id(run_id)}/"


def sync_telemetry_key(day: date, run_id: str, seq: int, step: Step) -> str:
    """``telemetry/sync/date=<D>/<run_id>/<seq>-<step>.json`` with ``seq`` zero-padded so keys sort."""
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise InvalidKeyError(f"telemetry seq must be a non-negative int, got {seq!r}")
    return f"{sync_telemetry_prefix(day, run_id)}{seq:0{SEQ_WIDTH}d}-{_step(step)}.json"


class SyncTelemetryKey(NamedTuple):
    """The parts of a sync telemetry key. ``step`` stays text: a reader meets whatever is stored."""

    day: date
    run_id: str
    seq: int
    step: str


def parse_sync_telemetry_key(key: str) -> SyncTelemetryKey | None:
    """``(day, run_id, seq, step)`` of a sync telemetry key, or None for any other key."""
    if not key.startswith(SYNC_TELEMETRY_PREFIX):
        return None
    parts = key[len(SYNC_TELEMETRY_PREFIX):].split("/")
    if len(parts) != 3 or not parts[0].startswith("date=") or not parts[2].endswith(".json"):
        return None
    seq_text, sep, step = parts[2][: -len(".json")].partition("-")
    day_text = parts[0][len("date="):]
    if not sep or not seq_text.isdigit() or not step or len(day_text) != 10:
        return None
    try:
        day = date.fromisoformat(day_text)
    except ValueError:
        return None
    return SyncTelemetryKey(day, parts[1], int(seq_text), step)


def commerce_telemetry_key(day: date, run_id: str) -> str:
    """``telemetry/commerce/date=<D>/<run_id>.jsonl``."""
    return f"{COMMERCE_TELEMETRY_PREFIX}date={key_date(day)}/{_run_id(run_id)}.jsonl"
