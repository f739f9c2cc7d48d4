"""The catalog's SQL: ``product_variant``, the catalog columns of ``product``, and ``catalog_state``.

Upserts are guarded like the orders': a row's data is never replaced by an older
``updatedAt`` (a replayed or overlapping file cannot regress fresher data), but a
variant seen again always gets ``synced_at`` stamped and ``deleted_at`` cleared, which
is what a full refresh's deletion sweep relies on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from shopify_sync.timeutil import as_utc_or_none, naive_utc, utcnow
from shopify_sync.warehouse.catalog.mapping import ProductRow, VariantRow
from shopify_sync.warehouse.tables import catalog_state, product, product_variant

_VARIANT_DATA = ("product_id", "sku", "title", "price", "compare_at_price", "inventory_quantity")
_PRODUCT_DATA = ("title", "vendor", "product_type", "status")


def _guarded(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, object]], data: Sequence[str],
             version: str, always: Sequence[str]) -> None:
    """INSERT … ON CONFLICT: ``data`` and ``version`` move only to a newer-or-equal ``version``;
    ``always`` columns take the incoming value whatever the version says (taken from the
    incoming row, not bound again: pymysql's executemany cannot bind in the UPDATE part)."""
    dialect = conn.dialect.name
    if dialect in {"mysql", "mariadb"}:
        my = mysql_insert(table)
        newer = sa.or_(table.c[version].is_(None), my.inserted[version] >= table.c[version])
        # MySQL assigns left to right and later expressions see earlier assignments:
        # the version column goes last, so every guard compares with the stored value.
        sets: list[tuple[str, object]] = [(c, sa.case((newer, my.inserted[c]), else_=table.c[c])) for c in data]
        sets += [(c, my.inserted[c]) for c in always]
        sets.append((version, sa.case((newer, my.inserted[version]), else_=table.c[version])))
        conn.execute(my.on_duplicate_key_update(sets), rows)
        return
    if dialect == "postgresql":
        ins = pg_insert(table)
    elif dialect == "sqlite":
        ins = sqlite_insert(table)  # type: ignore[assignment]
    else:
        raise ValueError(f"unsupported database backend {dialect!r} for the catalog upsert")
    newer_or_new = sa.or_(table.c[version].is_(None), ins.excluded[version] >= table.c[version])
    set_: dict[str, object] = {c: sa.case((newer_or_new, ins.excluded[c]), else_=table.c[c]) for c in (*data, version)}
    set_.update({c: ins.excluded[c] for c in always})
    keys = [c for c in table.primary_key.columns]
    conn.execute(ins.on_conflict_do_update(index_elements=keys, set_=set_), rows)


def upsert_variants(conn: Connection, shop: str, rows: Iterable[VariantRow], synced_at: datetime, *,
                    seen: bool = True) -> int:
    """``seen``: the rows are what Shopify returns now (stamped, undeleted); else (a replay) a
    known variant keeps its ``synced_at`` and ``deleted_at``."""
    values = [{"shop": shop, "variant_id": r.variant_id, "product_id": r.product_id, "sku": r.sku, "title": r.title,
               "price": r.price, "compare_at_price": r.compare_at_price, "inventory_quantity": r.inventory_quantity,
               "updated_at": r.updated_at, "synced_at": naive_utc(synced_at), "deleted_at": None} for r in rows]
    if values:
        _guarded(conn, product_variant, values, _VARIANT_DATA, "updated_at", ("synced_at", "deleted_at") if seen else ())
    return len(values)


def upsert_products(conn: Connection, shop: str, rows: Iterable[ProductRow]) -> int:
    """The catalog's columns of ``product`` (title included); a new product starts with 0 figures."""
    newest: dict[int, ProductRow] = {}
    for r in rows:
        if r.product_id not in newest or r.updated_at >= newest[r.product_id].updated_at:
            newest[r.product_id] = r
    values = [{"shop": shop, "product_id": r.product_id, "title": r.title, "vendor": r.vendor,
               "product_type": r.product_type, "status": r.status, "catalog_updated_at": r.updated_at,
               "units_7d": 0, "net_sales_7d": Decimal(0), "orders_7d": 0, "units_30d": 0,
               "net_sales_30d": Decimal(0), "orders_30d": 0} for r in newest.values()]
    if values:
        _guarded(conn, product, values, _PRODUCT_DATA, "catalog_updated_at", ())
    return len(values)


def mark_deleted(engine: Engine, shop: str, *, not_seen_since: datetime, at: datetime | None = None) -> int:
    """After a full refresh: variants it did not return are deleted in Shopify (kept, flagged)."""
    pv = product_variant
    with engine.begin() as conn:
        return int(conn.execute(
            pv.update().where(pv.c.shop == shop, pv.c.deleted_at.is_(None), pv.c.synced_at < naive_utc(not_seen_since))
            .values(deleted_at=naive_utc(at or utcnow()))).rowcount or 0)


def refresh_product_stock(engine: Engine, shop: str) -> int:
    """``product.inventory_quantity`` = the sum over its variants that are not deleted."""
    pv, p = product_variant, product
    total = (sa.select(sa.func.coalesce(sa.func.sum(pv.c.inventory_quantity), 0))
             .where(pv.c.shop == p.c.shop, pv.c.product_id == p.c.product_id, pv.c.deleted_at.is_(None))
             .scalar_subquery())
    with engine.begin() as conn:
        return int(conn.execute(p.update().where(p.c.shop == shop, p.c.catalog_updated_at.is_not(None))
                                .values(inventory_quantity=total)).rowcount or 0)


# -- the catalog's watermark ------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogState:
    watermark_at: datetime | None  # aware UTC
    full_refresh_at: datetime | None
    updated_at: datetime | None


def get_state(engine: Engine, shop: str) -> CatalogState:
    with engine.connect() as conn:
        row = conn.execute(sa.select(catalog_state).where(catalog_state.c.shop == shop)).mappings().first()
    if row is None:
        return CatalogState(None, None, None)
    return CatalogState(as_utc_or_none(row["watermark_at"]), as_utc_or_none(row["full_refresh_at"]),
                        as_utc_or_none(row["updated_at"]))


def states(engine: Engine, shops: Sequence[str]) -> dict[str, CatalogState]:
    """Every shop's catalog state (freshness in the API); a shop never synced gets empty values."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(catalog_state).where(catalog_state.c.shop.in_(list(shops)))).mappings().all()
    found = {str(r["shop"]): CatalogState(as_utc_or_none(r["watermark_at"]), as_utc_or_none(r["full_refresh_at"]),
                                          as_utc_or_none(r["updated_at"])) for r in rows}
    return {s: found.get(s, CatalogState(None, None, None)) for s in shops}


def advance_state(engine: Engine, shop: str, candidate: datetime | None, *, run_id: str | None,
                  full_refresh_at: datetime | None = None) -> CatalogState:
    """Watermark to ``max(old, candidate)`` (compared in SQL, never backwards); a completed
    full refresh is recorded with it."""
    now = naive_utc(utcnow())
    cs = catalog_state
    with engine.begin() as conn:
        if conn.execute(sa.select(cs.c.shop).where(cs.c.shop == shop)).first() is None:
            try:
                with conn.begin_nested():
                    conn.execute(cs.insert().values(shop=shop, watermark_at=None, full_refresh_at=None,
                                                    run_id=run_id, updated_at=now))
            except sa.exc.IntegrityError:
                pass  # another run inserted it first
        values: dict[str, object] = {"run_id": run_id, "updated_at": now}
        if full_refresh_at is not None:
            values["full_refresh_at"] = naive_utc(full_refresh_at)
        if candidate is not None:
            cand = naive_utc(candidate)
            values["watermark_at"] = sa.case(
                (sa.or_(cs.c.watermark_at.is_(None), cs.c.watermark_at < cand), cand), else_=cs.c.watermark_at)
        conn.execute(cs.update().where(cs.c.shop == shop).values(**values))
    return get_state(engine, shop)


def product_titles(engine: Engine, shop: str) -> dict[int, str | None]:
    """product id → the catalog's title, for the products the catalog knows (measurement_performance)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(product.c.product_id, product.c.title)
                            .where(product.c.shop == shop, product.c.catalog_updated_at.is_not(None))).all()
    return {int(pid): title for pid, title in rows}


def catalog_title(incoming: sa.ColumnElement[str | None]) -> sa.ColumnElement[str | None]:
    """For the metrics' product upsert: a product the catalog knows keeps the catalog's title;
    otherwise the line title it is given."""
    return sa.case((product.c.catalog_updated_at.is_(None), incoming), else_=product.c.title)
