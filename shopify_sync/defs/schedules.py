"""Daily schedule: 06:00 UTC, the day just ended, one run per shop (SPEC §3)."""

from __future__ import annotations

from datetime import UTC, timedelta

import dagster as dg

from shopify_sync.launch.plan import daily_launch
from shopify_sync.vocab import Initiator


def build_daily_schedule(job: dg.UnresolvedAssetJobDefinition, shop_codes: tuple[str, ...]) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="shopify_sync_daily",
        job=job,
        cron_schedule="0 6 * * *",
        execution_timezone="UTC",
        # On by default: a deployment should sync without someone toggling it in the UI.
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Every day at 06:00 UTC: the incremental sync for the day just ended, one run per shop "
        "(runs of different shops go in parallel, at most one per shop at a time).",
    )
    def shopify_sync_daily(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
        tick = context.scheduled_execution_time
        if tick is None:
            raise ValueError("the daily schedule needs a scheduled execution time")
        day = (tick.astimezone(UTC) - timedelta(days=1)).date()
        launches = [daily_launch(code, day, Initiator.CRON) for code in shop_codes]
        return [
            # One run per shop per day: a re-evaluated tick never launches a duplicate.
            dg.RunRequest(run_key=f"daily:{code}:{day.isoformat()}", partition_key=launch.partition_key,
                          tags=launch.tags)
            for code, launch in zip(shop_codes, launches, strict=True)
        ]

    return shopify_sync_daily
