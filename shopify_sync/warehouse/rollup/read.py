"""The per-day sums the measurements are built from, read from ``measurement_day_sum``.

Same frames as ``warehouse.daily_sums`` computes from the lines (``VARIANT_DAY_SCHEMA``,
``PRODUCT_DAY_SCHEMA``; a test holds them equal), from a few hundred rows per day instead
of every line: the currency rows of a key fold into its currency count and range, its
latest line's SKU or title, and its sums (an order's lines share one currency, and a key
whose lines do not is refused downstream as mixed-currency anyway).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shopify_sync.warehouse.daily_sums import PRODUCT_DAY_SCHEMA, VARIANT_DAY_SCHEMA, day_ranges
from shopify_sync.warehouse.rollup.lines import NO_VARIANT, PRODUCT_ROW
from shopify_sync.warehouse.tables import measurement_day_sum as _T
from shopify_sync.warehouse.types import MONEY_SCALE

_ROW_SCHEMA = pl.Schema({
    "day": pl.Date(), "product_id": pl.Int64(), "variant_key": pl.Int64(), "currency_code": pl.String(),
    "orders": pl.Int64(), "units_ordered": pl.Int64(), "units_net": pl.Int64(),
    "gross_sales": pl.Decimal(38, MONEY_SCALE), "net_sales": pl.Decimal(38, MONEY_SCALE),
    "latest_at": pl.Datetime("us"), "latest_line_id": pl.Int64(), "latest_text": pl.String(),
})


def _rows(engine: Engine, shop: str, days: Iterable[date], products: bool) -> pl.DataFrame:
    ranges = day_ranges(days)
    if not ranges:
        return pl.DataFrame(schema=_ROW_SCHEMA)
    grain = _T.c.variant_key == PRODUCT_ROW if products else _T.c.variant_key != PRODUCT_ROW
    stmt = sa.select(*[_T.c[c] for c in _ROW_SCHEMA]).where(
        _T.c.shop == shop, grain, sa.or_(*[_T.c.day.between(a, b) for a, b in ranges]))
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(stmt)]
    return pl.DataFrame(rows, schema=_ROW_SCHEMA, orient="row")


def _folded(rows: pl.DataFrame, key: list[str], sums: list[str], text: str) -> pl.DataFrame:
    real = pl.col("currency_code").filter(pl.col("currency_code") != "")
    latest = [pl.col("latest_at"), pl.col("latest_line_id")]
    return rows.group_by(key).agg(
        *[pl.col(c).sum() for c in sums],
        real.n_unique().cast(pl.Int64).alias("n_cur"), real.min().alias("cur_low"), real.max().alias("cur_high"),
        pl.col("latest_text").sort_by(latest).last().alias(text),
    )


def variant_day_sums(engine: Engine, shop: str, days: Iterable[date]) -> pl.DataFrame:
    """Per (day, product_id, variant_id) over ``days`` (``VARIANT_DAY_SCHEMA``)."""
    rows = _rows(engine, shop, days, products=False)
    folded = _folded(rows, ["day", "product_id", "variant_key"],
                     ["orders", "units_ordered", "units_net", "gross_sales", "net_sales"], "sku")
    return folded.with_columns(
        pl.when(pl.col("variant_key") != NO_VARIANT).then(pl.col("variant_key")).alias("variant_id"),
    ).select(list(VARIANT_DAY_SCHEMA)).cast(VARIANT_DAY_SCHEMA)


def product_day_sums(engine: Engine, shop: str, days: Iterable[date]) -> pl.DataFrame:
    """Per (day, product_id) over ``days`` (``PRODUCT_DAY_SCHEMA``)."""
    rows = _rows(engine, shop, days, products=True)
    folded = _folded(rows, ["day", "product_id"], ["units_net", "net_sales", "orders"], "title")
    return folded.select(list(PRODUCT_DAY_SCHEMA)).cast(PRODUCT_DAY_SCHEMA)
