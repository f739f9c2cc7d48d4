"""COMMERCE_TELEMETRY: one JSON line per order event at ``telemetry/commerce/date=<D>/<run_id>.jsonl`` (SPEC §6).

Events are ``created``, ``status_changed``, ``refunded`` and ``cancelled``; one object
per run, merged into and never duplicated.
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Protocol, TypeAlias

import polars as pl

from shopify_sync.storage.keys import COMMERCE_TELEMETRY_PREFIX, commerce_telemetry_key
from shopify_sync.storage.object_store import ObjectNotFoundError, ObjectStore
from shopify_sync.telemetry.readers import as_day
from shopify_sync.telemetry.records import SHOP_CODE, JsonValue, jsonable
from shopify_sync.vocab import ChangeKind

COMMERCE_EVENTS = tuple(k.value for k in ChangeKind)
EVENT_FIELDS = ("shop", "order_id", "order_name", "event", "at", "before", "after")
# Lines per batch of events rendered in Python, and bytes per batch of the stored object read back.
_BATCH_EVENTS = 50_000
_BATCH_BYTES = 16 << 20
# Two independent hashes make one 128-bit key per line (see ``_write_unique``).
_SEEDS = (0x5EED_0001, 0x5EED_0002)


class OrderChangeLike(Protocol):
    """An order change as the ingest records it (``warehouse.OrderChange``)."""

    @property
    def order_id(self) -> int: ...
    @property
    def order_name(self) -> str | None: ...
    @property
    def kind(self) -> str: ...
    @property
    def at(self) -> datetime: ...
    @property
    def before(self) -> Mapping[str, object] | None: ...
    @property
    def after(self) -> Mapping[str, object]: ...


CommerceEvent: TypeAlias = "Mapping[str, object] | OrderChangeLike"


def _event_dict(event: CommerceEvent, shop: str | None) -> dict[str, JsonValue]:
    def get(name: str) -> object:
        return event.get(name) if isinstance(event, Mapping) else getattr(event, name, None)

    kind = get("event") or get("kind")
    kind = getattr(kind, "value", kind)
    if kind not in COMMERCE_EVENTS:
        raise ValueError(f"commerce event must be one of {', '.join(COMMERCE_EVENTS)}, got {kind!r}")
    order_id = get("order_id")
    if not isinstance(order_id, int) or isinstance(order_id, bool):
        raise ValueError(f"commerce event needs an int order_id, got {order_id!r}")
    event_shop = get("shop") or shop
    if not isinstance(event_shop, str) or not SHOP_CODE.match(event_shop):
        raise ValueError(f"commerce event needs a shop code, got {event_shop!r}")
    when = get("at")
    if when is None:
        raise ValueError(f"commerce event for order {order_id} has no time (at)")
    values = {"shop": event_shop, "order_id": order_id, "order_name": get("order_name"), "event": kind,
              "at": when, "before": get("before"), "after": get("after")}
    return {name: jsonable(values[name], name) for name in EVENT_FIELDS}


def _existing_lines(path: Path) -> Iterator[pl.Series]:
    """The stored object's lines in batches, read as text (universal newlines, blank lines
    dropped) exactly as the writer always read them."""
    with open(path, encoding="utf-8") as fh:
        while batch := fh.readlines(_BATCH_BYTES):
            yield pl.Series("line", [ln.rstrip("\n") for ln in batch if ln.strip()], pl.String)


def _write_unique(batches: Iterable[pl.Series], out: Path) -> None:
    """The lines, each only the first time it comes.

    A line is known by two seeded 64-bit polars hashes (one 128-bit key, 16 bytes a line in
    a frame), compared only within this call: a first load passes one event per order,
    millions for a big shop. Every line is written as it comes, with its key kept; the
    first of each key is found once at the end, and only when some line came twice (a
    re-run, a resumed load) is the file written again without the repeats.
    """
    keys: list[pl.DataFrame] = []
    with open(out, "wb") as fh:
        for batch in batches:
            keys.append(pl.DataFrame({"h0": batch.hash(_SEEDS[0]), "h1": batch.hash(_SEEDS[1])}))
            fh.write((batch.str.join("\n").item() + "\n").encode())
    if not keys:
        return
    # Repeats found by sorting the keys (about 3 x 24 MB at 1M lines): a struct
    # is_first_distinct over them lifted the CLI's peak by about 200 MB (docs/benchmarks.md).
    ordered = pl.concat(keys).with_row_index("i").sort("h0", "h1", "i")
    repeat = ((pl.col("h0") == pl.col("h0").shift(1)) & (pl.col("h1") == pl.col("h1").shift(1))).fill_null(False)
    firsts = ordered.filter(~repeat).get_column("i")
    if firsts.len() == ordered.height:
        return
    first = pl.int_range(0, ordered.height, dtype=pl.UInt32, eager=True).is_in(firsts.implode())
    # One line of the file per line given: none holds a raw newline (JSON escapes it, and
    # the stored object's lines were split at every one).
    kept = out.with_name(out.name + ".unique")
    with open(out, "rb") as src, open(kept, "wb") as dst:
        dst.writelines(itertools.compress(src, first.to_list()))
    os.replace(kept, out)


def _event_lines(events: Iterable[CommerceEvent], shop: str | None) -> Iterator[pl.Series]:
    items = iter(events)
    while batch := [json.dumps(_event_dict(e, shop), ensure_ascii=False) for e in itertools.islice(items, _BATCH_EVENTS)]:
        yield pl.Series("line", batch, pl.String)


def write_commerce_events(
    store: ObjectStore, key: str, events: Iterable[CommerceEvent], *, shop: str | None = None
) -> str | None:
    """Merge order events into the object at ``key``; returns it (None when there was nothing to write).

    ``key`` is a ``commerce_telemetry_key``: the run's own object, or an earlier run's that a
    resumed load completes. Each event is a mapping or an object with ``order_id, order_name,
    event`` (``kind`` is accepted too), ``at``, ``before`` and ``after``; ``shop`` defaults to
    the keyword. Lines already in the object are not written twice, so a re-run (another
    shop, a resumed load) never duplicates events.

    Streams: ``events`` may be a generator of millions. Lines go through a temporary file
    uploaded at the end in one piece, so a bad event leaves the stored object as it was.
    """
    written, _ = write_commerce_lines(store, key, _event_lines(events, shop))
    return written


def write_commerce_lines(store: ObjectStore, key: str, batches: Iterable[pl.Series]) -> tuple[str | None, int]:
    """``write_commerce_events`` for events already rendered as lines (polars String series,
    no newline; ``commerce_frames.change_event_lines``); returns the object (None when
    there was nothing to write) and how many lines were given, duplicates included."""
    if not key.startswith(COMMERCE_TELEMETRY_PREFIX):
        raise ValueError(f"not a commerce telemetry key: {key!r}")
    items = (b for b in batches if b.len())
    first = next(items, None)
    if first is None:
        return None, 0
    given = _Counter()
    new_lines = given.through(itertools.chain([first], items))
    with tempfile.TemporaryDirectory(prefix="shopify_sync_events_") as tmp:
        existing, merged = Path(tmp) / "existing.jsonl", Path(tmp) / "out.jsonl"
        try:
            store.download_file(key, existing)
            lines: Iterable[pl.Series] = itertools.chain(_existing_lines(existing), new_lines)
        except ObjectNotFoundError:
            lines = new_lines
        _write_unique(lines, merged)
        # Moved, not copied: a local store renames it (a first load of 1M orders writes
        # 262 MB of events, whose copy took 0.6 s; docs/benchmarks.md, session 11).
        store.move_file(key, merged)
    return key, given.count


class _Counter:
    """Counts the lines of the batches that pass through."""

    def __init__(self) -> None:
        self.count = 0

    def through(self, batches: Iterable[pl.Series]) -> Iterator[pl.Series]:
        for batch in batches:
            self.count += batch.len()
            yield batch


def read_commerce_events(store: ObjectStore, day: date, run_id: str) -> list[dict[str, JsonValue]]:
    """The events of one run (empty when it wrote none); ``day`` is the day the run was created."""
    try:
        raw = store.get_bytes(commerce_telemetry_key(as_day(day), run_id))
    except ObjectNotFoundError:
        return []
    # Split on newlines only: str.splitlines also breaks at U+2028, U+0085 and the like,
    # which json.dumps(ensure_ascii=False) leaves raw inside an order name.
    return [json.loads(ln) for ln in raw.decode().split("\n") if ln.strip()]
