"""Hand-built Shopify bulk JSONL for warehouse tests (exact control over versions and line order)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shopify_sync.warehouse.tables import measurement_day_sum, order_header, order_line_item, order_refund


def _money(amount: str, currency: str = "EUR") -> dict[str, Any]:
    return {"shopMoney": {"amount": amount, "currencyCode": currency}}


@dataclass
class Line:
    id: int
    quantity: int = 1
    current_quantity: int | None = None
    price: str = "10.0"
    discounted: str | None = None
    sku: str | None = "SKU-1"
    title: str = "Thing"
    product: int | None = 800
    variant: int | None = 900

    def obj(self, parent: int) -> dict[str, Any]:
        cq = self.quantity if self.current_quantity is None else self.current_quantity
        disc = self.discounted or self.price
        return {
            "id": f"gid://shopify/LineItem/{self.id}", "sku": self.sku, "title": self.title,
            "quantity": self.quantity, "currentQuantity": cq,
            "originalUnitPriceSet": _money(self.price), "discountedUnitPriceAfterAllDiscountsSet": _money(disc),
            "discountedTotalSet": _money(str(round(float(disc) * self.quantity, 2))),
            "variant": None if self.variant is None else {"id": f"gid://shopify/ProductVariant/{self.variant}"},
            "product": None if self.product is None else {"id": f"gid://shopify/Product/{self.product}"},
            "__parentId": f"gid://shopify/Order/{parent}",
        }


@dataclass
class Ord:
    id: int
    updated_at: str = "2026-11-20T10:00:00Z"
    financial: str = "PAID"
    fulfillment: str = "UNFULFILLED"
    total: str = "10.0"
    refunded: str = "0.0"
    cancelled_at: str | None = None
    test: bool = False
    processed_at: str = "2026-11-20T09:00:01Z"
    lines: list[Line] = field(default_factory=list)
    refunds: list[tuple[int, str, str]] = field(default_factory=list)  # (id, createdAt, amount)

    def obj(self) -> dict[str, Any]:
        return {
            "id": f"gid://shopify/Order/{self.id}", "name": f"#{self.id}", "createdAt": "2026-11-20T09:00:00Z",
            "updatedAt": self.updated_at, "processedAt": self.processed_at, "cancelledAt": self.cancelled_at,
            "test": self.test, "currencyCode": "EUR", "displayFinancialStatus": self.financial,
            "displayFulfillmentStatus": self.fulfillment,
            "currentTotalPriceSet": _money(self.total), "currentSubtotalPriceSet": _money(self.total),
            "currentTotalDiscountsSet": _money("0.0"), "currentTotalTaxSet": _money("1.9"),
            "currentShippingPriceSet": _money("0.0"), "totalRefundedSet": _money(self.refunded),
            "refunds": [{"id": f"gid://shopify/Refund/{rid}", "createdAt": at, "totalRefundedSet": _money(amt)}
                        for rid, at, amt in self.refunds],
        }


def dumps(obj: dict[str, Any]) -> str:
    # Shopify escapes "/" as "\/" (Ruby's encoder); parsers must cope.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).replace("/", "\\/")


def write(path: Path, orders: list[Ord], *, shuffle_seed: int | None = None, page: int = 3) -> Path:
    """Ungrouped layout: orders in pages, each page's children after it, round-robin;
    with ``shuffle_seed`` each child lands anywhere after its parent."""
    out: list[str] = []
    if shuffle_seed is None:
        for start in range(0, len(orders), page):
            batch = orders[start:start + page]
            out.extend(dumps(o.obj()) for o in batch)
            queues = [[li.obj(o.id) for li in o.lines] for o in batch]
            while any(queues):
                for q in queues:
                    if q:
                        out.append(dumps(q.pop(0)))
    else:
        rng = random.Random(shuffle_seed)
        for o in orders:
            out.append(dumps(o.obj()))
        for o in orders:
            parent_pos = next(i for i, s in enumerate(out) if f'Order\\/{o.id}"' in s and '"name"' in s)
            for li in o.lines:
                out.insert(rng.randint(parent_pos + 1, len(out)), dumps(li.obj(o.id)))
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


def snapshot(engine: Engine, *, with_synced_at: bool = False) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the three order tables, ordered by key (synced_at left out unless asked)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in (order_header, order_line_item, order_refund):
            cols = [c for c in table.columns if with_synced_at or c.name != "synced_at"]
            keys = [c for c in table.primary_key.columns]
            out[table.name] = [tuple(r) for r in conn.execute(sa.select(*cols).order_by(*keys))]
    return out


def clear(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in (order_header, order_line_item, order_refund, measurement_day_sum):
            conn.execute(table.delete())
