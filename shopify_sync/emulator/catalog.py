"""The emulated shops' product catalog as ``productVariants`` serves it, and its changes.

Built on ``dataset.catalog`` (the products and variants the orders sell) plus what a
real catalog has and the orders do not show:

- vendor, product type, status (a few DRAFT / ARCHIVED) and ``updatedAt`` per product;
  compare-at prices and stock per variant;
- variants without a SKU: every fifth product has an extra "Sample" variant (never sold);
- deleted variants: every seventh product with several variants has lost its last one
  (its sales stay in the orders; ``productVariants`` no longer returns it);
- stock that moves between runs: the first variant of the first ``HOT_PRODUCTS`` products
  changes stock every ``HOT_PERIOD_SECONDS`` of the emulator's clock (``updatedAt`` = the
  change), so a second sync finds a few changed variants and no others;
- ``set_stock`` / ``delete_variant`` / ``restore_variant`` for tests (``updatedAt`` bumped).

Everything is derived from (seed, shop) and the clock, so two processes agree.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from shopify_sync.emulator import jsonl
from shopify_sync.emulator.dataset import catalog, fmt_ts, q2
from shopify_sync.emulator.search import compile_query

VENDORS = ("Nordwerk", "Kestrel & Co", "Maple Studio", "Fjord Supply")
HOT_PRODUCTS = 3
HOT_PERIOD_SECONDS = 600
SAMPLE_VARIANT = 8  # variant slot of the SKU-less "Sample" variant (dataset variants use 0..3)


@dataclass(frozen=True)
class CatalogProduct:
    id: int
    title: str
    vendor: str
    product_type: str
    status: str
    updated_at: datetime


@dataclass(frozen=True)
class CatalogVariant:
    id: int
    product: CatalogProduct
    title: str
    sku: str | None
    price: Decimal
    compare_at_price: Decimal | None
    inventory_quantity: int
    updated_at: datetime


def _seeded(seed: int, shop: str, anchor: datetime) -> tuple[list[CatalogVariant], set[int]]:
    """The shop's variants as seeded, and the ids of the seeded deleted ones."""
    rng = random.Random(f"catalog-extra:{seed}:{shop}")
    base_time = anchor - timedelta(days=2)
    out: list[CatalogVariant] = []
    deleted: set[int] = set()
    for i, p in enumerate(catalog(seed, shop)):
        status = "ARCHIVED" if i % 13 == 12 else "DRAFT" if i % 9 == 8 else "ACTIVE"
        product = CatalogProduct(p.id, p.title, VENDORS[i % len(VENDORS)], " ".join(p.title.split()[1:-1]),
                                 status, base_time - timedelta(hours=i))
        for v_index, v in enumerate(p.variants):
            compare = q2(v.price * Decimal("1.25")) if i % 3 == 0 and v_index == 0 else None
            out.append(CatalogVariant(v.id, product, v.title, v.sku, v.price, compare, rng.randrange(0, 200),
                                      product.updated_at - timedelta(minutes=v_index)))
        if i % 7 == 6 and len(p.variants) > 1:
            deleted.add(p.variants[-1].id)
        if i % 5 == 4:
            sample_id = p.variants[0].id - p.variants[0].id % 10 + SAMPLE_VARIANT
            out.append(CatalogVariant(sample_id, product, "Sample", None, Decimal("0.00"), None,
                                      rng.randrange(0, 20), product.updated_at))
    return out, deleted


class EmulatorCatalog:
    """Every shop's current catalog: the seeded one, the clock's stock moves and test changes."""

    def __init__(self, seed: int, anchor: datetime, clock: Callable[[], datetime]) -> None:
        self._seed = seed
        self._anchor = anchor
        self._clock = clock
        self._lock = threading.Lock()
        self._changed: dict[str, dict[int, CatalogVariant]] = {}
        self._deleted: dict[str, set[int]] = {}

    def _base(self, shop: str) -> tuple[dict[int, CatalogVariant], set[int]]:
        variants, deleted = _seeded(self._seed, shop, self._anchor)
        return {v.id: v for v in variants}, deleted

    def _hot(self, v: CatalogVariant, hot_ids: set[int]) -> CatalogVariant:
        if v.id not in hot_ids:
            return v
        tick = int(self._clock().timestamp()) // HOT_PERIOD_SECONDS
        at = datetime.fromtimestamp(tick * HOT_PERIOD_SECONDS, tz=v.updated_at.tzinfo)
        if at <= v.updated_at:
            return v
        return replace(v, inventory_quantity=max(0, v.inventory_quantity + 40 - tick % 80), updated_at=at)

    def variants(self, shop: str) -> list[CatalogVariant]:
        """What ``productVariants`` returns now, by id."""
        base, deleted = self._base(shop)
        hot_ids = {p.variants[0].id for p in catalog(self._seed, shop)[:HOT_PRODUCTS]}
        with self._lock:
            changed = dict(self._changed.get(shop, {}))
            deleted = deleted | self._deleted.get(shop, set())
        current = [changed.get(vid) or self._hot(v, hot_ids) for vid, v in base.items()]
        return sorted((v for v in current if v.id not in deleted), key=lambda v: v.id)

    def variant(self, shop: str, variant_id: int) -> CatalogVariant:
        base, _ = self._base(shop)
        with self._lock:
            found = self._changed.get(shop, {}).get(variant_id) or base.get(variant_id)
        if found is None:
            raise KeyError(f"shop {shop} has no variant {variant_id}")
        return found

    def set_stock(self, shop: str, variant_id: int, quantity: int, at: datetime | None = None) -> CatalogVariant:
        changed = replace(self.variant(shop, variant_id), inventory_quantity=quantity, updated_at=at or self._clock())
        with self._lock:
            self._changed.setdefault(shop, {})[variant_id] = changed
        return changed

    def rename_product(self, shop: str, product_id: int, title: str, at: datetime | None = None) -> None:
        """The product's new title, on each of its variants (their ``updatedAt`` moves with it)."""
        when = at or self._clock()
        own = [v for v in self.variants(shop) if v.product.id == product_id]
        if not own:
            raise KeyError(f"shop {shop} has no product {product_id}")
        product = replace(own[0].product, title=title, updated_at=when)
        with self._lock:
            for v in own:
                self._changed.setdefault(shop, {})[v.id] = replace(v, product=product, updated_at=when)

    def delete_variant(self, shop: str, variant_id: int) -> None:
        self.variant(shop, variant_id)  # KeyError for an unknown one
        with self._lock:
            self._deleted.setdefault(shop, set()).add(variant_id)

    def seeded_deleted(self, shop: str) -> set[int]:
        return self._base(shop)[1]

    def root_nodes(self, shop: str, search: str | None) -> Iterator[dict[str, object]]:
        """``productVariants(query:)`` nodes, sorted by id (the sync asks for ``sortKey: ID``)."""
        pred = compile_query(search)
        for v in self.variants(shop):
            if pred(v):  # type: ignore[arg-type]  # time terms read ``updated_at`` of any object
                yield raw_catalog_variant(v)


def raw_catalog_variant(v: CatalogVariant) -> dict[str, object]:
    p = v.product
    return {
        "__typename": "ProductVariant", "id": jsonl.gid("ProductVariant", v.id), "legacyResourceId": str(v.id),
        "sku": v.sku, "title": v.title, "price": jsonl.amount(v.price),
        "compareAtPrice": None if v.compare_at_price is None else jsonl.amount(v.compare_at_price),
        "inventoryQuantity": v.inventory_quantity, "updatedAt": fmt_ts(v.updated_at),
        "displayName": f"{p.title} - {v.title}",
        "product": {"__typename": "Product", "id": jsonl.gid("Product", p.id), "title": p.title, "vendor": p.vendor,
                    "productType": p.product_type, "status": p.status, "updatedAt": fmt_ts(p.updated_at)},
    }
