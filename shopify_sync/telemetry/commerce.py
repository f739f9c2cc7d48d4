"""COMMERCE_TELEMETRY: one JSON line per order event at ``telemetry/commerce/date=<D>/<run_id>.jsonl`` (SPEC §6).

Events are ``created``, ``status_changed``, ``refunded`` and ``cancelled``; one object
per run, merged into and never duplicated.
"""

from __future__ import annotations

import itertools
import json
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Protocol, TypeAlias

from shopify_sync.storage.keys import COMMERCE_TELEMETRY_PREFIX, commerce_telemetry_key
from shopify_sync.storage.object_store import ObjectNotFoundError, ObjectStore
from shopify_sync.telemetry.readers import as_day
from shopify_sync.telemetry.records import SHOP_CODE, JsonValue, jsonable
from shopify_sync.vocab import ChangeKind

COMMERCE_EVENTS = tuple(k.value for k in ChangeKind)
EVENT_FIELDS = ("shop", "order_id", "order_name", "event", "at", "before", "after")
_MASK64 = (1 << 64) - 1


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


def _lines_of(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8") as fh:
        yield from (ln.rstrip("\n") for ln in fh if ln.strip())


def _write_unique(lines: Iterable[str], out: Path) -> None:
    # A line is known by two of Python's (per-process keyed) str hashes as one 128-bit
    # int: about 80 bytes a line in the set, instead of the line. Only compared within
    # this call. A first load passes one event per order, millions for a big shop.
    seen: set[int] = set()
    with open(out, "w", encoding="utf-8") as fh:
        for line in lines:
            digest = (hash(line) & _MASK64) << 64 | (hash(line + "\x1f") & _MASK64)
            if digest not in seen:
                seen.add(digest)
                fh.write(line + "\n")


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
    if not key.startswith(COMMERCE_TELEMETRY_PREFIX):
        raise ValueError(f"not a commerce telemetry key: {key!r}")
    items = iter(events)
    first = next(items, None)
    if first is None:
        return None
    new_lines = (json.dumps(_event_dict(e, shop), ensure_ascii=False) for e in itertools.chain([first], items))
    with tempfile.TemporaryDirectory(prefix="shopify_sync_events_") as tmp:
        existing, merged = Path(tmp) / "existing.jsonl", Path(tmp) / "out.jsonl"
        try:
            store.download_file(key, existing)
            lines: Iterable[str] = itertools.chain(_lines_of(existing), new_lines)
        except ObjectNotFoundError:
            lines = new_lines
        _write_unique(lines, merged)
        store.put_file(key, merged)
    return key


def read_commerce_events(store: ObjectStore, day: date, run_id: str) -> list[dict[str, JsonValue]]:
    """The events of one run (empty when it wrote none); ``day`` is the day the run was created."""
    try:
        raw = store.get_bytes(commerce_telemetry_key(as_day(day), run_id))
    except ObjectNotFoundError:
        return []
    return [json.loads(ln) for ln in raw.decode().splitlines() if ln.strip()]
