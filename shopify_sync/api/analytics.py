"""``GET /analytics/commerce/overview`` and ``GET /analytics/pipelines``."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query

from shopify_sync.api import telemetry_view
from shopify_sync.api.deps import (
    Backends,
    IsoDate,
    backends,
    check_range,
    check_shop,
    day_end_exclusive,
    day_start,
    days_before,
)
from shopify_sync.api.schemas import (
    Overview,
    OverviewRow,
    PipelineFailure,
    PipelineHealth,
    Pipelines,
    money_str,
)
from shopify_sync.warehouse import jobs, tables

log = logging.getLogger(__name__)
router = APIRouter(tags=["analytics"])

DEFAULT_RANGE_DAYS = 30
MAX_FAILURES = 5


def _sum_money(expr: sa.ColumnElement[Any], money_type: sa.types.TypeEngine[Any]) -> sa.ColumnElement[Any]:
    # type_coerce gives the aggregate the Money type's result processing, so a backend
    # that stores scaled integers (SQLite) reads the SUM back as an exact Decimal.
    return sa.type_coerce(sa.func.coalesce(sa.func.sum(expr), 0), money_type)


def _to_decimal(value: Any) -> Decimal:
    if value is None:
        return Decimal(0)
    return value if isinstance(value, Decimal) else Decimal(str(value))


def overview_rows(engine: sa.Engine, start: date, end: date, shop: str | None) -> list[OverviewRow]:
    """SPEC §5 figures per (shop, currency), aggregated in SQL over counted orders.

    Two aggregates (orders/refunds per header, sales per line) because joining lines
    would multiply header sums by the number of lines.
    """
    t = tables
    h, li = t.order_header, t.order_line_item
    dt = h.c.processed_at.type
    counted = sa.and_(
        h.c.test.is_(False),
        h.c.cancelled_at.is_(None),
        h.c.processed_at >= sa.bindparam(None, day_start(start), type_=dt),
        h.c.processed_at < sa.bindparam(None, day_end_exclusive(end), type_=dt),
    )
    if shop is not None:
        counted = sa.and_(counted, h.c.shop == shop)

    money_type = h.c.total_refunded.type
    header_q = (
        sa.select(
            h.c.shop, h.c.currency_code,
            sa.func.count().label("orders"),
            _sum_money(h.c.total_refunded, money_type).label("refunds"),
            sa.func.coalesce(sa.func.sum(sa.case((h.c.total_refunded > 0, 1), else_=0)), 0).label("refunded_orders"),
        )
        .where(counted)
        .group_by(h.c.shop, h.c.currency_code)
    )
    line_money = li.c.original_unit_price.type
    line_q = (
        sa.select(
            h.c.shop, h.c.currency_code,
            sa.func.coalesce(sa.func.sum(li.c.current_quantity), 0).label("units"),
            sa.func.coalesce(sa.func.sum(li.c.quantity), 0).label("units_ordered"),
            _sum_money(li.c.quantity * li.c.original_unit_price, line_money).label("gross_sales"),
            _sum_money(li.c.current_quantity * li.c.discounted_unit_price, line_money).label("net_sales"),
        )
        .select_from(li.join(h, sa.and_(li.c.shop == h.c.shop, li.c.order_id == h.c.order_id)))
        .where(counted, li.c.product_id.is_not(None))
        .group_by(h.c.shop, h.c.currency_code)
    )
    with engine.connect() as conn:
        headers = conn.execute(header_q).mappings().all()
        lines = {(r["shop"], r["currency_code"]): r for r in conn.execute(line_q).mappings().all()}

    out = []
    for r in sorted(headers, key=lambda r: (r["shop"], r["currency_code"] or "")):
        ln = lines.get((r["shop"], r["currency_code"]))
        orders = int(r["orders"])
        net = _to_decimal(ln["net_sales"]) if ln else Decimal(0)
        aov = (net / orders).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN) if orders else Decimal(0)
        out.append(OverviewRow(
            shop=r["shop"],
            currency_code=r["currency_code"] or "",
            orders=orders,
            units=int(ln["units"]) if ln else 0,
            units_ordered=int(ln["units_ordered"]) if ln else 0,
            gross_sales=money_str(_to_decimal(ln["gross_sales"]) if ln else Decimal(0)) or "0.00",
            net_sales=money_str(net) or "0.00",
            average_order_value=money_str(aov) or "0.00",
            refunds=money_str(_to_decimal(r["refunds"])) or "0.00",
            refunded_orders=int(r["refunded_orders"]),
        ))
    return out


@router.get("/analytics/commerce/overview", response_model=Overview,
            summary="Sales KPIs per shop and currency over a date range (SPEC §5 counted orders)")
def commerce_overview(
    b: Annotated[Backends, Depends(backends)],
    start: Annotated[IsoDate | None, Query(description="first UTC day (inclusive); default end - 29 days")] = None,
    end: Annotated[IsoDate | None, Query(description="last UTC day (inclusive); default today (UTC)")] = None,
    shop: Annotated[str | None, Query(description="restrict to one shop code")] = None,
) -> Overview:
    check_shop(b.settings, shop)
    end = end or datetime.now(UTC).date()
    start = start or days_before(end, DEFAULT_RANGE_DAYS - 1)
    check_range(start, end)
    return Overview(start=start, end=end, shops=overview_rows(b.engine(), start, end, shop))


def pipeline_health(b: Backends, now: datetime) -> list[PipelineHealth]:
    shops = list(b.settings.shop_codes)
    stats, failed_jobs = jobs.pipeline_stats(b.engine(), shops,
                                             failure_limit=MAX_FAILURES * max(len(shops), 1) * 4)
    failures: dict[str, list[PipelineFailure]] = {s: [] for s in shops}
    seen: set[str] = set()
    for f in failed_jobs:
        if f.shop in failures and f.run_id not in seen:
            seen.add(str(f.run_id))
            failures[f.shop].append(PipelineFailure(
                run_id=f.run_id, job_type=f.job_type, at=f.at, step=None,
                error=telemetry_view.parse_error(f.last_error),
            ))
    # Runs that died before creating a sync_job (bad config, resource start-up) only
    # exist in telemetry, written by the run itself or by the run-status sensor.
    for run in telemetry_view.recent_runs(b.store(), limit=200):
        if run.status == "failed" and run.shop in failures and run.run_id not in seen:
            seen.add(run.run_id)
            failures[run.shop].append(PipelineFailure(
                run_id=run.run_id, job_type=run.job_type, at=run.updated_at, step=run.last_step,
                error=run.error,
            ))

    out = []
    for shop in shops:
        st = stats[shop]
        wm_at = st.watermark_at
        fails = sorted(failures[shop], key=lambda f: f.at or datetime.min.replace(tzinfo=UTC), reverse=True)
        out.append(PipelineHealth(
            shop=shop,
            watermark_at=wm_at,
            last_success_at=st.last_success_at,
            last_success_run_id=st.last_success_run_id,
            # Clamped: a watermark ahead of this server's clock (skew) is "no lag", not negative.
            lag_seconds=max(0.0, round((now - wm_at).total_seconds(), 3)) if wm_at else None,
            open_jobs=st.open_jobs,
            recent_failures=fails[:MAX_FAILURES],
        ))
    return out


@router.get("/analytics/pipelines", response_model=Pipelines,
            summary="Pipeline health per shop: last success, lag, watermark, recent failures")
def pipelines(b: Annotated[Backends, Depends(backends)]) -> Pipelines:
    now = datetime.now(UTC)
    return Pipelines(generated_at=now, shops=pipeline_health(b, now))

