"""The one partitioning of every shopify_sync asset: UTC day × shop (SPEC §3).

Built from ``Settings`` rather than at import so tests and the CLI can build the
graph for any shop list; ``definitions.py`` builds it once from the environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from shopify_sync.config import Settings
from shopify_sync.launch.plan import DATE_DIM, SHOP_DIM, day_range_key

# One backfill policy for every partitioned asset: none. A Dagster backfill (the UI's
# launch dialog) is then one run per (day, shop): bounded runs, each carrying
# `dagster/partition/shop`, so the instance's one-run-per-shop limit (dagster.yaml)
# queues a shop's days one after another, in date order, behind the daily sync
# (which has a higher `dagster/priority`). Long ranges are the CLI's job: it runs a month
# per run (`launch.plan.month_ranges`). Why not `BackfillPolicy.multi_run(31)`: its
# ranged runs carry no shop tag, so one shop's months would run side by side; and
# Dagster 1.13's launch dialog compares the assets' policies by object identity, so
# any policy on more than one asset shows "using varying backfill policies".
BACKFILL_POLICY: dg.BackfillPolicy | None = None


def build_partitions_def(settings: Settings) -> dg.MultiPartitionsDefinition:
    """``date`` (daily, UTC, from ``SHOPIFY_SYNC_START_DATE``) × ``shop`` (``SHOPIFY_SHOPS``).

    Dagster tags every run of a multi-partitioned asset with ``dagster/partition/shop``,
    which is what the per-shop run concurrency limit in ``dagster.yaml`` keys on.
    """
    return dg.MultiPartitionsDefinition(
        {
            DATE_DIM: dg.DailyPartitionsDefinition(start_date=settings.start_date, timezone="UTC"),
            SHOP_DIM: dg.StaticPartitionsDefinition(list(settings.shop_codes)),
        }
    )


@dataclass(frozen=True)
class ShopDays:
    """The part of a (possibly ranged) run that concerns one shop."""

    shop: str
    days: tuple[date, ...]

    @property
    def first(self) -> date:
        return self.days[0]

    @property
    def last(self) -> date:
        return self.days[-1]

    @property
    def start(self) -> datetime:
        return datetime(self.first.year, self.first.month, self.first.day, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """Exclusive end: midnight after the last day."""
        return datetime(self.last.year, self.last.month, self.last.day, tzinfo=UTC) + timedelta(days=1)

    @property
    def key(self) -> str:
        """Stable identity of this slice of work, used to adopt an unfinished sync_job."""
        return day_range_key(self.first, self.last)


def split_by_shop(partition_keys: list[str] | tuple[str, ...]) -> list[ShopDays]:
    """Group a run's multi-partition keys (``<date>|<shop>``) by shop, days sorted.

    A single-run backfill over several shops arrives as one run per shop (Dagster
    splits the selection into one key range per shop), but a hand-made range may span
    shops; those are processed one after another, never interleaved.
    """
    by_shop: dict[str, set[date]] = {}
    for raw in partition_keys:
        mk = raw if isinstance(raw, dg.MultiPartitionKey) else None
        if mk is not None:
            day_s, shop = mk.keys_by_dimension[DATE_DIM], mk.keys_by_dimension[SHOP_DIM]
        else:
            parts = str(raw).split("|")
            if len(parts) != 2:
                raise ValueError(f"not a <date>|<shop> partition key: {raw!r}")
            day_s, shop = parts
        by_shop.setdefault(shop, set()).add(date.fromisoformat(day_s))
    return [ShopDays(shop, tuple(sorted(days))) for shop, days in sorted(by_shop.items())]


def shop_days_for_context(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> list[ShopDays]:
    """The shop/day slices of the current run (single partition or range)."""
    if not context.has_partition_key and not context.has_partition_key_range:
        raise ValueError("shopify_sync assets are partitioned by date and shop; launch a partition or a range")
    return split_by_shop(list(context.partition_keys))
