"""One catalog JSONL line (a ``productVariants`` node with its product inline) → typed rows.

Pure: no database. Every value is checked here, so a bad line fails the load with its
line number and the reason, before any row of its chunk is written, on every backend alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from shopify_sync.timeutil import naive_utc
from shopify_sync.warehouse.ingest.model import IngestError
from shopify_sync.warehouse.tables import product, product_variant
from shopify_sync.warehouse.types import to_money

_GID = "gid://shopify/"


@dataclass(frozen=True)
class VariantRow:
    variant_id: int
    product_id: int
    sku: str | None
    title: str | None
    price: Decimal | None
    compare_at_price: Decimal | None
    inventory_quantity: int | None
    updated_at: datetime  # naive UTC


@dataclass(frozen=True)
class ProductRow:
    product_id: int
    title: str | None
    vendor: str | None
    product_type: str | None
    status: str | None
    updated_at: datetime  # naive UTC


def _width(column: object) -> int | None:
    return getattr(getattr(column, "type", None), "length", None)


_TEXT_LIMITS = {
    ("variant", "sku"): _width(product_variant.c.sku), ("variant", "title"): _width(product_variant.c.title),
    ("product", "title"): _width(product.c.title), ("product", "vendor"): _width(product.c.vendor),
    ("product", "product_type"): _width(product.c.product_type), ("product", "status"): _width(product.c.status),
}


def gid_number(value: object, kind: str, what: str) -> int:
    """The numeric tail of ``gid://shopify/<kind>/<n>``."""
    prefix = f"{_GID}{kind}/"
    if not isinstance(value, str) or not value.startswith(prefix) or not value[len(prefix):].isdigit():
        raise ValueError(f"{what} is not a {kind} GID: {value!r}")
    number = int(value[len(prefix):])
    if number >= 2**63:
        raise ValueError(f"{what} {value!r} does not fit in a BIGINT")
    return number


def _text(obj: dict[str, object], key: str, owner: str, column: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{owner}.{key} is not a string: {value!r}")
    value = value.replace("\x00", "")  # PostgreSQL text cannot hold U+0000; dropped everywhere alike
    limit = _TEXT_LIMITS[(owner, column)]
    if limit is not None and len(value) > limit:
        raise ValueError(f"{owner}.{key} is longer than {limit} characters")
    return value


def _time(value: object, what: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{what} is missing or not a timestamp: {value!r}")
    try:
        return naive_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except (TypeError, ValueError):
        raise ValueError(f"{what} is not an ISO timestamp: {value!r}") from None


def _money(value: object, what: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, dict):  # a MoneyV2 object, should a later version send one
        value = value.get("amount")
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ValueError(f"{what} is not a decimal amount: {value!r}")
    return to_money(value)


def _quantity(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not -(2**63) <= value < 2**63:
        raise ValueError(f"inventoryQuantity is not a 64-bit integer: {value!r}")
    return value


def parse_line(text: str | bytes, line: int) -> tuple[VariantRow, ProductRow]:
    """A variant line → its rows; ``IngestError`` naming ``line`` when anything is off."""
    try:
        obj = json.loads(text)
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        if "__parentId" in obj:
            raise ValueError("unexpected child line (__parentId): the catalog query has no nested connection")
        parent = obj.get("product")
        if not isinstance(parent, dict):
            raise ValueError("variant without its product")
        product_id = gid_number(parent.get("id"), "Product", "product.id")
        variant = VariantRow(
            variant_id=gid_number(obj.get("id"), "ProductVariant", "id"), product_id=product_id,
            sku=_text(obj, "sku", "variant", "sku") or None, title=_text(obj, "title", "variant", "title"),
            price=_money(obj.get("price"), "price"), compare_at_price=_money(obj.get("compareAtPrice"), "compareAtPrice"),
            inventory_quantity=_quantity(obj.get("inventoryQuantity")), updated_at=_time(obj.get("updatedAt"), "updatedAt"))
        prod = ProductRow(
            product_id=product_id, title=_text(parent, "title", "product", "title"),
            vendor=_text(parent, "vendor", "product", "vendor"),
            product_type=_text(parent, "productType", "product", "product_type"),
            status=_text(parent, "status", "product", "status"),
            updated_at=_time(parent.get("updatedAt"), "product.updatedAt"))
    except (ValueError, TypeError) as exc:
        raise IngestError(str(exc), line) from None
    return variant, prod
