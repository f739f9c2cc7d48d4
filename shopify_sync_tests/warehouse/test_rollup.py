"""``measurement_day_sum`` kept by the ingest equals a rebuild from the lines, on every backend:
new orders split across chunks, newer versions (refunds, cancellations, test flags, a
moved day, dropped and added lines, a new SKU on the latest line), a line written under
another order, older files and replays; and the migration fills it from existing lines."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import sqlalchemy as sa

from shopify_sync.emulator import write_jsonl
from shopify_sync.warehouse import ingest_jsonl, make_engine, rollup
from shopify_sync.warehouse.rollup.lines import SUMS_SCHEMA
from shopify_sync.warehouse.rollup.maintain import merge
from shopify_sync.warehouse.tables import measurement_day_sum
from shopify_sync_tests.warehouse.jsonl_builder import Line, Ord, write

ANCHOR = datetime(2026, 11, 23, tzinfo=UTC)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def table(engine: sa.Engine) -> list[tuple[Any, ...]]:
    t = measurement_day_sum
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key.columns))]


def assert_equals_rebuild(engine: sa.Engine, shop: str = "DEMO") -> list[tuple[Any, ...]]:
    kept = table(engine)
    rollup.rebuild(engine, shop)
    rebuilt = table(engine)
    assert kept == rebuilt
    return kept


def test_generated_file_in_small_chunks_equals_rebuild_and_a_replay_changes_nothing(engine, tmp_path: Path) -> None:
    path = tmp_path / "demo.jsonl"
    write_jsonl(path, "DEMO", orders=150, seed=3, anchor=ANCHOR)
    ingest_jsonl(engine, path, shop="DEMO", job_id=None, chunk_rows=37)  # orders split across chunks
    kept = assert_equals_rebuild(engine)
    assert len({r[1] for r in kept}) > 3 and {r[3] for r in kept} >= {-1}  # several days, product rows
    ingest_jsonl(engine, path, shop="DEMO", job_id=None, chunk_rows=50)
    assert table(engine) == kept


def _v1() -> list[Ord]:
    return [
        Ord(1, processed_at="2026-11-20T09:00:00Z", lines=[Line(11, quantity=2), Line(12, sku="OLD-B", variant=901),
                                                          Line(13, product=None, variant=None)]),
        Ord(2, processed_at="2026-11-20T11:00:00Z", lines=[Line(21, sku="LATE", title="Thing v2")]),
        Ord(3, processed_at="2026-11-21T09:00:00Z", lines=[Line(31, quantity=3), Line(32, variant=None, sku=None)]),
        Ord(4, processed_at="2026-11-21T10:00:00Z", test=True, lines=[Line(41)]),
        Ord(5, processed_at="2026-11-22T10:00:00Z", lines=[Line(51, product=801, variant=911, price="3.3333")]),
    ]


def _v2() -> list[Ord]:
    later = "2026-11-24T10:00:00Z"
    return [
        # refund: current quantity down, line 12 dropped, a line added
        Ord(1, updated_at=later, processed_at="2026-11-20T09:00:00Z",
            lines=[Line(11, quantity=2, current_quantity=1), Line(14, variant=902)]),
        # the day's latest line: cancelled, so the day's latest falls back to an untouched order
        Ord(2, updated_at=later, processed_at="2026-11-20T11:00:00Z", cancelled_at=later,
            lines=[Line(21, sku="LATE", title="Thing v2")]),
        # moved to the next day
        Ord(3, updated_at=later, processed_at="2026-11-22T09:00:00Z", lines=[Line(31, quantity=3), Line(32)]),
        # no longer a test
        Ord(4, updated_at=later, processed_at="2026-11-21T10:00:00Z", lines=[Line(41, sku="NEW")]),
        # a newer SKU on the latest line
        Ord(5, updated_at=later, processed_at="2026-11-22T10:00:00Z",
            lines=[Line(51, product=801, variant=911, price="3.3333", sku="B-2", current_quantity=0)]),
        Ord(6, updated_at=later, processed_at="2026-11-20T08:00:00Z", lines=[Line(61, quantity=4)]),
    ]


@pytest.mark.parametrize("chunk_rows", [1, 3, 100])
def test_newer_versions_keep_the_table_equal_to_the_lines(engine, tmp_path: Path, chunk_rows: int) -> None:
    ingest_jsonl(engine, write(tmp_path / "v1.jsonl", _v1()), shop="DEMO", job_id=None, chunk_rows=chunk_rows)
    first = assert_equals_rebuild(engine)
    assert {r[1] for r in first} == {date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)}
    ingest_jsonl(engine, write(tmp_path / "v2.jsonl", _v2(), page=2), shop="DEMO", job_id=None,
                 chunk_rows=chunk_rows)
    second = assert_equals_rebuild(engine)
    assert second != first
    # the cancelled order 2 held the 20th's latest line: its SKU no longer names the variant
    day20 = {r[3]: r for r in second if r[1] == date(2026, 11, 20)}
    assert day20[900][-1] == "SKU-1" and day20[-1][-1] == "Thing"
    ingest_jsonl(engine, write(tmp_path / "v1.jsonl", _v1()), shop="DEMO", job_id=None, chunk_rows=chunk_rows)
    assert table(engine) == second  # the older file is skipped


def test_a_line_written_under_another_order_leaves_the_first_order(engine, tmp_path: Path) -> None:
    ingest_jsonl(engine, write(tmp_path / "a.jsonl", [Ord(1, lines=[Line(11), Line(12)])]), shop="DEMO",
                 job_id=None, chunk_rows=10)
    moved = [Ord(2, processed_at="2026-11-21T09:00:00Z", lines=[Line(11, quantity=7)])]
    result = ingest_jsonl(engine, write(tmp_path / "b.jsonl", moved, page=1), shop="DEMO", job_id=None,
                          chunk_rows=2)
    assert result.fresh_conflicts == 1
    kept = assert_equals_rebuild(engine)
    assert {(r[1], r[3]): r[5] for r in kept if r[3] == -1} == {(date(2026, 11, 20), -1): 1,
                                                                (date(2026, 11, 21), -1): 1}


def test_a_table_that_disagrees_with_the_lines_is_repaired_by_the_next_chunk(engine, tmp_path: Path) -> None:
    ingest_jsonl(engine, write(tmp_path / "v1.jsonl", _v1()), shop="DEMO", job_id=None, chunk_rows=100)
    with engine.begin() as conn:  # a write past the ingest: the table loses the 21st
        conn.execute(measurement_day_sum.delete().where(measurement_day_sum.c.day == date(2026, 11, 21)))
    ingest_jsonl(engine, write(tmp_path / "v2.jsonl", _v2()), shop="DEMO", job_id=None, chunk_rows=100)
    assert_equals_rebuild(engine)


def test_merge_names_the_days_it_cannot_tell() -> None:
    day = date(2026, 11, 20)
    at = datetime(2026, 11, 20, 9)

    def row(lines: int, line_id: int, text: str) -> dict[str, Any]:
        return {"day": day, "product_id": 1, "variant_key": 2, "currency_code": "EUR", "line_count": lines,
                "orders": lines, "units_ordered": lines, "units_net": lines, "gross_sales": 10 * lines,
                "net_sales": 10 * lines, "latest_at": at, "latest_line_id": line_id, "latest_text": text}

    def frame(*rows: dict[str, Any]) -> pl.DataFrame:
        return pl.DataFrame(list(rows), schema=SUMS_SCHEMA)

    # stored latest is line 9; the chunk's order held it and now brings only line 5
    rows, rebuild = merge(frame(row(3, 9, "s")), frame(row(1, 9, "s")), frame(row(1, 5, "a")))
    assert rows.height == 0 and rebuild == [day]
    # a newer line arrives: it is the latest, sums add up
    rows, rebuild = merge(frame(row(3, 9, "s")), frame(), frame(row(1, 12, "a")))
    assert rebuild == [] and rows.row(0, named=True)["line_count"] == 4 and rows.row(0, named=True)["latest_text"] == "a"
    # more subtracted than stored: the table disagrees with the lines
    _, rebuild = merge(frame(row(1, 9, "s")), frame(row(2, 9, "s")), frame())
    assert rebuild == [day]
    # every line gone: the row goes
    rows, rebuild = merge(frame(row(2, 9, "s")), frame(row(2, 9, "s")), frame())
    assert rows.height == 0 and rebuild == []


def test_migration_fills_the_table_from_existing_lines(db_url: str, tmp_path: Path) -> None:
    from alembic import command

    from shopify_sync.warehouse.engine import _alembic_config, _upgrade_locked

    path = tmp_path / "demo.jsonl"
    write_jsonl(path, "DEMO", orders=120, seed=4, anchor=ANCHOR)
    engine = make_engine(db_url)
    try:
        ingest_jsonl(engine, write(tmp_path / "v1.jsonl", _v1()), shop="DEMO", job_id=None, chunk_rows=100)
        ingest_jsonl(engine, path, shop="DEMO", job_id=None, chunk_rows=100)
        ingest_jsonl(engine, write(tmp_path / "v2.jsonl", _v2()), shop="DEMO", job_id=None, chunk_rows=100)
        kept = table(engine)
        with engine.connect() as conn:
            cfg = _alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0008_product_catalog")
            conn.commit()
        _upgrade_locked(engine)  # upgrades again: the migration fills the table in SQL
        assert table(engine) == kept
    finally:
        engine.dispose()


def test_a_resumed_ingest_counts_each_line_once(engine, tmp_path: Path) -> None:
    """A crash between chunks leaves orders whose lines come in the next chunk: the resumed
    ingest (an equal version of those orders) still adds their lines, and nothing twice."""
    path = tmp_path / "demo.jsonl"
    write_jsonl(path, "DEMO", orders=120, seed=9, anchor=ANCHOR)

    class Crash(Exception):
        pass

    def crash(progress) -> None:  # noqa: ANN001 - the ingest's progress record
        if progress.end_line >= 100:
            raise Crash

    with pytest.raises(Crash):
        ingest_jsonl(engine, path, shop="DEMO", job_id=None, chunk_rows=37, on_chunk=crash)
    ingest_jsonl(engine, path, shop="DEMO", job_id=None, chunk_rows=37, start_line=111)
    resumed = assert_equals_rebuild(engine)
    with engine.begin() as conn:
        conn.execute(measurement_day_sum.delete())
    ingest_jsonl(engine, path, shop="DEMO", job_id=None, chunk_rows=50)  # a replay: equal versions only
    assert table(engine) == []  # read no lines: nothing changed, nothing added
    rollup.rebuild(engine, "DEMO")
    assert table(engine) == resumed


def test_mismatched_rows_names_a_table_that_drifted_from_its_lines(engine, tmp_path: Path) -> None:
    ingest_jsonl(engine, write(tmp_path / "v1.jsonl", _v1()), shop="DEMO", job_id=None, chunk_rows=100)
    day = date(2026, 11, 20)
    assert rollup.mismatched_rows(engine, "DEMO", day) == 0
    t = measurement_day_sum
    with engine.begin() as conn:
        conn.execute(t.update().where(t.c.day == day, t.c.variant_key == -1).values(units_net=t.c.units_net + 1))
    assert rollup.mismatched_rows(engine, "DEMO", day) == 1
    with engine.begin() as conn:
        conn.execute(t.delete().where(t.c.day == day, t.c.variant_key != -1))
    assert rollup.mismatched_rows(engine, "DEMO", day) > 1


def test_the_counted_lines_read_back_as_stored(engine, tmp_path: Path) -> None:
    """``lines_of_orders`` and ``lines_of_days`` (each backend's own read: MySQL packs the
    numbers into one text field) equal a plain typed read of the same rows, with NULL
    numbers, a line without SKU or variant and a title with spaces and commas included."""
    from decimal import Decimal

    from shopify_sync.warehouse.rollup.lines import LINES_SCHEMA, lines_of_days, lines_of_orders
    from shopify_sync.warehouse.tables import order_header, order_line_item

    orders = [Ord(1, lines=[Line(11, quantity=3, price="12.3456", discounted="11.5"),
                            Line(12, sku=None, variant=None, title="Blue  mug, 0.5 l — ☕ ")]),
              Ord(2, processed_at="2026-11-20T23:59:59Z", lines=[Line(21, quantity=2), Line(22, product=None)]),
              Ord(3, processed_at="2026-11-21T00:00:00Z", lines=[Line(31)])]
    ingest_jsonl(engine, write(tmp_path / "lines.jsonl", orders), shop="DEMO", job_id=None, chunk_rows=100)
    li, oh = order_line_item, order_header
    with engine.begin() as conn:  # NULL numbers, as a row written by other means may hold
        conn.execute(li.update().where(li.c.line_item_id == 21).values(
            quantity=None, original_unit_price=None))

    def scaled(value: Decimal | None) -> int | None:
        return None if value is None else int(value * 10_000)

    with engine.connect() as conn:
        plain = conn.execute(
            sa.select(li.c.order_id, oh.c.processed_at, li.c.product_id, li.c.variant_id, li.c.currency_code,
                      oh.c.currency_code, li.c.line_item_id, li.c.sku, li.c.title, li.c.quantity, li.c.current_quantity,
                      li.c.original_unit_price, li.c.discounted_unit_price)
            .join_from(li, oh, sa.and_(oh.c.shop == li.c.shop, oh.c.order_id == li.c.order_id))
            .where(li.c.shop == "DEMO", li.c.product_id.is_not(None))).all()
        expected = pl.DataFrame(
            [(r[0], r[1], r[2], r[3] or 0, r[4] or r[5] or "", r[6], r[7], r[8], r[9], r[10], scaled(r[11]),
              scaled(r[12])) for r in plain], schema=LINES_SCHEMA, orient="row").sort("line_item_id")
        nulled = expected.filter(pl.col("line_item_id") == 21)
        assert expected.height == 4 and nulled["quantity"].is_null().all() and nulled["current_quantity"].item() == 2
        by_orders = lines_of_orders(conn, "DEMO", pl.Series([1, 2, 3], dtype=pl.Int64))
        by_days = lines_of_days(conn, "DEMO", date(2026, 11, 20), date(2026, 11, 21))
    assert by_orders.schema == LINES_SCHEMA and by_orders.sort("line_item_id").equals(expected)
    assert by_days.sort("line_item_id").equals(expected)
