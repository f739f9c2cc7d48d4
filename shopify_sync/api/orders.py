"""``GET /orders`` (keyset pagination) and ``GET /orders/{order_id}``."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query

from shopify_sync.api.catalog_view import with_catalog
from shopify_sync.api.deps import (
    Backends,
    IsoDate,
    backends,
    check_range,
    check_shop,
    day_end_exclusive,
    day_start,
)
from shopify_sync.api.errors import ApiError
from shopify_sync.api.schemas import LineItem, Order, OrderDetail, OrderPage, Refund, money_str
from shopify_sync.timeutil import as_utc, parse_utc_or_none
from shopify_sync.warehouse import tables

router = APIRouter(tags=["orders"])

MAX_LIMIT = 500
MAX_ID = 2**63 - 1  # BIGINT
_CURSOR_VERSION = 1


# What a cursor is bound to: shop, start and end as the request gave them.
Filters = list[str | None]


def _sort_key(h: sa.Table) -> sa.ColumnElement[datetime]:
    # processedAt is non-null in Shopify; created_at is only a guard so a row with a
    # null processed_at still has a place in the order instead of falling out of every page.
    return sa.func.coalesce(h.c.processed_at, h.c.created_at)


def encode_cursor(sort_value: datetime, shop: str, order_id: int, filters: Filters) -> str:
    payload = {"v": _CURSOR_VERSION, "p": sort_value.isoformat(), "s": shop, "o": order_id, "f": filters}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, filters: Filters) -> tuple[datetime, str, int]:
    """Opaque to clients; a cursor is only valid with the filters it was issued for."""
    bad = ApiError(400, "bad_cursor", "cursor is malformed; use the next_cursor of a previous page")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
        if not isinstance(payload, dict) or payload.get("v") != _CURSOR_VERSION:
            raise bad
        sort_value = as_utc(datetime.fromisoformat(payload["p"]))
        shop, order_id = payload["s"], payload["o"]
        if not isinstance(shop, str) or not isinstance(order_id, int) or isinstance(order_id, bool):
            raise bad
        if not 0 <= order_id <= MAX_ID or len(shop) > 32:
            raise bad
    # OverflowError: a forged offset at the ends of the calendar (0001-01-01T00:00:00+05:00)
    # has no UTC datetime.
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError, OverflowError):
        raise bad from None
    if payload.get("f") != filters:
        raise ApiError(400, "bad_cursor", "cursor was issued for other filters (shop, start, end)")
    return sort_value, shop, order_id


def order_from_row(row: sa.RowMapping) -> Order:
    """An ``order_header`` row as the API shows it: instants in aware UTC, money as text."""
    return Order(
        shop=row["shop"],
        order_id=int(row["order_id"]),
        order_name=row["order_name"],
        test=bool(row["test"]),
        currency_code=row["currency_code"],
        financial_status=row["financial_status"],
        fulfillment_status=row["fulfillment_status"],
        created_at=parse_utc_or_none(row["created_at"]),
        updated_at=parse_utc_or_none(row["updated_at"]),
        processed_at=parse_utc_or_none(row["processed_at"]),
        cancelled_at=parse_utc_or_none(row["cancelled_at"]),
        synced_at=parse_utc_or_none(row["synced_at"]),
        total_price=money_str(row["total_price"]),
        subtotal_price=money_str(row["subtotal_price"]),
        total_discounts=money_str(row["total_discounts"]),
        total_tax=money_str(row["total_tax"]),
        total_shipping=money_str(row["total_shipping"]),
        total_refunded=money_str(row["total_refunded"]),
    )


@router.get("/orders", response_model=OrderPage, summary="Orders, newest processed first, cursor-paginated")
def list_orders(
    b: Annotated[Backends, Depends(backends)],
    shop: Annotated[str | None, Query(description="shop code (SHOPIFY_SHOPS)")] = None,
    start: Annotated[IsoDate | None, Query(description="first UTC day of processed_at (inclusive)")] = None,
    end: Annotated[IsoDate | None, Query(description="last UTC day of processed_at (inclusive)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")] = 50,
    cursor: Annotated[str | None, Query(max_length=1000, description="next_cursor of the previous page")] = None,
) -> OrderPage:
    check_shop(b.settings, shop)
    check_range(start, end)
    filters: Filters = [shop, start.isoformat() if start else None, end.isoformat() if end else None]
    after = decode_cursor(cursor, filters) if cursor else None
    h = tables.order_header
    key = _sort_key(h)
    stmt = sa.select(h, key.label("_sort")).order_by(key.desc(), h.c.shop.asc(), h.c.order_id.asc())
    if shop is not None:
        stmt = stmt.where(h.c.shop == shop)
    if start is not None:
        stmt = stmt.where(key >= sa.bindparam(None, day_start(start), type_=h.c.processed_at.type))
    if end is not None:
        stmt = stmt.where(key < sa.bindparam(None, day_end_exclusive(end), type_=h.c.processed_at.type))
    if after is not None:
        c_sort, c_shop, c_order = after
        c_param = sa.bindparam(None, c_sort, type_=h.c.processed_at.type)
        # Keyset on (sort desc, shop asc, order_id asc): stable under concurrent inserts,
        # no OFFSET scans, and no duplicates or gaps between pages.
        stmt = stmt.where(
            sa.or_(
                key < c_param,
                sa.and_(key == c_param, h.c.shop > c_shop),
                sa.and_(key == c_param, h.c.shop == c_shop, h.c.order_id > c_order),
            )
        )
    stmt = stmt.limit(limit + 1)
    with b.engine().connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    page, more = rows[:limit], len(rows) > limit
    next_cursor = None
    if more and page:
        last = page[-1]
        next_cursor = encode_cursor(as_utc(last["_sort"]), last["shop"], int(last["order_id"]), filters)
    return OrderPage(orders=[order_from_row(r) for r in page], next_cursor=next_cursor)


@router.get("/orders/{order_id}", response_model=OrderDetail,
            summary="One order with its line items and refunds",
            responses={409: {"description": "the id exists in several shops; pass `shop`"}})
def get_order(
    b: Annotated[Backends, Depends(backends)],
    order_id: Annotated[int, Path(ge=1, le=MAX_ID, description="numeric tail of the Shopify order GID")],
    shop: Annotated[str | None, Query(description="shop code, needed when the id exists in several shops")] = None,
) -> OrderDetail:
    check_shop(b.settings, shop)
    t = tables
    h, li, rf = t.order_header, t.order_line_item, t.order_refund
    stmt = sa.select(h).where(h.c.order_id == order_id).order_by(h.c.shop)
    if shop is not None:
        stmt = stmt.where(h.c.shop == shop)
    with b.engine().connect() as conn:
        headers = conn.execute(stmt.limit(10)).mappings().all()
        if not headers:
            where = f" in shop {shop}" if shop else ""
            raise ApiError(404, "order_not_found", f"order {order_id} not found{where}")
        if len(headers) > 1:
            shops = ", ".join(r["shop"] for r in headers)
            raise ApiError(409, "ambiguous_order", f"order {order_id} exists in shops {shops}; pass shop=<code>")
        header = headers[0]
        lines = conn.execute(
            sa.select(li).where(li.c.shop == header["shop"], li.c.order_id == order_id).order_by(li.c.line_item_id)
        ).mappings().all()
        refunds = conn.execute(
            sa.select(rf).where(rf.c.shop == header["shop"], rf.c.order_id == order_id)
            .order_by(rf.c.created_at, rf.c.refund_id)
        ).mappings().all()
    return OrderDetail(
        **order_from_row(header).model_dump(),
        line_items=with_catalog(b.engine(), str(header["shop"]), [
            LineItem(
                line_item_id=int(r["line_item_id"]),
                product_id=r["product_id"],
                variant_id=r["variant_id"],
                sku=r["sku"],
                title=r["title"],
                quantity=int(r["quantity"] or 0),
                current_quantity=int(r["current_quantity"] or 0),
                currency_code=r["currency_code"],
                original_unit_price=money_str(r["original_unit_price"]),
                discounted_unit_price=money_str(r["discounted_unit_price"]),
                discounted_total=money_str(r["discounted_total"]),
            )
            for r in lines
        ]),
        refunds=[
            Refund(refund_id=int(r["refund_id"]), created_at=parse_utc_or_none(r["created_at"]),
                   total_refunded=money_str(r["total_refunded"]))
            for r in refunds
        ],
    )
