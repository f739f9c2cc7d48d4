"""Which days' stored measurements a catalog chunk makes stale (SPEC §5 Restatement).

``measurement_performance`` carries the catalog's product title and ``measurement_sales`` the
catalog's SKU for a line that has none. When a chunk changes either, every day with a line
of that product (or of that SKU-less variant) is marked pending in ``measurement_dirty``,
in the chunk's own transaction (a crash loses no marking), so the next metrics step
rewrites the stored objects that show the old value. A first full refresh marks every day
with sales of a product whose catalog title differs from its line title: a one-off rewrite.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopify_sync.warehouse import dirty
from shopify_sync.warehouse.catalog.mapping import ProductRow, VariantRow
from shopify_sync.warehouse.tables import order_header, order_line_item, product, product_variant

# Ids per IN list: well under every backend's bound-parameter limit.
_BATCH = 500


def _batches(ids: Sequence[int]) -> Iterable[list[int]]:
    for i in range(0, len(ids), _BATCH):
        yield list(ids[i:i + _BATCH])


def _not_older(incoming: datetime, stored: datetime | None) -> bool:
    return stored is None or incoming >= stored.replace(tzinfo=None)


def _retitled(conn: Connection, shop: str, products: Sequence[ProductRow]) -> list[int]:
    """Products whose title the upsert will change (a new product has no lines to restate)."""
    newest: dict[int, ProductRow] = {}
    for r in products:
        if r.product_id not in newest or r.updated_at >= newest[r.product_id].updated_at:
            newest[r.product_id] = r
    out = []
    for ids in _batches(sorted(newest)):
        for pid, title, at in conn.execute(sa.select(product.c.product_id, product.c.title, product.c.catalog_updated_at)
                                           .where(product.c.shop == shop, product.c.product_id.in_(ids))):
            row = newest[int(pid)]
            if title != row.title and _not_older(row.updated_at, at):
                out.append(int(pid))
    return out


def _new_skus(conn: Connection, shop: str, variants: Sequence[VariantRow]) -> list[int]:
    """Variants whose catalog SKU the upsert will change or set for the first time."""
    by_id = {v.variant_id: v for v in variants}
    stored: dict[int, tuple[str | None, datetime | None]] = {}
    pv = product_variant
    for ids in _batches(sorted(by_id)):
        stored.update({int(v): (s, at) for v, s, at in conn.execute(
            sa.select(pv.c.variant_id, pv.c.sku, pv.c.updated_at).where(pv.c.shop == shop, pv.c.variant_id.in_(ids)))})
    out = []
    for vid, row in by_id.items():
        sku, at = stored.get(vid, (None, None))
        if row.sku != sku and _not_older(row.updated_at, at):
            out.append(vid)
    return out


def _day(conn: Connection) -> sa.ColumnElement[object]:
    # SQLite and MySQL have DATE(); a CAST to DATE on SQLite would give a number.
    if conn.dialect.name == "postgresql":
        return sa.cast(order_header.c.processed_at, sa.Date)
    return sa.func.date(order_header.c.processed_at)


def _line_days(conn: Connection, shop: str, where: sa.ColumnElement[bool]) -> set[date]:
    li, oh = order_line_item, order_header
    stmt = (sa.select(_day(conn)).distinct()
            .select_from(li.join(oh, sa.and_(oh.c.shop == li.c.shop, oh.c.order_id == li.c.order_id)))
            .where(li.c.shop == shop, oh.c.processed_at.is_not(None), where))
    out: set[date] = set()
    for (d,) in conn.execute(stmt):
        if isinstance(d, str):
            out.add(date.fromisoformat(d))
        elif isinstance(d, date):
            out.add(d)
    return out


def mark_stale_days(conn: Connection, shop: str, variants: Sequence[VariantRow],
                    products: Sequence[ProductRow]) -> int:
    """Before the chunk's upserts, in its transaction: mark the days its changes make stale."""
    days: set[date] = set()
    for ids in _batches(_retitled(conn, shop, products)):
        days |= _line_days(conn, shop, order_line_item.c.product_id.in_(ids))
    for ids in _batches(_new_skus(conn, shop, variants)):
        days |= _line_days(conn, shop, sa.and_(order_line_item.c.variant_id.in_(ids),
                                               order_line_item.c.sku.is_(None)))
    return dirty.mark_days(conn, shop, days)
