"""``GET /api/ingest/runs`` (telemetry) and ``POST /api/performance-metrics/sync`` (launch)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from shopify_sync.api import telemetry_view
from shopify_sync.api.deps import Backends, backends, check_shop
from shopify_sync.api.errors import ErrorResponse
from shopify_sync.api.launcher import DagsterLauncher
from shopify_sync.api.schemas import IngestRuns, LaunchedRun, SyncLaunch
from shopify_sync.timeutil import utcnow

router = APIRouter(tags=["ingest"])


@router.get("/api/ingest/runs", response_model=IngestRuns, summary="Recent sync runs from telemetry, newest first")
def ingest_runs(
    b: Annotated[Backends, Depends(backends)],
    shop: Annotated[str | None, Query(description="restrict to one shop code")] = None,
    days: Annotated[int, Query(ge=1, le=90, description="look back this many UTC days (by run start)")] = 7,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> IngestRuns:
    check_shop(b.settings, shop)
    views = telemetry_view.recent_runs(b.store(), days=days, limit=limit, shop=shop)
    return IngestRuns(runs=views)


@router.post(
    "/api/performance-metrics/sync",
    response_model=SyncLaunch,
    status_code=202,
    summary="Launch the daily sync (yesterday's partition) for every shop through Dagster",
    responses={
        429: {"model": ErrorResponse, "description": "too many launches already waiting for the Dagster webserver; "
              "retry after the Retry-After seconds"},
        503: {"model": ErrorResponse, "description": "the Dagster webserver is unreachable or too slow"},
    },
)
async def launch_sync(
    request: Request,
    b: Annotated[Backends, Depends(backends)],
    shop: Annotated[list[str] | None, Query(description="only these shop codes (repeatable); default all")] = None,
    full_catalog: Annotated[bool, Query(
        description="also refetch the whole product catalog (every variant; variants Shopify no longer returns are "
        "marked deleted) instead of the variants changed since the catalog watermark, as `sync --full-catalog`")
    ] = False,
) -> SyncLaunch:
    shops = list(dict.fromkeys(shop)) if shop else list(b.settings.shop_codes)
    for code in shops:
        check_shop(b.settings, code)
    # The day just ended (UTC), the same partition the 06:00 schedule runs.
    day = utcnow().date() - timedelta(days=1)
    launcher: DagsterLauncher = request.app.state.launcher
    # Async on purpose: waiting on the webserver holds no worker thread the read endpoints need.
    launched = await launcher.launch_daily(day, shops, full_catalog=full_catalog)
    return SyncLaunch(date=day, full_catalog=full_catalog,
                      runs=[LaunchedRun(shop=r.shop, partition=r.partition, run_id=r.run_id,
                                        already_running=r.already_running, full_catalog=r.full_catalog)
                            for r in launched])
