"""COMMERCE_TELEMETRY from change frames in polars: the very bytes of the per-event Python
path it replaced (kept as the reference in bench/commerce_telemetry.py)."""

from __future__ import annotations

import decimal
import importlib.util
import json
import sys
from datetime import date, datetime
from pathlib import Path
from types import ModuleType

import polars as pl
import pytest

from shopify_sync.storage.keys import commerce_telemetry_key
from shopify_sync.storage.object_store import LocalObjectStore
from shopify_sync.telemetry.commerce import read_commerce_events, write_commerce_events, write_commerce_lines
from shopify_sync.telemetry.commerce_frames import _text, change_event_lines
from shopify_sync.warehouse.ingest.decide import CHANGES_SCHEMA

BENCH = Path(__file__).resolve().parents[1] / "bench" / "commerce_telemetry.py"
KEY = commerce_telemetry_key(date(2026, 11, 22), "run-1")


@pytest.fixture(scope="module")
def ref() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_commerce_telemetry", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _row(order_id: int, kinds: str, **values: object) -> dict[str, object]:
    row: dict[str, object] = dict.fromkeys(CHANGES_SCHEMA)
    row.update(order_id=order_id, order_name=f"#{order_id}", updated_at=datetime(2026, 11, 22, 6, 1, 2),
               **{k: k in kinds.split() for k in ("created", "status_changed", "refunded", "cancelled")})
    row.update(values)
    return row


def edge_frame() -> pl.DataFrame:
    """Every kind alone and together, nulls, unicode and control characters, money in every shape."""
    rows = [
        _row(1, "created", order_name="Zürich №1 \"quoted\" \\ back\tslash\n\x00\x1f\x7f\u2028🙂", total_refunded="0.00",
             financial_status="PAID", currency_code="EUR"),
        _row(2, "created status_changed refunded cancelled", order_name=None,
             updated_at=datetime(2026, 11, 22, 6, 1, 2, 5), total_refunded="0012.5000", previous_refunded_units=0,
             cancelled_at=datetime(2026, 11, 22, 7, 0, 0, 120000), previous_financial_status="PENDING"),
        _row(3, "refunded", total_refunded="-0.00", previous_refunded_units=-5, currency_code="日本円"),
        _row(4, "refunded", total_refunded="100", previous_refunded_units=123_456_789_012),
        _row(5, "refunded cancelled", total_refunded="1E2", previous_refunded_units=99_999),
        _row(6, "refunded", total_refunded="1_000.5", previous_refunded_units=10_000),
        _row(7, "refunded", total_refunded=" 7.10 ", previous_refunded_units=None),
        _row(8, "status_changed", financial_status="", fulfillment_status="FULFILLED",
             previous_fulfillment_status="UNFULFILLED", updated_at=datetime(5, 1, 2, 3, 4, 5)),
        _row(9, "cancelled", cancelled_at=None, order_name=""),
        _row(10, "created", total_refunded="0.000001", order_name="٣ digits ٣"),
        _row(11, "created", total_refunded="0.0000001"),
        _row(12, "created", total_refunded="٣.5"),
    ]
    return pl.DataFrame(rows, schema=CHANGES_SCHEMA)


def _both(ref: ModuleType, tmp_path: Path, frames: list[pl.DataFrame], shop: str = "DE",
          existing: bytes | None = None) -> tuple[LocalObjectStore, LocalObjectStore]:
    stores = LocalObjectStore(tmp_path / "old"), LocalObjectStore(tmp_path / "new")
    for store in stores:
        if existing is not None:
            store.put_bytes(KEY, existing)
    ref.reference_publish(stores[0], KEY, frames, shop)
    ref.fast_publish(stores[1], KEY, frames, shop)
    return stores


def test_lines_are_the_bytes_of_the_python_path(ref: ModuleType, tmp_path: Path) -> None:
    frames = [edge_frame(), *ref.change_frames(3_000, 700, "mixed")]
    old, new = _both(ref, tmp_path, frames)
    data = new.get_bytes(KEY)
    assert data == old.get_bytes(KEY)
    events = read_commerce_events(new, date(2026, 11, 22), "run-1")  # U+2028 in a name is not a line break
    assert {e["event"] for e in events} == {"created", "status_changed", "refunded", "cancelled"}
    assert [e["event"] for e in events if e["order_id"] == 2] == ["created", "status_changed", "refunded",
                                                                   "cancelled"]

    # A re-run of the same frames, then another shop of the run and a partial overlap: merged alike.
    for frames_again, shop in ((frames, "DE"), (frames[:2], "NL"), (ref.change_frames(4_000, 1_000, "mixed"), "DE")):
        ref.reference_publish(old, KEY, frames_again, shop)
        ref.fast_publish(new, KEY, frames_again, shop)
        assert new.get_bytes(KEY) == old.get_bytes(KEY)
    assert new.get_bytes(KEY).count(b"\n") > data.count(b"\n")


def test_a_foreign_existing_object_is_merged_alike(ref: ModuleType, tmp_path: Path) -> None:
    """Blank and whitespace lines dropped, CR line ends read as newlines, duplicates in the
    stored object written once: as the Python reader did."""
    frames = ref.change_frames(50, 20, "mixed")
    line = change_event_lines(frames[0], "DE")[0]
    existing = (f"{line}\r\n\n   \n\x1c\n{line}\nnot json\rnot json\n{line}".encode())
    old, new = _both(ref, tmp_path, frames, existing=existing)
    assert new.get_bytes(KEY) == old.get_bytes(KEY)
    assert new.get_bytes(KEY).count(line.encode()) == 1


def test_strings_are_escaped_as_json_dumps_does() -> None:
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    got = pl.DataFrame({"s": chars + [None]}).select(_text("s").alias("j"))["j"].to_list()
    assert got == [json.dumps(c, ensure_ascii=False) for c in chars] + ["null"]


def test_events_given_as_objects_still_merge_with_frame_lines(ref: ModuleType, tmp_path: Path) -> None:
    frames = ref.change_frames(30, 10, "mixed")
    old, new = LocalObjectStore(tmp_path / "old"), LocalObjectStore(tmp_path / "new")
    changes = [c for f in frames for c in ref.reference_changes(f)]
    ref.reference_write(old, KEY, changes, shop="DE")
    write_commerce_events(new, KEY, changes, shop="DE")
    assert new.get_bytes(KEY) == old.get_bytes(KEY)
    ref.fast_publish(new, KEY, frames, "DE")  # the same events again, from the frames
    assert new.get_bytes(KEY) == old.get_bytes(KEY)
    assert write_commerce_lines(new, KEY, [pl.Series([], dtype=pl.String)]) == (None, 0)


@pytest.mark.parametrize(("shop", "amount", "error", "match"), [
    ("de", "1.00", ValueError, "commerce event needs a shop code, got 'de'"),
    ("DE", "ten", decimal.InvalidOperation, None),
])
def test_refusals_are_the_python_paths(ref: ModuleType, tmp_path: Path, shop: str, amount: str,
                                       error: type[Exception], match: str | None) -> None:
    frame = pl.DataFrame([_row(1, "created", total_refunded=amount)], schema=CHANGES_SCHEMA)
    old, new = LocalObjectStore(tmp_path / "old"), LocalObjectStore(tmp_path / "new")
    for store in (old, new):
        store.put_bytes(KEY, b"kept\n")
    with pytest.raises(error, match=match):
        ref.reference_publish(old, KEY, [frame], shop)
    with pytest.raises(error, match=match):
        ref.fast_publish(new, KEY, [frame], shop)
    assert new.get_bytes(KEY) == old.get_bytes(KEY) == b"kept\n"
