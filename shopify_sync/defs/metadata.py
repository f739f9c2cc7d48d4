"""Typed materialization and check metadata (snake_case keys).

Counts are ints, instants are ``MetadataValue.timestamp`` (the UI renders them in the
viewer's zone), flags are bools. A run covers one shop (the schedule, the CLI, the API
and Dagster's single-run backfills all start one run per shop), so a per-shop fact is
shown as that shop's typed value; a hand-made range over several shops gets one text
line ``SHOP: value; …`` instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import dagster as dg

from shopify_sync.timeutil import as_utc, iso_z

Fact = str | int | float | bool | datetime | None
Metadata = dict[str, dg.MetadataValue]


def typed(value: Fact) -> dg.MetadataValue:
    if value is None:
        return dg.MetadataValue.null()
    if isinstance(value, datetime):
        return dg.MetadataValue.timestamp(as_utc(value))
    if isinstance(value, bool):
        return dg.MetadataValue.bool(value)
    if isinstance(value, int):
        return dg.MetadataValue.int(value)
    if isinstance(value, float):
        return dg.MetadataValue.float(value)
    return dg.MetadataValue.text(value)


def _text(value: Fact) -> str:
    if value is None:
        return "none"
    return iso_z(value) if isinstance(value, datetime) else str(value)


def per_shop(facts: Sequence[tuple[str, Fact]] | Mapping[str, Fact]) -> dg.MetadataValue:
    """One fact per shop: the typed value for a single shop, else one text line."""
    items = list(facts.items()) if isinstance(facts, Mapping) else list(facts)
    if len(items) == 1:
        return typed(items[0][1])
    return dg.MetadataValue.text("; ".join(f"{shop}: {_text(value)}" for shop, value in items))
