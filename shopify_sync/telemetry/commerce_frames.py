"""COMMERCE_TELEMETRY lines built from the ingest's compact change frames, in polars.

A first load has one ``created`` event per order, millions for a big shop: building an
``OrderChange`` and a dict per event and ``json.dumps``-ing it took minutes of a backfill's
critical path. Here each stored chunk's frame (``warehouse.ingest.decide.CHANGES_SCHEMA``:
one row per changed order, a flag per kind) becomes its lines with column expressions.

The lines are byte for byte what ``write_commerce_events`` writes for the same changes
(``json.dumps(..., ensure_ascii=False)`` of ``_event_dict``: ``", "`` / ``": "``
separators, instants as ``iso_z``, money as ``str(Decimal)``), in the same order: the
frame's rows, and within a row created, status_changed, refunded, cancelled.
"""

from __future__ import annotations

import json
from decimal import Decimal

import polars as pl

from shopify_sync.telemetry.records import SHOP_CODE
from shopify_sync.vocab import ChangeKind

# ``previous_refunded_units`` counts 10^-4 units (``warehouse.types.MONEY_SCALE``; a
# constant here so the telemetry package does not import the warehouse's).
_UNITS_SCALE = 4
# Amounts whose ``str(Decimal(s))`` is ``s`` without its integer part's leading zeros:
# at most 6 decimals never turn into exponent notation. Anything else goes through Decimal.
_PLAIN_AMOUNT = r"^-?[0-9]+(\.[0-9]{1,6})?$"


def _text(col: str) -> pl.Expr:
    """A nullable string as JSON text; polars' encoder escapes exactly as ``json.dumps``
    with ``ensure_ascii=False`` (checked for every code point by the tests)."""
    return pl.struct(pl.col(col).alias("v")).struct.json_encode().str.strip_prefix('{"v":').str.strip_suffix("}")


def _instant(col: str) -> pl.Expr:
    """A naive-UTC datetime as ``iso_z`` writes it: microseconds only when there are some."""
    ts = pl.col(col)
    text = (pl.when(ts.dt.microsecond() == 0).then(ts.dt.strftime('"%Y-%m-%dT%H:%M:%SZ"'))
            .otherwise(ts.dt.strftime('"%Y-%m-%dT%H:%M:%S%.6fZ"')))
    return text.fill_null("null")


def _amount(frame: pl.DataFrame) -> pl.Series:
    """``total_refunded`` (text) as ``str(Decimal(text))``, quoted."""
    raw = frame["total_refunded"]
    plain = raw.str.contains(_PLAIN_AMOUNT)
    text = raw.str.replace(r"^(-?)0+([0-9])", "${1}${2}")
    odd = raw.filter(plain.not_() & raw.is_not_null()).unique(maintain_order=True)
    if odd.len():
        # Rare (the ingest validates amounts): the exact Python rendering, or its error.
        fixed = {s: str(Decimal(s)) for s in odd.to_list()}
        text = pl.select(pl.when(plain).then(text).otherwise(raw.replace_strict(fixed, default=None))).to_series()
    return pl.select(pl.concat_str(pl.lit('"'), text, pl.lit('"')).fill_null("null")).to_series()


def _units() -> pl.Expr:
    """``previous_refunded_units`` as ``str(Decimal(units).scaleb(-4))``, quoted."""
    units = pl.col("previous_refunded_units")
    step = 10 ** _UNITS_SCALE
    whole = (units.abs() // step).cast(pl.String)
    frac = (units.abs() % step).cast(pl.String).str.zfill(_UNITS_SCALE)
    sign = pl.when(units < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    return pl.concat_str(pl.lit('"'), sign, whole, pl.lit("."), frac, pl.lit('"')).fill_null("null")


def _obj(*pairs: tuple[str, pl.Expr | str]) -> list[pl.Expr]:
    """The pieces of a JSON object with ``json.dumps``' default separators."""
    out: list[pl.Expr] = []
    for i, (name, value) in enumerate(pairs):
        out.append(pl.lit(("{" if i == 0 else ", ") + json.dumps(name) + ": "))
        out.append(pl.col(value) if isinstance(value, str) else value)
    out.append(pl.lit("}"))
    return out


def _bodies() -> dict[ChangeKind, list[pl.Expr]]:
    """Per kind: the line's ``before`` and ``after`` (as ``changes_from_frame`` fills them)."""
    fin, ful, ref, can, cur = "_fin", "_ful", "_ref", "_can", "_cur"
    after = ", \"after\": "
    return {
        ChangeKind.CREATED: [pl.lit("null" + after), *_obj(("financial_status", fin), ("fulfillment_status", ful),
                                                            ("total_refunded", ref), ("cancelled_at", can),
                                                            ("currency_code", cur))],
        ChangeKind.STATUS_CHANGED: [*_obj(("financial_status", "_pfin"), ("fulfillment_status", "_pful")),
                                    pl.lit(after), *_obj(("financial_status", fin), ("fulfillment_status", ful))],
        ChangeKind.REFUNDED: [*_obj(("total_refunded", "_pref"), ("currency_code", cur)), pl.lit(after),
                              *_obj(("total_refunded", ref), ("currency_code", cur))],
        ChangeKind.CANCELLED: [pl.lit('{"cancelled_at": null}' + after), *_obj(("cancelled_at", can))],
    }


def _check(frame: pl.DataFrame, shop: str) -> None:
    """The refusals ``write_commerce_events`` makes of an event, for a frame's."""
    if not isinstance(shop, str) or not SHOP_CODE.match(shop):
        raise ValueError(f"commerce event needs a shop code, got {shop!r}")
    if frame["order_id"].null_count():
        raise ValueError("commerce event needs an int order_id, got None")
    missing = frame.filter(pl.col("updated_at").is_null())
    if missing.height:
        raise ValueError(f"commerce event for order {missing['order_id'][0]} has no time (at)")


def change_event_lines(frame: pl.DataFrame, shop: str) -> pl.Series:
    """One chunk's change frame as its COMMERCE_TELEMETRY lines (no newline), in event order."""
    kinds = list(ChangeKind)
    if frame.height == 0:
        return pl.Series("line", [], pl.String)
    _check(frame, shop)
    fields = frame.with_row_index("_row").select(
        "_row", *[pl.col(k.value) for k in kinds],
        pl.concat_str(pl.lit(f'{{"shop": {json.dumps(shop)}, "order_id": '), pl.col("order_id").cast(pl.String),
                      pl.lit(', "order_name": '), _text("order_name")).alias("_head"),
        _instant("updated_at").alias("_at"), _text("financial_status").alias("_fin"),
        _text("fulfillment_status").alias("_ful"), _text("previous_financial_status").alias("_pfin"),
        _text("previous_fulfillment_status").alias("_pful"), _instant("cancelled_at").alias("_can"),
        _text("currency_code").alias("_cur"), _units().alias("_pref"),
    ).with_columns(_amount(frame).alias("_ref"))
    bodies = _bodies()
    parts = []
    for rank, kind in enumerate(kinds):
        rows = fields.filter(pl.col(kind.value))
        if rows.height:
            parts.append(rows.select("_row", pl.lit(rank, pl.UInt8).alias("_kind"), pl.concat_str(
                pl.col("_head"), pl.lit(f', "event": "{kind.value}", "at": '), pl.col("_at"), pl.lit(', "before": '),
                *bodies[kind], pl.lit("}")).alias("line")))
    if not parts:
        return pl.Series("line", [], pl.String)
    lines = pl.concat(parts)
    if len(parts) > 1:
        lines = lines.sort("_row", "_kind")
    return lines["line"]
