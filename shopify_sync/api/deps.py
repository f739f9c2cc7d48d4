"""Shared request dependencies: the warehouse engine, the object store, parameter checks."""

from __future__ import annotations

import re
import threading
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

import sqlalchemy as sa
from fastapi import Request
from pydantic import BeforeValidator

from shopify_sync import timeutil
from shopify_sync.api.errors import ApiError
from shopify_sync.config import Settings
from shopify_sync.storage import ObjectStore, open_store
from shopify_sync.warehouse import make_engine


class Backends:
    """Lazily opened warehouse engine and object store, shared by all requests.

    Lazy so that ``create_app`` (and the OpenAPI export) never touches a database;
    ``make_engine`` brings the schema to head on first use, as SPEC §4 asks.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._engine: sa.Engine | None = None
        self._store: ObjectStore | None = None

    def engine(self) -> sa.Engine:
        with self._lock:
            if self._engine is None:
                self._engine = make_engine(self.settings.database_url)
            return self._engine

    def store(self) -> ObjectStore:
        with self._lock:
            if self._store is None:
                self._store = open_store(self.settings.storage_url, endpoint_url=self.settings.s3_endpoint_url)
            return self._store

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None


def backends(request: Request) -> Backends:
    b: Backends = request.app.state.backends
    return b


def settings_of(request: Request) -> Settings:
    return backends(request).settings


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_date_only(value: object) -> object:
    # Pydantic would also read "1700000000" or "-4.3e-187" as a Unix timestamp; a
    # dashboard typo must be a 422, not silently 1970-01-01.
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("must be a date in YYYY-MM-DD form")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date_only)]


def reject_unknown_query(request: Request) -> None:
    """A misspelt filter (``strat=``) must be a 4xx, not silently ignored (an unfiltered answer)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    allowed: set[str] = set()
    stack = [dependant]
    while stack:
        dep = stack.pop()
        allowed.update(p.alias for p in dep.query_params)
        stack.extend(dep.dependencies)
    unknown = sorted(set(request.query_params.keys()) - allowed)
    if unknown:
        raise ApiError(422, "invalid_request",
                       f"unknown query parameter(s) {', '.join(repr(u) for u in unknown)}; "
                       f"allowed: {', '.join(sorted(allowed)) or 'none'}")


def check_shop(settings: Settings, shop: str | None) -> str | None:
    """Unknown shop codes are a 400, not an empty list: a typo must not look like "no data"."""
    if shop is None:
        return None
    if shop not in settings.shop_codes:
        raise ApiError(400, "unknown_shop",
                       f"unknown shop {shop!r}; configured shops: {', '.join(settings.shop_codes)}")
    return shop


def check_range(start: date | None, end: date | None) -> None:
    if start is not None and end is not None and start > end:
        raise ApiError(400, "invalid_range", f"start ({start}) is after end ({end})")


# The analytics reports' default range: the 30 UTC days ending today.
DEFAULT_RANGE_DAYS = 30


def report_range(settings: Settings, shop: str | None, start: date | None, end: date | None) -> tuple[date, date]:
    """A report's checked shop and range, ``end`` defaulting to today (UTC) and ``start`` to 29 days before."""
    check_shop(settings, shop)
    end = end or timeutil.utcnow().date()
    start = start or days_before(end, DEFAULT_RANGE_DAYS - 1)
    check_range(start, end)
    return start, end


# Query bounds are clamped to what every backend can compare against (MariaDB's
# DATETIME starts at year 1000); no order is that old or that far ahead anyway.
_MIN_BOUND = datetime(1000, 1, 1, tzinfo=UTC)
_MAX_BOUND = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def day_start(day: date) -> datetime:
    """The first instant of a UTC ``day``, clamped to the comparable range."""
    return max(_MIN_BOUND, timeutil.day_start(day))


def day_end_exclusive(day: date) -> datetime:
    """The first instant after a UTC ``day``, clamped to the comparable range."""
    if day >= _MAX_BOUND.date():
        return _MAX_BOUND
    return max(_MIN_BOUND, timeutil.day_start(day + timedelta(days=1)))


def days_before(day: date, days: int) -> date:
    """``day - days``, saturating at the first representable date instead of overflowing."""
    return day - timedelta(days=days) if (day - date.min).days >= days else date.min

