"""The catalog checks see what they look for (on frames and rows built by hand)."""

from __future__ import annotations

import polars as pl

from shopify_sync.defs.catalog_checks import sku_mismatches


def frame(rows: list[tuple[int | None, str | None]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"variant_id": pl.Int64, "sku": pl.Utf8}, orient="row")


def test_sku_mismatches() -> None:
    skus = {70: "MUG-1", 80: "PEN-1"}
    owners = {"MUG-1": {70}, "PEN-1": {80}}
    assert sku_mismatches(frame([(70, "MUG-1"), (80, "PEN-1"), (None, None), (90, "OLD")]), skus, owners) == []
    bad = sku_mismatches(frame([(70, None), (90, "PEN-1")]), skus, owners)
    assert len(bad) == 2 and "no SKU" in bad[0] and "PEN-1" in bad[1]
