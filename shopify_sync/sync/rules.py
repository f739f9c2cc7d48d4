"""The pure rules of a sync run (SPEC §3): run tags, mode and initiator, windows, the watermark.

No I/O: every function here is a decision over values, so the steps, the sensors,
the CLI and the API all decide alike, and each rule is tested without a warehouse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from shopify_sync.shopify.queries import WindowField, orders_query
from shopify_sync.timeutil import as_utc, as_utc_or_none
from shopify_sync.vocab import RUN_MODES, Initiator, Mode

# Run tags (public: the CLI, the API, the schedule and the sensors set or read them).
TAG_MODE = "shopify_sync/mode"
TAG_INITIATOR = "shopify_sync/initiator"
TAG_SHOP = "shopify_sync/shop"
TAG_REPLAY_OF = "shopify_sync/replay_of"
# A daily run that refetches the whole product catalog (``sync --full-catalog``).
TAG_FULL_CATALOG = "shopify_sync/full_catalog"
TAG_BACKFILL = "dagster/backfill"
TAG_SCHEDULE = "dagster/schedule_name"
TAG_RANGE_START = "dagster/asset_partition_range_start"
TAG_RANGE_END = "dagster/asset_partition_range_end"


def mode_from_tags(tags: Mapping[str, str]) -> Mode:
    """An explicit ``shopify_sync/mode`` tag wins (CLI, API); a Dagster backfill is a backfill."""
    raw = tags.get(TAG_MODE)
    if raw:
        if raw not in RUN_MODES:
            raise ValueError(f"run tag {TAG_MODE}={raw!r} is not one of {', '.join(m.value for m in RUN_MODES)}")
        return Mode(raw)
    if tags.get(TAG_BACKFILL):
        return Mode.FULL_BACKFILL_EXECUTE
    return Mode.DAILY_INCREMENTAL


def initiator_from_tags(tags: Mapping[str, str]) -> Initiator:
    """An explicit ``shopify_sync/initiator`` tag wins; else the schedule is cron, a backfill a backfill."""
    raw = tags.get(TAG_INITIATOR)
    if raw:
        try:
            return Initiator(raw)
        except ValueError:
            raise ValueError(f"run tag {TAG_INITIATOR}={raw!r} is not one of "
                             f"{', '.join(i.value for i in Initiator)}") from None
    if tags.get(TAG_SCHEDULE):
        return Initiator.CRON
    if tags.get(TAG_BACKFILL):
        return Initiator.BACKFILL
    return Initiator.USER


@dataclass(frozen=True)
class RunInfo:
    """What every step knows about the run it belongs to (from the Dagster run record)."""

    run_id: str
    mode: Mode
    initiator: Initiator
    created_at: datetime
    replay_of: str | None = None

    @classmethod
    def from_tags(cls, run_id: str, tags: Mapping[str, str], created_at: datetime) -> RunInfo:
        mode = mode_from_tags(tags)
        replay_of = tags.get(TAG_REPLAY_OF) or None
        if mode is Mode.REPLAY and not replay_of:
            raise ValueError(f"a REPLAY run needs the run tag {TAG_REPLAY_OF}=<run id of the archived sync>")
        return cls(run_id, mode, initiator_from_tags(tags), as_utc(created_at), replay_of)


@dataclass(frozen=True)
class Window:
    """Half-open ``[start, end)`` on ``field``; ``end=None`` means "up to now"."""

    field: WindowField
    start: datetime
    end: datetime | None = None

    def query(self) -> str:
        return orders_query(self.field, self.start, self.end)

    def describe(self) -> str:
        end = self.end.isoformat() if self.end else "now"
        return f"{self.field} in [{self.start.isoformat()}, {end})"


def incremental_window(
    watermark: datetime | None, *, now: datetime, floor_days: int, lookback_minutes: int
) -> Window:
    """SPEC §3: ``updated_at >= max(watermark - lookback, now - floor)``; no watermark → floor.

    Open-ended on purpose: anything updated while the bulk job runs is fetched now or,
    at worst, again next time thanks to the lookback; the watermark only advances to
    what was actually fetched.
    """
    floor = now - timedelta(days=floor_days)
    if watermark is None:
        return Window("updated_at", floor)
    return Window("updated_at", max(as_utc(watermark) - timedelta(minutes=lookback_minutes), floor))


def backfill_window(start: datetime, end: datetime) -> Window:
    """SPEC §3: ``created_at`` in the selected days, no floor."""
    return Window("created_at", start, end)


def stored_window(job_type: Mode, start: datetime, end: datetime | None) -> Window:
    """The window a ``sync_job`` was created with: a daily job's is on ``updated_at``, any other on ``created_at``."""
    field: WindowField = "updated_at" if job_type is Mode.DAILY_INCREMENTAL else "created_at"
    return Window(field, as_utc(start), as_utc_or_none(end))


def next_watermark(old: datetime | None, fetched_max: datetime | None) -> datetime | None:
    """``max(old, MAX(updated_at) fetched)``: never backwards, unchanged when nothing came."""
    if fetched_max is None:
        return as_utc_or_none(old)
    if old is None:
        return as_utc(fetched_max)
    return max(as_utc(old), as_utc(fetched_max))


def watermark_to_advance(old: datetime | None, fetched_max: datetime | None) -> datetime | None:
    """The value to move the watermark to, or None when it stays where it is."""
    candidate = next_watermark(old, fetched_max)
    return None if candidate is None or candidate == as_utc_or_none(old) else candidate
