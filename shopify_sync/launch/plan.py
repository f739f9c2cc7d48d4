"""What a sync run is, decided once for every launcher: the job, its tags, its partition.

The schedule and the CLI (in-process, ``launch.inprocess``) and the staff API (through
the webserver, ``api.launcher``) all start the same job with the same tags, so a run
looks the same in the UI and in telemetry whoever started it. No Dagster import: the
API builds its launches from here without paying Dagster's start-up.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import NamedTuple

from shopify_sync.sync import (
    TAG_FULL_CATALOG,
    TAG_INITIATOR,
    TAG_MODE,
    TAG_RANGE_END,
    TAG_RANGE_START,
    TAG_REPLAY_OF,
    TAG_SHOP,
)
from shopify_sync.vocab import Initiator, Mode

SYNC_JOB_NAME = "shopify_sync_job"

# The two dimensions of every asset's partitions (defs.partitions builds them).
DATE_DIM = "date"
SHOP_DIM = "shop"
# Dagster tags a run of a multi-partitioned job with the key and one tag per dimension;
# the instance's one-run-per-shop limit (dagster.yaml) keys on the shop's.
TAG_PARTITION = "dagster/partition"
TAG_PARTITION_DATE = f"dagster/partition/{DATE_DIM}"
TAG_PARTITION_SHOP = f"dagster/partition/{SHOP_DIM}"
# The run queue starts higher priorities first. A Dagster backfill is one queued run per
# (day, shop) under the same one-run-per-shop limit as the daily sync; without this the
# 06:00 run of a shop would wait behind every backfill run queued before it.
TAG_PRIORITY = "dagster/priority"
DAILY_PRIORITY = "10"


class Launch(NamedTuple):
    """One run to start: a label for the operator, its tags, and its partition key (None
    for a ranged run, whose range is in the tags)."""

    label: str
    tags: dict[str, str]
    partition_key: str | None


def partition_key(day: date, shop: str) -> str:
    """Dagster's multi-partition key string: the dimensions' keys in dimension-name
    order (``date`` < ``shop``) joined by ``|`` (a test pins it to ``dg.MultiPartitionKey``)."""
    return f"{day.isoformat()}|{shop}"


def partition_tags(day: date, shop: str) -> dict[str, str]:
    """The tags Dagster gives a run of one partition, for a launch that must carry them
    itself (the webserver's GraphQL launch does not derive them)."""
    return {TAG_PARTITION: partition_key(day, shop), TAG_PARTITION_DATE: day.isoformat(),
            TAG_PARTITION_SHOP: shop}


def day_range_key(first: date, last: date) -> str:
    """``sync_job.partition_key`` of a shop's days: the day, or ``first..last``."""
    return first.isoformat() if first == last else f"{first.isoformat()}..{last.isoformat()}"


def parse_day_range_key(key: str) -> tuple[date, date]:
    """The inverse of ``day_range_key``: (first, last) day."""
    first, _, last = key.partition("..")
    return date.fromisoformat(first), date.fromisoformat(last or first)


def _range_tags(shop: str, start: date, end: date) -> dict[str, str]:
    return {TAG_RANGE_START: partition_key(start, shop), TAG_RANGE_END: partition_key(end, shop)}


def daily_launch(shop: str, day: date, initiator: Initiator = Initiator.USER, *, full_catalog: bool = False) -> Launch:
    """The incremental sync of ``shop`` for ``day`` (the schedule's run with ``CRON``);
    ``full_catalog``: refetch the whole product catalog in the same run."""
    tags = {TAG_MODE: Mode.DAILY_INCREMENTAL.value, TAG_INITIATOR: initiator.value, TAG_SHOP: shop,
            TAG_PRIORITY: DAILY_PRIORITY}
    if full_catalog:
        tags[TAG_FULL_CATALOG] = "true"
    return Launch(f"sync {shop} {day}", tags, partition_key(day, shop))


# A relaunch of a failed scheduled daily run (defs.retry): the run it retries, and which
# attempt it is (the first relaunch is attempt 2).
TAG_RELAUNCH_OF = "shopify_sync/relaunch_of"
TAG_ATTEMPT = "shopify_sync/attempt"


def daily_relaunch(shop: str, day: date, relaunch_of: str, attempt: int) -> Launch:
    """The scheduled daily run of ``shop`` for ``day`` again (still ``initiator=cron``)."""
    label, tags, key = daily_launch(shop, day, Initiator.CRON)
    return Launch(f"{label} (attempt {attempt})", {**tags, TAG_RELAUNCH_OF: relaunch_of, TAG_ATTEMPT: str(attempt)},
                  key)


def backfill_launch(shop: str, start: date, end: date) -> Launch:
    """One ranged run of ``shop``: one bulk operation covers ``start..end`` (the CLI cuts ranges with ``month_ranges``)."""
    tags = {TAG_MODE: Mode.FULL_BACKFILL_EXECUTE.value, TAG_INITIATOR: Initiator.BACKFILL.value, TAG_SHOP: shop,
            **_range_tags(shop, start, end)}
    return Launch(f"backfill {shop} {start}..{end}", tags, None)


def replay_launch(shop: str, start: date, end: date, run_id: str) -> Launch:
    """Re-parse what run ``run_id`` archived for ``shop`` over the same days, without Shopify."""
    tags = {TAG_MODE: Mode.REPLAY.value, TAG_INITIATOR: Initiator.USER.value, TAG_SHOP: shop,
            TAG_REPLAY_OF: run_id}
    if start == end:
        return Launch(f"replay {shop} {start} of {run_id}", tags, partition_key(start, shop))
    return Launch(f"replay {shop} {start}..{end} of {run_id}", {**tags, **_range_tags(shop, start, end)}, None)


# The longest month: a range no longer than it is run whole.
ONE_RUN_DAYS = 31


def month_ranges(start: date, end: date) -> list[tuple[date, date]]:
    """``start..end`` as the pieces the CLI runs one by one: the first and last day of each.

    A range of at most ``ONE_RUN_DAYS`` days is one piece. A longer one is cut at calendar
    month ends. The CLI's backfill runs one ranged run per piece (``backfill_launch``), in
    date order. A month per run bounds what one run plans and holds (a 10-year range in
    one run was 27,909 step materializations and minutes of silence before the first),
    gives a progress line per month, and a re-run after a failure resumes at the failed
    month. A short range crossing a month end stays whole: it holds no more than a month
    does, and cutting it would cost a second bulk operation, catalog fetch, set of checks
    and run for a few days (a 30-day backfill of 1M orders: docs/benchmarks.md, session 12).
    """
    if (end - start).days < ONE_RUN_DAYS:
        return [(start, end)] if start <= end else []
    pieces = []
    first = start
    while first <= end:
        next_month = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        last = min(end, next_month - timedelta(days=1))
        pieces.append((first, last))
        first = last + timedelta(days=1)
    return pieces

