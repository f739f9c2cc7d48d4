"""``GET /analytics/commerce/daily`` and ``GET /analytics/products/top``: what the dashboard
charts and lists that the overview cannot answer (a day-by-day series, the 7-day figures)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from shopify_sync.api.deps import (
    Backends,
    IsoDate,
    backends,
    check_shop,
    day_end_exclusive,
    day_start,
    report_range,
)
from shopify_sync.api.errors import ApiError
from shopify_sync.api.schemas import MoneyStr, money_str
from shopify_sync.warehouse import series

router = APIRouter(tags=["analytics"])

MAX_RANGE_DAYS = 731
# The 7-day daily rate is "up" or "down" against the 30-day rate beyond this margin.
TREND_MARGIN = Decimal("0.05")


class DayPoint(BaseModel):
    date: date
    orders: int = Field(description="counted orders processed that UTC day")
    units: int = Field(description="net units: sum of current_quantity over product lines")
    net_sales: MoneyStr


class DailySeries(BaseModel):
    shop: str
    currency_code: str
    days: list[DayPoint] = Field(description="every day of the range, oldest first; days without orders are 0")


class Daily(BaseModel):
    start: date
    end: date
    series: list[DailySeries] = Field(description="one per (shop, currency) with counted orders in the range")


class TopProductRow(BaseModel):
    product_id: int
    title: str | None
    units_7d: int
    net_sales_7d: MoneyStr
    units_30d: int
    net_sales_30d: MoneyStr
    orders_30d: int
    trend: str = Field(description="'up', 'down' or 'flat': the 7-day daily net sales against the 30-day "
                                   "daily net sales (5% margin); 'new' when the 30 days hold nothing before")
    trend_pct: float | None = Field(description="(7-day daily rate / 30-day daily rate - 1) x 100, one decimal; "
                                                "null when the 30-day net sales are 0")


class ShopTopProducts(BaseModel):
    shop: str
    metrics_as_of: date | None = Field(description="the day the shop's product figures were computed as of")
    products: list[TopProductRow] = Field(description="highest 30-day net sales first")


class TopProducts(BaseModel):
    shops: list[ShopTopProducts]


def _zero_filled(start: date, end: date, points: list[series.DayTotals]) -> list[DayPoint]:
    by_day = {p.day: p for p in points}
    out = []
    for i in range((end - start).days + 1):
        day = start + timedelta(days=i)
        p = by_day.get(day)
        out.append(DayPoint(date=day, orders=p.orders if p else 0, units=p.units_net if p else 0,
                            net_sales=money_str(p.net_sales if p else 0) or "0.00"))
    return out


@router.get("/analytics/commerce/daily", response_model=Daily,
            summary="Daily orders, units and net sales per shop and currency (the overview's figures by day)")
def commerce_daily(
    b: Annotated[Backends, Depends(backends)],
    start: Annotated[IsoDate | None, Query(description="first UTC day (inclusive); default end - 29 days")] = None,
    end: Annotated[IsoDate | None, Query(description="last UTC day (inclusive); default today (UTC)")] = None,
    shop: Annotated[str | None, Query(description="restrict to one shop code")] = None,
) -> Daily:
    start, end = report_range(b.settings, shop, start, end)
    if (end - start).days >= MAX_RANGE_DAYS:
        raise ApiError(400, "invalid_range", f"a daily series spans at most {MAX_RANGE_DAYS} days")
    totals = series.daily_totals(b.engine(), day_start(start), day_end_exclusive(end), shop)
    groups: dict[tuple[str, str], list[series.DayTotals]] = {}
    for t in totals:
        groups.setdefault((t.shop, t.currency_code or ""), []).append(t)
    return Daily(start=start, end=end, series=[
        DailySeries(shop=s, currency_code=cur, days=_zero_filled(start, end, pts))
        for (s, cur), pts in sorted(groups.items())
    ])


def trend_of(net_7d: Decimal, net_30d: Decimal) -> tuple[str, float | None]:
    if net_30d <= 0:
        return ("new" if net_7d > 0 else "flat"), None
    ratio = (net_7d / 7) / (net_30d / 30) - 1
    word = "up" if ratio > TREND_MARGIN else "down" if ratio < -TREND_MARGIN else "flat"
    return word, round(float(ratio) * 100, 1)


def _row(p: series.ProductFigures) -> TopProductRow:
    trend, pct = trend_of(p.net_sales_7d, p.net_sales_30d)
    return TopProductRow(product_id=p.product_id, title=p.title, units_7d=p.units_7d,
                         net_sales_7d=money_str(p.net_sales_7d) or "0.00", units_30d=p.units_30d,
                         net_sales_30d=money_str(p.net_sales_30d) or "0.00", orders_30d=p.orders_30d,
                         trend=trend, trend_pct=pct)


@router.get("/analytics/products/top", response_model=TopProducts,
            summary="Each shop's products with the highest 30-day net sales, with 7-day figures and a trend")
def products_top(
    b: Annotated[Backends, Depends(backends)],
    shop: Annotated[str | None, Query(description="restrict to one shop code")] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="products per shop")] = 10,
) -> TopProducts:
    check_shop(b.settings, shop)
    out = []
    for code in [shop] if shop else b.settings.shop_codes:
        figures = series.product_figures(b.engine(), code)
        ranked = sorted(figures, key=lambda p: (-p.net_sales_30d, -p.net_sales_7d, p.product_id))[:limit]
        as_of = max((p.metrics_as_of for p in figures if p.metrics_as_of), default=None)
        out.append(ShopTopProducts(shop=code, metrics_as_of=as_of, products=[_row(p) for p in ranked]))
    return TopProducts(shops=out)
