"""The ingest marks the days whose counted lines it changed, in each chunk's transaction
(``measurement_dirty``, SPEC §5 Restatement), on all three backends."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shopify_sync.warehouse import dirty, ingest_jsonl, make_engine
from shopify_sync_tests.warehouse.jsonl_builder import Line, Ord, dumps, write

NOV = date(2026, 11, 1)


@dataclass
class DayOrd(Ord):
    processed: str = "2026-11-20T09:00:01Z"

    def obj(self) -> dict[str, Any]:
        return {**super().obj(), "processedAt": self.processed}


def _day(n: int) -> str:
    return f"2026-11-{n:02d}T12:00:00Z"


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def _ingest(engine: sa.Engine, path: Path) -> list[date]:
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM measurement_dirty"))
    ingest_jsonl(engine, path, shop="DE", job_id=None, chunk_rows=3)
    return [r.day for r in dirty.pending(engine, "DE")]


def _v(n: int) -> str:
    return f"2026-11-25T10:{n:02d}:00Z"


def test_changed_days_are_marked_and_older_or_equal_versions_mark_nothing(engine: sa.Engine, tmp_path: Path) -> None:
    def orders(version: int, **changes: Any) -> list[DayOrd]:
        base = {
            1: DayOrd(1, _v(version if 1 in changes.get("bump", ()) else 0), processed=_day(3), lines=[Line(11)]),
            2: DayOrd(2, _v(version if 2 in changes.get("bump", ()) else 0), processed=_day(5), lines=[Line(21)]),
            3: DayOrd(3, _v(0), processed=_day(7), test=True, lines=[Line(31)]),
            4: DayOrd(4, _v(version if 4 in changes.get("bump", ()) else 0), processed=_day(9),
                      lines=[Line(41), Line(42)]),
        }
        for oid, fields in changes.get("set", {}).items():
            for k, v in fields.items():
                setattr(base[oid], k, v)
        return list(base.values())

    first = write(tmp_path / "v0.jsonl", orders(0))
    # New orders: their days, where they count (order 3 is a test order: no figure moves).
    assert _ingest(engine, first) == [NOV.replace(day=3), NOV.replace(day=5), NOV.replace(day=9)]
    # The same file again, or an older one: nothing changes, nothing is marked.
    assert _ingest(engine, first) == []
    # Order 1 moves from the 3rd to the 12th, order 2 is cancelled, order 4 loses a line.
    newer = write(tmp_path / "v1.jsonl", orders(1, bump=(1, 2, 4), set={
        1: {"processed": _day(12)}, 2: {"cancelled_at": _v(1)}, 4: {"lines": [Line(41)]}}))
    assert _ingest(engine, newer) == [NOV.replace(day=d) for d in (3, 5, 9, 12)]
    assert _ingest(engine, first) == []  # replaying the older file afterwards
    # A cancelled order that stays cancelled, and an order flagged test: only the flag flip counts.
    newest = write(tmp_path / "v2.jsonl", orders(2, bump=(1, 2), set={
        1: {"processed": _day(12), "test": True}, 2: {"cancelled_at": _v(1)}}))
    assert _ingest(engine, newest) == [NOV.replace(day=12)]


def test_markings_commit_with_their_chunk(engine: sa.Engine, tmp_path: Path) -> None:
    """A load that fails part-way keeps the markings of its committed chunks."""
    good = [DayOrd(i, _v(0), processed=_day(i), lines=[Line(100 + i)]) for i in range(1, 5)]
    path = write(tmp_path / "bad.jsonl", good, page=4)
    text = path.read_text(encoding="utf-8")
    path.write_text(text + dumps(Line(999).obj(404)) + "\n", encoding="utf-8")  # a line without its order
    with pytest.raises(Exception, match="404"):
        ingest_jsonl(engine, path, shop="DE", job_id=None, chunk_rows=4)
    assert [r.day for r in dirty.pending(engine, "DE")] == [NOV.replace(day=d) for d in range(1, 5)]
