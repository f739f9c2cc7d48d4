"""SPEC §5 metrics computed straight from the emulator's dataset (exact Decimals).

Deliberately independent of ``shopify_sync.metrics`` and of the warehouse: the
pipeline's output is compared with what the definitions say it must be.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from typing import Any


def counted(order: Any) -> bool:
    return not order.test and order.cancelled_at is None


def sales(orders: list[Any], shop: str, day: date) -> dict[tuple[int, int | None], dict[str, Any]]:
    """``measurement_sales`` rows of ``day`` keyed by (product_id, variant_id)."""
    out: dict[tuple[int, int | None], dict[str, Any]] = {}
    order_sets: dict[tuple[int, int | None], set[int]] = defaultdict(set)
    for o in orders:
        if not counted(o) or o.processed_at.date() != day:
            continue
        for li in o.line_items:
            if li.product_id is None:
                continue
            key = (li.product_id, li.variant_id)
            row = out.setdefault(key, {"shop": shop, "sku": li.sku, "currency_code": o.currency_code,
                                       "units_ordered": 0, "units_net": 0,
                                       "gross_sales": Decimal(0), "net_sales": Decimal(0)})
            row["units_ordered"] += li.quantity
            row["units_net"] += li.current_quantity
            row["gross_sales"] += li.quantity * li.original_unit_price
            row["net_sales"] += li.current_quantity * li.discounted_unit_price
            if li.current_quantity > 0:
                order_sets[key].add(o.id)
    for key, row in out.items():
        row["orders"] = len(order_sets[key])
    return out


def performance(orders: list[Any], day: date) -> dict[int, dict[str, Any]]:
    """``measurement_performance`` as of ``day`` keyed by product_id."""
    out: dict[int, dict[str, Any]] = {}
    for o in orders:
        if not counted(o):
            continue
        d = o.processed_at.date()
        if not day - timedelta(days=29) <= d <= day:
            continue
        in7 = d >= day - timedelta(days=6)
        for li in o.line_items:
            if li.product_id is None:
                continue
            row = out.setdefault(li.product_id, {"units_7d": 0, "net_sales_7d": Decimal(0), "o7": set(),
                                                 "units_30d": 0, "net_sales_30d": Decimal(0), "o30": set()})
            net = li.current_quantity * li.discounted_unit_price
            row["units_30d"] += li.current_quantity
            row["net_sales_30d"] += net
            if li.current_quantity > 0:
                row["o30"].add(o.id)
            if in7:
                row["units_7d"] += li.current_quantity
                row["net_sales_7d"] += net
                if li.current_quantity > 0:
                    row["o7"].add(o.id)
    for row in out.values():
        row["orders_7d"] = len(row.pop("o7"))
        row["orders_30d"] = len(row.pop("o30"))
    return out


def dataset_coverage(orders: list[Any]) -> dict[str, int]:
    """How many of the edge cases the dataset holds (a test asserts they are present)."""
    return {
        "test": sum(1 for o in orders if o.test),
        "cancelled": sum(1 for o in orders if o.cancelled_at is not None),
        "refunded": sum(1 for o in orders if o.refunds),
        "no_product_lines": sum(1 for o in orders for li in o.line_items if li.product_id is None),
    }
