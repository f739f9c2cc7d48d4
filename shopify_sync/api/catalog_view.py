"""What the staff API shows of the product catalog: freshness per shop, and a line's current variant."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from shopify_sync.api.schemas import CatalogFreshness, LineItem
from shopify_sync.warehouse import catalog


def freshness(engine: sa.Engine, shops: Sequence[str], now: datetime) -> dict[str, CatalogFreshness]:
    states = catalog.states(engine, shops)
    counts = catalog.variant_counts(engine, shops)
    out = {}
    for shop in shops:
        st, (variants, deleted) = states[shop], counts[shop]
        out[shop] = CatalogFreshness(
            shop=shop, watermark_at=st.watermark_at, full_refresh_at=st.full_refresh_at, synced_at=st.updated_at,
            lag_seconds=max(0.0, round((now - st.updated_at).total_seconds(), 3)) if st.updated_at else None,
            variants=variants, deleted_variants=deleted)
    return out


def with_catalog(engine: sa.Engine, shop: str, lines: list[LineItem]) -> list[LineItem]:
    """The lines with their variant's current SKU, stock and deletion flag from the catalog."""
    known = catalog.variants(engine, shop, [li.variant_id for li in lines if li.variant_id is not None])
    out = []
    for li in lines:
        v = known.get(li.variant_id) if li.variant_id is not None else None
        if v is None:
            out.append(li)
        else:
            out.append(li.model_copy(update={"catalog_sku": v.sku, "inventory_quantity": v.inventory_quantity,
                                             "variant_deleted": v.deleted}))
    return out
