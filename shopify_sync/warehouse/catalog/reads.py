"""What the rest of the platform reads from the catalog: SKUs for the measurements,
current SKU and stock for the staff API, and the checks' queries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shopify_sync.warehouse.tables import product, product_variant


@dataclass(frozen=True)
class CatalogVariant:
    variant_id: int
    product_id: int
    sku: str | None
    inventory_quantity: int | None
    deleted: bool


def variant_skus(engine: Engine, shop: str) -> dict[int, str]:
    """variant id → the catalog's SKU, for variants that have one (deleted ones included:
    their sales still carry their key)."""
    pv = product_variant
    with engine.connect() as conn:
        rows = conn.execute(sa.select(pv.c.variant_id, pv.c.sku)
                            .where(pv.c.shop == shop, pv.c.sku.is_not(None))).all()
    return {int(v): str(s) for v, s in rows}


def variants(engine: Engine, shop: str, variant_ids: Iterable[int]) -> dict[int, CatalogVariant]:
    ids = sorted({int(v) for v in variant_ids})
    if not ids:
        return {}
    pv = product_variant
    with engine.connect() as conn:
        rows = conn.execute(sa.select(pv.c.variant_id, pv.c.product_id, pv.c.sku, pv.c.inventory_quantity,
                                      pv.c.deleted_at).where(pv.c.shop == shop, pv.c.variant_id.in_(ids))).all()
    return {int(r.variant_id): CatalogVariant(int(r.variant_id), int(r.product_id), r.sku,
                                              None if r.inventory_quantity is None else int(r.inventory_quantity),
                                              r.deleted_at is not None) for r in rows}


def variant_counts(engine: Engine, shops: Sequence[str]) -> dict[str, tuple[int, int]]:
    """shop → (variants, of which deleted)."""
    pv = product_variant
    with engine.connect() as conn:
        rows = conn.execute(sa.select(pv.c.shop, sa.func.count(), sa.func.count(pv.c.deleted_at))
                            .where(pv.c.shop.in_(list(shops))).group_by(pv.c.shop)).all()
    found = {str(s): (int(n), int(d)) for s, n, d in rows}
    return {s: found.get(s, (0, 0)) for s in shops}


def variants_without_product(engine: Engine, shops: Sequence[str], limit: int = 20) -> list[tuple[str, int, int]]:
    """(shop, variant id, product id) of variants whose product row is missing."""
    pv, p = product_variant, product
    query = (sa.select(pv.c.shop, pv.c.variant_id, pv.c.product_id)
             .select_from(pv.outerjoin(p, sa.and_(p.c.shop == pv.c.shop, p.c.product_id == pv.c.product_id)))
             .where(pv.c.shop.in_(list(shops)), p.c.product_id.is_(None))
             .order_by(pv.c.shop, pv.c.variant_id).limit(limit))
    with engine.connect() as conn:
        return [(str(s), int(v), int(pid)) for s, v, pid in conn.execute(query).all()]


def sku_owners(engine: Engine, shop: str) -> dict[str, set[int]]:
    """SKU → the catalog's variants carrying it (live ones only)."""
    pv = product_variant
    with engine.connect() as conn:
        rows = conn.execute(sa.select(pv.c.sku, pv.c.variant_id)
                            .where(pv.c.shop == shop, pv.c.sku.is_not(None), pv.c.deleted_at.is_(None))).all()
    owners: dict[str, set[int]] = {}
    for sku, vid in rows:
        owners.setdefault(str(sku), set()).add(int(vid))
    return owners
