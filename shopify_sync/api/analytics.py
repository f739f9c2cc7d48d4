"""``GET /analytics/commerce/overview`` and ``GET /analytics/pipelines``."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query

from shopify_sync.api import catalog_view, telemetry_view
from shopify_sync.api.deps import (
    Backends,
    IsoDate,
    backends,
    day_end_exclusive,
    day_start,
    report_range,
)
from shopify_sync.api.schemas import (
    AbandonedJob,
    IngestRun,
    Overview,
    OverviewRow,
    PipelineFailure,
    PipelineHealth,
    Pipelines,
    money_str,
)
from shopify_sync.timeutil import utcnow
from shopify_sync.warehouse import jobs, queries

log = logging.getLogger(__name__)
router = APIRouter(tags=["analytics"])

MAX_FAILURES = 5
STALE_AFTER = timedelta(seconds=jobs.STALE_JOB_SECONDS)
CENT = Decimal("0.01")


def _overview_row(t: queries.ShopCurrencyTotals) -> OverviewRow:
    aov = (t.net_sales / t.orders).quantize(CENT, rounding=ROUND_HALF_EVEN) if t.orders else Decimal(0)
    return OverviewRow(
        shop=t.shop,
        currency_code=t.currency_code or "",
        orders=t.orders,
        units=t.units_net,
        units_ordered=t.units_ordered,
        gross_sales=money_str(t.gross_sales) or "0.00",
        net_sales=money_str(t.net_sales) or "0.00",
        average_order_value=money_str(aov) or "0.00",
        refunds=money_str(t.refunds) or "0.00",
        refunded_orders=t.refunded_orders,
    )


def overview_rows(engine: sa.Engine, start: date, end: date, shop: str | None) -> list[OverviewRow]:
    """SPEC §5 figures per (shop, currency) over the counted orders processed from ``start`` to ``end``."""
    totals = queries.shop_currency_totals(engine, day_start(start), day_end_exclusive(end), shop)
    return [_overview_row(t) for t in totals]


@router.get("/analytics/commerce/overview", response_model=Overview,
            summary="Sales KPIs per shop and currency over a date range (SPEC §5 counted orders)")
def commerce_overview(
    b: Annotated[Backends, Depends(backends)],
    start: Annotated[IsoDate | None, Query(description="first UTC day (inclusive); default end - 29 days")] = None,
    end: Annotated[IsoDate | None, Query(description="last UTC day (inclusive); default today (UTC)")] = None,
    shop: Annotated[str | None, Query(description="restrict to one shop code")] = None,
) -> Overview:
    start, end = report_range(b.settings, shop, start, end)
    scope = [shop] if shop else list(b.settings.shop_codes)
    return Overview(start=start, end=end, shops=overview_rows(b.engine(), start, end, shop),
                    catalog=list(catalog_view.freshness(b.engine(), scope, utcnow()).values()))


def _abandoned(b: Backends, shops: list[str], runs: list[IngestRun], now: datetime) -> dict[str, list[AbandonedJob]]:
    """Each shop's open jobs that no live run works on: their run failed (a killed CLI run is
    failed by the next start; a dead worker by the run-status sensor) or went quiet too long."""
    failed_runs = {r.run_id for r in runs if r.status == "failed"}
    out: dict[str, list[AbandonedJob]] = {s: [] for s in shops}
    for job in jobs.open_jobs(b.engine(), shops):
        idle = now - job.updated_at if job.updated_at else None
        if job.run_id is not None and job.run_id in failed_runs:
            reason = "run_failed"
        elif idle is not None and idle > STALE_AFTER:
            reason = "stale"
        else:
            continue
        out[job.shop].append(AbandonedJob(
            run_id=job.run_id, job_type=job.job_type.value, partition_key=job.partition_key,
            status=job.status.value, updated_at=job.updated_at, reason=reason,
            age_seconds=max(0.0, round(idle.total_seconds(), 3)) if idle else 0.0,
        ))
    return out


def _failures(shops: list[str], failed_jobs: list[jobs.JobFailure],
              runs: list[IngestRun]) -> dict[str, list[PipelineFailure]]:
    """Each shop's failed runs, newest first: failed jobs, then runs only telemetry knows."""
    failures: dict[str, list[PipelineFailure]] = {s: [] for s in shops}
    seen: set[str] = set()
    seen_jobs: set[tuple[str, str]] = set()  # a run's orders and CATALOG jobs are listed apart
    for f in failed_jobs:
        if f.shop in failures and f.run_id is not None and (f.run_id, f.job_type) not in seen_jobs:
            seen.add(f.run_id)
            seen_jobs.add((f.run_id, f.job_type))
            failures[f.shop].append(PipelineFailure(
                run_id=f.run_id, job_type=f.job_type, at=f.at, step=None,
                error=telemetry_view.parse_error(f.last_error),
            ))
    # Runs that died before creating a sync_job (bad config, resource start-up) only
    # exist in telemetry, written by the run itself or by the run-status sensor.
    for run in runs:
        if run.status == "failed" and run.shop in failures and run.run_id not in seen:
            seen.add(run.run_id)
            failures[run.shop].append(PipelineFailure(
                run_id=run.run_id, job_type=run.job_type, at=run.updated_at, step=run.last_step,
                error=run.error,
            ))
    oldest = datetime.min.replace(tzinfo=UTC)
    return {shop: sorted(fails, key=lambda f: f.at or oldest, reverse=True) for shop, fails in failures.items()}


def pipeline_health(b: Backends, now: datetime) -> list[PipelineHealth]:
    shops = list(b.settings.shop_codes)
    stats, failed_jobs = jobs.pipeline_stats(b.engine(), shops,
                                             failure_limit=MAX_FAILURES * max(len(shops), 1) * 4)
    runs = telemetry_view.recent_runs(b.store(), limit=200)
    failures = _failures(shops, failed_jobs, runs)
    abandoned = _abandoned(b, shops, runs, now)
    catalogs = catalog_view.freshness(b.engine(), shops, now)
    out = []
    for shop in shops:
        st = stats[shop]
        wm_at = st.watermark_at
        out.append(PipelineHealth(
            shop=shop,
            watermark_at=wm_at,
            last_success_at=st.last_success_at,
            last_success_run_id=st.last_success_run_id,
            # Clamped: a watermark ahead of this server's clock (skew) is "no lag", not negative.
            lag_seconds=max(0.0, round((now - wm_at).total_seconds(), 3)) if wm_at else None,
            open_jobs=st.open_jobs,
            recent_failures=failures[shop][:MAX_FAILURES],
            abandoned_jobs=abandoned[shop],
            catalog=catalogs[shop],
        ))
    return out


@router.get("/analytics/pipelines", response_model=Pipelines,
            summary="Pipeline health per shop: last success, lag, watermark, recent failures, abandoned jobs")
def pipelines(b: Annotated[Backends, Depends(backends)]) -> Pipelines:
    now = utcnow()
    return Pipelines(generated_at=now, shops=pipeline_health(b, now))

