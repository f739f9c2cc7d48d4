"""UTC instants and days, decided once.

The warehouse stores naive UTC (SQLite and MariaDB hand back naive datetimes), the
telemetry and the API speak aware UTC with a ``Z``, and a measurement "day" is the UTC
date of an instant. Every conversion between those goes through here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time


def utcnow() -> datetime:
    """Now, aware UTC."""
    return datetime.now(UTC)


def as_utc(ts: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken as UTC (that is how the warehouse stores them)."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def as_utc_or_none(ts: datetime | None) -> datetime | None:
    return None if ts is None else as_utc(ts)


def naive_utc(ts: datetime) -> datetime:
    """The naive UTC datetime the warehouse columns hold."""
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts


def naive_utc_or_none(ts: datetime | None) -> datetime | None:
    return None if ts is None else naive_utc(ts)


def utc_day(ts: datetime) -> date:
    """The UTC calendar day of an instant (naive = UTC)."""
    return as_utc(ts).date()


def iso_z(ts: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` (naive = UTC), as telemetry and the API write instants."""
    return as_utc(ts).isoformat().replace("+00:00", "Z")


def parse_utc_or_none(value: object) -> datetime | None:
    """An instant as a driver or a stored record hands it back: a datetime or ISO 8601 text
    (naive = UTC), or None."""
    if value is None:
        return None
    return as_utc(value if isinstance(value, datetime) else datetime.fromisoformat(str(value)))


def day_start(day: date) -> datetime:
    """The first instant of a UTC day, aware: a day's instants are ``[day_start(d), day_start(d + 1))``."""
    return datetime.combine(day, time.min, tzinfo=UTC)
