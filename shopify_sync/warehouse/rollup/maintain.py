"""Keeping ``measurement_day_sum`` equal to the counted lines, chunk by chunk.

An ingest chunk knows which orders it writes. The sums of their counted lines as stored
before the writes (``before``) and after them (``after``) differ exactly by what the
chunk changed, because every figure is a sum over orders and an order has one day: the
distinct-order counts add up across disjoint sets of orders too. So the chunk's
transaction reads the stored rows of the days concerned, adds ``after - before`` and
writes those days back: no line outside the chunk's orders is read.

The latest line of a row (its SKU or title) is not a sum. It moves forward when a newer
line arrives; when the stored latest line is one of the chunk's own and is gone or no
longer the latest (its order cancelled, moved to another day, its line deleted), the row's
day is rebuilt from its lines, as is any day whose sums would come out negative (the
table disagreeing with the lines, which only a write outside the ingest can cause).

Two ingests of one shop may run at once (a daily sync beside a backfill): every chunk
transaction first writes the shop's ``shop_ingest_lock`` row (``lock_shop``), so the chunks
of a shop commit one after another and each reads the other's committed rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from decimal import Decimal

import polars as pl
import sqlalchemy as sa
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from shopify_sync.warehouse.rollup.lines import KEY, LATEST, SUMS, SUMS_SCHEMA, lines_of_days, sums
from shopify_sync.warehouse.tables import measurement_day_sum as _T
from shopify_sync.warehouse.tables import shop_ingest_lock
from shopify_sync.warehouse.types import MONEY_SCALE

_MONEY = ("gross_sales", "net_sales")


def lock_shop(conn: Connection, shop: str) -> None:
    """First statement of a chunk's transaction: hold ``shop``'s row until the commit."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        pg = pg_insert(shop_ingest_lock).values(shop=shop)
        conn.execute(pg.on_conflict_do_update(index_elements=["shop"], set_={"shop": pg.excluded.shop}))
    elif dialect == "sqlite":
        lite = sqlite_insert(shop_ingest_lock).values(shop=shop)
        conn.execute(lite.on_conflict_do_update(index_elements=["shop"], set_={"shop": lite.excluded.shop}))
    else:
        my = mysql_insert(shop_ingest_lock).values(shop=shop)
        conn.execute(my.on_duplicate_key_update(shop=my.inserted.shop))


def _stored(conn: Connection, shop: str, days: Sequence[date]) -> pl.DataFrame:
    """The stored rows of these days, money in 10^-4 units."""
    rows = conn.execute(sa.select(*[_T.c[c] for c in SUMS_SCHEMA]).where(_T.c.shop == shop, _T.c.day.in_(days))).all()
    frame = pl.DataFrame([tuple(r) for r in rows], schema={
        **SUMS_SCHEMA, **{c: pl.Decimal(38, MONEY_SCALE) for c in _MONEY}}, orient="row")
    return frame.with_columns(pl.col(c).to_physical().cast(pl.Int64) for c in _MONEY)


def _later(a: str, b: str) -> pl.Expr:
    """Row ``a``'s latest line is at least row ``b``'s (by processed_at, then line id)."""
    at_a, at_b = pl.col(f"{a}latest_at"), pl.col(f"{b}latest_at")
    return (at_a > at_b) | ((at_a == at_b) & (pl.col(f"{a}latest_line_id") >= pl.col(f"{b}latest_line_id")))


def merge(stored: pl.DataFrame, before: pl.DataFrame, after: pl.DataFrame) -> tuple[pl.DataFrame, list[date]]:
    """``stored + after - before`` per row; rows left without lines dropped. Also the days to
    rebuild from their lines (a latest line that cannot be told, a negative sum)."""
    keys = pl.concat([f.select(KEY) for f in (stored, before, after)]).unique()
    renamed = {p: f.rename({c: f"{p}{c}" for c in (*SUMS, *LATEST)}) for p, f in (("a_", after), ("b_", before))}
    m = keys.join(stored, on=KEY, how="left").join(renamed["a_"], on=KEY, how="left").join(
        renamed["b_"], on=KEY, how="left")
    m = m.with_columns(
        (pl.col(c).fill_null(0) + pl.col(f"a_{c}").fill_null(0) - pl.col(f"b_{c}").fill_null(0)).alias(c)
        for c in SUMS)
    stored_latest_touched = pl.col("latest_at").is_not_null() & pl.col("b_latest_at").is_not_null() & (
        pl.col("latest_at") == pl.col("b_latest_at")) & (pl.col("latest_line_id") == pl.col("b_latest_line_id"))
    has_a, has_s = pl.col("a_latest_at").is_not_null(), pl.col("latest_at").is_not_null()
    # "a": the chunk's newest line is the row's latest; "s": the stored one stays; null: unknown.
    pick = (pl.when(stored_latest_touched).then(pl.when(has_a & _later("a_", "b_")).then(pl.lit("a")))
            .when(~has_s).then(pl.when(has_a).then(pl.lit("a")))
            .when(has_a & _later("a_", "")).then(pl.lit("a"))
            .otherwise(pl.lit("s")))
    negative = pl.any_horizontal(pl.col(c) < 0 for c in ("line_count", "orders", "units_ordered"))
    # Lines the table never counted (a row subtracted that is not stored) also mean disagreement.
    unknown_row = pl.col("b_line_count").is_not_null() & ~has_s
    m = m.with_columns(pick.alias("pick"), (negative | unknown_row).alias("broken")).with_columns(
        pl.when(pl.col("pick") == "a").then(pl.col(f"a_{c}")).when(pl.col("pick") == "s").then(pl.col(c)).alias(c)
        for c in LATEST)
    broken = pl.col("broken") | ((pl.col("line_count") > 0) & pl.col("pick").is_null())
    rebuild = sorted(set(m.filter(broken).get_column("day").to_list()))
    rows = m.filter((pl.col("line_count") > 0) & ~pl.col("day").is_in(pl.Series(rebuild, dtype=pl.Date).implode()))
    return rows.select(list(SUMS_SCHEMA)), rebuild


def _money(units: int) -> Decimal:
    return Decimal(units).scaleb(-MONEY_SCALE)


def _replace_days(conn: Connection, shop: str, days: Sequence[date], rows: pl.DataFrame) -> None:
    """The rows of ``days`` become ``rows`` (SUMS_SCHEMA, money in 10^-4 units)."""
    if days:
        conn.execute(_T.delete().where(_T.c.shop == shop, _T.c.day.in_(days)))
    if rows.height:
        values = [{**r, "shop": shop, **{c: _money(r[c]) for c in _MONEY}}
                  for r in rows.sort(list(KEY)).iter_rows(named=True)]
        conn.execute(_T.insert(), values)


def rebuild_days(conn: Connection, shop: str, days: Iterable[date]) -> int:
    """Recompute these days' rows from the stored lines; returns the rows written."""
    wanted = sorted(set(days))
    if not wanted:
        return 0
    frames = [sums(lines_of_days(conn, shop, d, d)) for d in wanted]  # a day at a time bounds memory
    rows = pl.concat(frames) if frames else pl.DataFrame(schema=SUMS_SCHEMA)
    _replace_days(conn, shop, wanted, rows)
    return rows.height


def apply(conn: Connection, shop: str, before: pl.DataFrame, after: pl.DataFrame) -> None:
    """Inside the chunk's transaction: the sums of the chunk's orders' counted lines go from
    ``before`` to ``after`` (``LINES_SCHEMA`` frames)."""
    b, a = sums(before), sums(after)
    days = sorted(set(b.get_column("day").to_list()) | set(a.get_column("day").to_list()))
    if not days:
        return
    rows, rebuild = merge(_stored(conn, shop, days), b, a)
    _replace_days(conn, shop, days, rows)
    rebuild_days(conn, shop, rebuild)


def rebuild(engine: Engine, shop: str) -> int:
    """Recompute every day of ``shop`` from its lines (a repair; tests that write lines directly)."""
    from shopify_sync.warehouse.tables import order_header as oh

    with engine.begin() as conn:
        bounds = conn.execute(sa.select(sa.func.min(oh.c.processed_at), sa.func.max(oh.c.processed_at))
                              .where(oh.c.shop == shop)).one()
        conn.execute(_T.delete().where(_T.c.shop == shop))
        if bounds[0] is None:
            return 0
        first, last = bounds[0].date(), bounds[1].date()
        return rebuild_days(conn, shop, [first + timedelta(days=i) for i in range((last - first).days + 1)])


def mismatched_rows(engine: Engine, shop: str, day: date) -> int:
    """How many of ``day``'s rows differ from a recomputation from its lines (0: they agree).
    Read-only: the asset check's look at the table itself."""
    with engine.connect() as conn:
        want = sums(lines_of_days(conn, shop, day, day))
        got = _stored(conn, shop, [day])
    key = list(KEY)
    joined = want.join(got, on=key, how="full", suffix="_stored", coalesce=True, nulls_equal=True)
    same = pl.all_horizontal(pl.col(c).eq_missing(pl.col(f"{c}_stored")) for c in (*SUMS, *LATEST))
    return joined.filter(~same).height
