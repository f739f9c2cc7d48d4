"""The one-pass frames (``metrics.restate``) equal the per-day frames and the independent
recomputation, on all three backends; and which days a run restates."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from shopify_sync.metrics.measurements import (
    MixedCurrencyError,
    parquet_bytes,
    performance_frame,
    sales_frame,
)
from shopify_sync.metrics.restate import (
    performance_frames,
    plan_performance,
    plan_sales,
    sales_frames,
    write_performance,
    write_sales,
)
from shopify_sync.storage import LocalObjectStore, performance_key, sales_key
from shopify_sync.warehouse import dirty, make_engine
from shopify_sync.warehouse.daily_sums import day_ranges
from shopify_sync.warehouse.dirty import DirtyDay
from shopify_sync_tests.metrics.test_measurements import (
    D0,
    Line,
    Order,
    at,
    expected_performance,
    expected_sales,
    generated,
    hand_built,
    load,
)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def test_one_pass_frames_equal_the_per_day_frames_and_the_recomputation(engine: sa.Engine) -> None:
    orders = hand_built() + generated()
    load(engine, orders)
    # Gaps on purpose: the pass reads a union of day ranges, not one span.
    days = [D0 + timedelta(days=i) for i in [*range(-1, 12), *range(20, 24), 30, 44, 46, 60]]
    checked = 0
    for shop in ("DE", "NL", "CH", "NOPE"):
        sales = sales_frames(engine, shop, days)
        performance = performance_frames(engine, shop, days)
        assert list(sales) == sorted(days) and list(performance) == sorted(days)
        for day in days:
            assert sales[day].to_dicts() == expected_sales(orders, shop, day), (shop, day)
            assert parquet_bytes(sales[day]) == parquet_bytes(sales_frame(engine, shop, day)), (shop, day)
            assert performance[day].to_dicts() == expected_performance(orders, shop, day), (shop, day)
            assert parquet_bytes(performance[day]) == parquet_bytes(performance_frame(engine, shop, day)), (shop, day)
            checked += sales[day].height + performance[day].height
    assert checked > 400


def test_mixed_currencies_are_refused_by_the_one_pass_too(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    d = D0
    load(engine, [Order("DE", 1, at(d), "EUR", lines=[Line(1, 7, 70, "S", "T", 1, 1, 1, 1, "EUR")]),  # type: ignore[arg-type]
                  Order("DE", 2, at(d + timedelta(days=3)), "CHF",
                        lines=[Line(2, 7, 70, "S", "T", 1, 1, 1, 1, "CHF")])])  # type: ignore[arg-type]
    assert sales_frames(engine, "DE", [d])[d].height == 1  # one currency per day: fine
    with pytest.raises(MixedCurrencyError, match="product 7"):
        performance_frames(engine, "DE", [d + timedelta(days=5)])  # the window holds both
    engine.dispose()


def test_day_ranges_merge_consecutive_days() -> None:
    d = D0
    assert day_ranges([d + timedelta(days=i) for i in (5, 0, 1, 2, 7, 6, 10)]) == [
        (d, d + timedelta(days=2)), (d + timedelta(days=5), d + timedelta(days=7)),
        (d + timedelta(days=10), d + timedelta(days=10))]
    assert day_ranges([]) == []


def test_plans_restate_stored_objects_only_and_never_the_runs_own_days() -> None:
    d = D0
    pending = [DirtyDay(d, "t1", None), DirtyDay(d + timedelta(days=40), "t2", None)]
    stored = {d + timedelta(days=k) for k in range(-5, 45)}
    sales = plan_sales([d + timedelta(days=44)], pending, stored)
    assert sales.days == [d, d + timedelta(days=40), d + timedelta(days=44)]
    assert sales.restated == {d: (d,), d + timedelta(days=40): (d + timedelta(days=40),)}
    perf = plan_performance([d + timedelta(days=44)], pending, stored)
    # X..X+29 for both changed days, only where stored (up to d+44), minus the run's own day
    want = {d + timedelta(days=k) for k in range(0, 30)} | {d + timedelta(days=k) for k in range(40, 44)}
    assert set(perf.restated) == want
    assert perf.restated[d + timedelta(days=29)] == (d,)
    assert plan_performance([d], [], stored).restated == {}


def _dirty_rows(engine: sa.Engine, shop: str) -> list[date]:
    return [r.day for r in dirty.pending(engine, shop)]


def test_a_marking_made_after_it_was_read_survives_the_clear(engine: sa.Engine, tmp_path) -> None:
    """A concurrent ingest marks a day again between the read and the clear: it stays pending,
    and the performance step restates its sales itself."""
    orders = generated(n=60)
    load(engine, orders)
    store = LocalObjectStore(tmp_path / "objects")
    days = [D0 + timedelta(days=i) for i in range(10)]
    for day in days:
        store.put_bytes(sales_key("DE", day), b"stale")
        store.put_bytes(performance_key("DE", day), b"stale")
    with engine.begin() as conn:
        dirty.mark_days(conn, "DE", [days[2], days[5]])
    write_sales(engine, store, "DE", [days[9]])
    assert store.get_bytes(sales_key("DE", days[2])) != b"stale"
    assert store.get_bytes(sales_key("DE", days[0])) == b"stale"  # not changed, not restated
    with engine.begin() as conn:
        dirty.mark_days(conn, "DE", [days[5]])  # marked again before the performance step
    store.put_bytes(sales_key("DE", days[5]), b"stale")
    sales, perf = write_performance(engine, store, "DE", [days[9]])
    assert set(sales.plan.restated) == {days[5]}
    assert store.get_bytes(sales_key("DE", days[5])) != b"stale"
    assert set(perf.plan.restated) == set(days[2:9])
    assert store.get_bytes(performance_key("DE", days[1])) == b"stale"
    assert _dirty_rows(engine, "DE") == []
    # A marking newer than the one read is kept.
    with engine.begin() as conn:
        dirty.mark_days(conn, "DE", [days[3]])
    [read] = dirty.pending(engine, "DE")
    with engine.begin() as conn:
        dirty.mark_days(conn, "DE", [days[3]])
    dirty.clear(engine, "DE", [read])
    assert _dirty_rows(engine, "DE") == [days[3]]
