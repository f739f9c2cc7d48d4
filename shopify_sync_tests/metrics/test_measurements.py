"""SPEC §5 metrics on all three backends, compared with a plain-Python recomputation.

The expected figures are computed here from the same hand-built rows with Decimal
arithmetic and none of the production code, so a wrong SQL filter, window bound or
money scaling shows up as a mismatch.
"""

from __future__ import annotations

import io
import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from shopify_sync.metrics.measurements import (
    MixedCurrencyError,
    parquet_bytes,
    performance_frame,
    refresh_products,
    sales_frame,
    write_parquet,
)
from shopify_sync.storage import LocalObjectStore, sales_key
from shopify_sync.timeutil import day_start
from shopify_sync.warehouse import make_engine, rollup
from shopify_sync.warehouse.queries import shop_currency_totals
from shopify_sync.warehouse.tables import order_header, order_line_item, product

D0 = date(2026, 3, 1)


@dataclass
class Line:
    line_item_id: int
    product_id: int | None
    variant_id: int | None
    sku: str | None
    title: str
    quantity: int
    current_quantity: int
    original_unit_price: Decimal
    discounted_unit_price: Decimal
    currency_code: str


@dataclass
class Order:
    shop: str
    order_id: int
    processed_at: datetime | None
    currency_code: str
    test: bool = False
    cancelled_at: datetime | None = None
    lines: list[Line] = field(default_factory=list)


def at(day: date, h: int = 12, m: int = 0, s: int = 0, us: int = 0, tz: timezone = UTC) -> datetime:
    return datetime(day.year, day.month, day.day, h, m, s, us, tzinfo=tz)


def hand_built() -> list[Order]:
    """Edge cases, each named; ids are unique per shop."""
    d = D0 + timedelta(days=10)
    eur = "EUR"

    def line(lid: int, pid: int | None, vid: int | None, q: int, cq: int, orig: str, disc: str, title: str = "Mug",
             cur: str = eur) -> Line:
        return Line(lid, pid, vid, None if pid is None else f"SKU-{pid}-{vid}", title, q, cq, Decimal(orig),
                    Decimal(disc), cur)

    return [
        # plain order, two variants of one product plus a second line of the same variant
        Order("DE", 1, at(d, 9), eur, lines=[line(101, 7, 70, 2, 2, "19.99", "17.5", "Mug v1"),
                                             line(102, 7, 71, 1, 1, "21.00", "21.00"),
                                             line(103, 7, 70, 1, 1, "19.99", "19.99")]),
        # test order and cancelled order: stored, never counted
        Order("DE", 2, at(d, 10), eur, test=True, lines=[line(201, 7, 70, 5, 5, "19.99", "19.99")]),
        Order("DE", 3, at(d, 11), eur, cancelled_at=at(d, 12), lines=[line(301, 7, 70, 4, 4, "19.99", "19.99")]),
        # refunded to zero: counts in units_ordered / gross, not in orders / net; row still exists
        Order("DE", 4, at(d, 13), eur, lines=[line(401, 8, 80, 3, 0, "5.0001", "4.9999")]),
        # line without product (custom item / deleted product): ignored
        Order("DE", 5, at(d, 14), eur, lines=[line(501, None, None, 9, 9, "99.00", "99.00")]),
        # midnight edges: last microsecond of d, first instant of d+1, an offset timestamp on d (UTC)
        Order("DE", 6, at(d, 23, 59, 59, 999_999), eur, lines=[line(601, 9, 90, 1, 1, "1.10", "1.10", "Pen")]),
        Order("DE", 7, at(d + timedelta(days=1), 0), eur, lines=[line(701, 9, 90, 2, 2, "1.10", "1.00", "Pen")]),
        Order("DE", 8, datetime(d.year, d.month, d.day + 1, 1, 30, tzinfo=timezone(timedelta(hours=2))), eur,
              lines=[line(801, 9, 90, 4, 3, "1.10", "0.95", "Pen (new)")]),
        # not processed yet: no day, not counted
        Order("DE", 9, None, eur, lines=[line(901, 9, 90, 1, 1, "1.10", "1.10")]),
        # same product id in another shop and currency: never mixed with DE
        Order("CH", 1, at(d, 9), "CHF", lines=[line(111, 7, 70, 1, 1, "25.00", "22.00", cur="CHF")]),
        # variant unknown (deleted variant): its own key with a null variant_id
        Order("DE", 10, at(d, 15), eur, lines=[line(1001, 7, None, 1, 1, "3.00", "3.00")]),
    ]


def generated(seed: int = 11, n: int = 160) -> list[Order]:
    rng = random.Random(seed)
    orders = []
    for i in range(n):
        shop = rng.choice(["DE", "NL", "CH"])
        cur = {"DE": "EUR", "NL": "EUR", "CH": "CHF"}[shop]
        day = D0 + timedelta(days=rng.randrange(0, 45))
        processed = at(day, rng.randrange(24), rng.randrange(60), rng.randrange(60), rng.randrange(1_000_000))
        o = Order(shop, 10_000 + i, processed, cur, test=rng.random() < 0.08,
                  cancelled_at=processed + timedelta(hours=1) if rng.random() < 0.08 else None)
        for j in range(rng.randrange(1, 5)):
            pid = rng.choice([None, 1, 2, 3, 4, 5]) if rng.random() < 0.1 else rng.choice([1, 2, 3, 4, 5])
            vid = None if pid is None else pid * 10 + rng.randrange(2)
            q = rng.randrange(1, 6)
            cq = q if rng.random() < 0.7 else rng.randrange(0, q + 1)
            orig = Decimal(rng.randrange(100, 100_000)).scaleb(-2)
            disc = (orig * Decimal(rng.choice(["1", "0.9", "0.75"]))).quantize(Decimal("0.0001"))
            o.lines.append(Line(o.order_id * 10 + j, pid, vid, None if pid is None else f"S{vid}",
                                f"Product {pid} rev {day.isoformat()}", q, cq, orig, disc, cur))
        orders.append(o)
    return orders


def load(engine: sa.Engine, orders: list[Order]) -> None:
    heads, lines = [], []
    for o in orders:
        heads.append({"shop": o.shop, "order_id": o.order_id, "order_name": f"#{o.order_id}",
                      "updated_at": o.processed_at or at(D0), "processed_at": o.processed_at,
                      "created_at": o.processed_at, "cancelled_at": o.cancelled_at, "test": o.test,
                      "currency_code": o.currency_code})
        for ln in o.lines:
            lines.append({"shop": o.shop, "order_id": o.order_id, "order_updated_at": o.processed_at or at(D0),
                          **{k: getattr(ln, k) for k in Line.__dataclass_fields__}})
    with engine.begin() as conn:
        conn.execute(order_header.insert(), heads)
        conn.execute(order_line_item.insert(), lines)
    # Written past the ingest: measurement_day_sum is rebuilt from the lines, as a repair would.
    for shop in sorted({o.shop for o in orders}):
        rollup.rebuild(engine, shop)


# -- the independent recomputation ---------------------------------------------------------


def counted_lines(orders: list[Order], shop: str) -> list[tuple[Order, Line, date]]:
    out = []
    for o in orders:
        if o.shop != shop or o.test or o.cancelled_at is not None or o.processed_at is None:
            continue
        for ln in o.lines:
            if ln.product_id is not None:
                out.append((o, ln, o.processed_at.astimezone(UTC).date()))
    return out


def latest(items: list[tuple[Order, Line, date]], attr: str) -> Any:
    o, ln, _ = max(items, key=lambda t: (t[0].processed_at, t[1].line_item_id))
    return getattr(ln, attr)


def expected_sales(orders: list[Order], shop: str, day: date) -> list[dict[str, Any]]:
    groups: dict[tuple[int, int | None], list[tuple[Order, Line, date]]] = defaultdict(list)
    for o, ln, d in counted_lines(orders, shop):
        if d == day:
            groups[(ln.product_id, ln.variant_id)].append((o, ln, d))
    rows = []
    for (pid, vid), items in groups.items():
        rows.append({
            "shop": shop, "date": day, "product_id": pid, "variant_id": vid,
            "sku": latest(items, "sku"), "currency_code": items[0][1].currency_code,
            "orders": len({o.order_id for o, ln, _ in items if ln.current_quantity > 0}),
            "units_ordered": sum(ln.quantity for _, ln, _ in items),
            "units_net": sum(ln.current_quantity for _, ln, _ in items),
            "gross_sales": sum((ln.quantity * ln.original_unit_price for _, ln, _ in items), Decimal(0)),
            "net_sales": sum((ln.current_quantity * ln.discounted_unit_price for _, ln, _ in items), Decimal(0)),
        })
    return sorted(rows, key=lambda r: (r["product_id"], -1 if r["variant_id"] is None else r["variant_id"]))


def expected_performance(orders: list[Order], shop: str, as_of: date) -> list[dict[str, Any]]:
    by_product: dict[int, list[tuple[Order, Line, date]]] = defaultdict(list)
    for o, ln, d in counted_lines(orders, shop):
        if as_of - timedelta(days=29) <= d <= as_of:
            by_product[ln.product_id].append((o, ln, d))
    rows = []
    for pid, items in by_product.items():
        row: dict[str, Any] = {"shop": shop, "date": as_of, "product_id": pid, "title": latest(items, "title"),
                               "currency_code": items[0][1].currency_code}
        for n in (7, 30):
            win = [(o, ln) for o, ln, d in items if d >= as_of - timedelta(days=n - 1)]
            row[f"units_{n}d"] = sum(ln.current_quantity for _, ln in win)
            row[f"net_sales_{n}d"] = sum((ln.current_quantity * ln.discounted_unit_price for _, ln in win), Decimal(0))
            row[f"orders_{n}d"] = len({o.order_id for o, ln in win if ln.current_quantity > 0})
        rows.append(row)
    return sorted(rows, key=lambda r: r["product_id"])


def as_rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dicts()


# -- tests -------------------------------------------------------------------------------------


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def test_figures_match_an_independent_recomputation(engine: sa.Engine) -> None:
    orders = hand_built() + generated()
    load(engine, orders)
    days = [D0 + timedelta(days=i) for i in range(-1, 47)]
    checked_rows = 0
    for shop in ("DE", "NL", "CH", "NOPE"):
        for day in days:
            got, want = as_rows(sales_frame(engine, shop, day)), expected_sales(orders, shop, day)
            assert got == want, (shop, day)
            checked_rows += len(got)
        for as_of in (D0 + timedelta(days=10), D0 + timedelta(days=11), D0 + timedelta(days=35), D0 + timedelta(days=60)):
            got, want = as_rows(performance_frame(engine, shop, as_of)), expected_performance(orders, shop, as_of)
            assert got == want, (shop, as_of)
            checked_rows += len(got)
    assert checked_rows > 300  # the comparison really covered data, not empty frames


def test_edge_cases_are_counted_as_specified(engine: sa.Engine) -> None:
    load(engine, hand_built())
    d = D0 + timedelta(days=10)
    rows = {(r["product_id"], r["variant_id"]): r for r in as_rows(sales_frame(engine, "DE", d))}
    # test / cancelled / unprocessed orders and the product-less line never count
    assert set(rows) == {(7, 70), (7, 71), (7, None), (8, 80), (9, 90)}
    assert rows[(7, 70)]["units_ordered"] == 3 and rows[(7, 70)]["orders"] == 1
    assert rows[(7, 70)]["net_sales"] == Decimal("2") * Decimal("17.5") + Decimal("19.99")
    # refunded to zero: the row exists, with 0 net units, 0 orders and its gross intact
    assert (rows[(8, 80)]["units_net"], rows[(8, 80)]["orders"], rows[(8, 80)]["net_sales"]) == (0, 0, Decimal(0))
    assert rows[(8, 80)]["gross_sales"] == Decimal("15.0003")
    # 23:59:59.999999 UTC and 01:30+02:00 on d+1 (= 23:30 UTC on d) belong to d; 00:00 on d+1 does not
    assert rows[(9, 90)]["units_ordered"] == 5 and rows[(9, 90)]["orders"] == 2
    next_day = as_rows(sales_frame(engine, "DE", d + timedelta(days=1)))
    assert [(r["product_id"], r["units_net"]) for r in next_day] == [(9, 2)]
    # the most recent line (23:59:59.999999 beats 23:30) names the product
    perf = {r["product_id"]: r for r in as_rows(performance_frame(engine, "DE", d))}
    assert perf[9]["title"] == "Pen" and perf[7]["title"] == "Mug"
    assert perf[8]["units_7d"] == 0 and perf[8]["orders_30d"] == 0
    # CH has its own currency; DE figures never include it
    ch = as_rows(sales_frame(engine, "CH", d))
    assert [(r["currency_code"], r["net_sales"]) for r in ch] == [("CHF", Decimal("22.0000"))]


def test_the_api_overview_and_the_daily_measurements_agree(engine: sa.Engine) -> None:
    """Both read warehouse.queries' counted orders: a range's overview is the sum of its days."""
    orders = hand_built() + generated()
    load(engine, orders)
    first, last = D0 + timedelta(days=5), D0 + timedelta(days=20)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    totals = {t.shop: t for t in shop_currency_totals(engine, day_start(first), day_start(last + timedelta(days=1)))}
    assert set(totals) == {"DE", "NL", "CH"}
    for shop, t in totals.items():
        frame = pl.concat([sales_frame(engine, shop, d) for d in days])
        assert (t.units_net, t.units_ordered) == (frame["units_net"].sum(), frame["units_ordered"].sum()), shop
        assert t.gross_sales == sum(frame["gross_sales"].to_list(), Decimal(0)), shop
        assert t.net_sales == sum(frame["net_sales"].to_list(), Decimal(0)), shop
        assert t.orders == len({o.order_id for o in orders if o.shop == shop and not o.test and not o.cancelled_at
                                and o.processed_at and first <= o.processed_at.astimezone(UTC).date() <= last})


def test_an_order_counts_once_per_window_across_days(engine: sa.Engine) -> None:
    # Two lines of one product in one order, plus a later order: 2 orders, not 3.
    d = D0 + timedelta(days=20)
    orders = [
        Order("DE", 1, at(d - timedelta(days=3)), "EUR", lines=[
            Line(1, 5, 50, "A", "A", 1, 1, Decimal(1), Decimal(1), "EUR"),
            Line(2, 5, 51, "B", "A", 1, 1, Decimal(1), Decimal(1), "EUR")]),
        Order("DE", 2, at(d - timedelta(days=20)), "EUR", lines=[
            Line(3, 5, 50, "A", "A", 1, 1, Decimal(1), Decimal(1), "EUR")]),
    ]
    load(engine, orders)
    (row,) = as_rows(performance_frame(engine, "DE", d))
    assert (row["orders_7d"], row["orders_30d"], row["units_30d"]) == (1, 2, 3)


def test_refresh_products_zeroes_stale_figures_and_never_regresses(engine: sa.Engine) -> None:
    orders = hand_built()
    load(engine, orders)
    d = D0 + timedelta(days=10)

    def table() -> dict[int, tuple[Any, ...]]:
        with engine.connect() as conn:
            return {r.product_id: (r.title, r.units_7d, r.net_sales_7d, r.orders_7d, r.units_30d, r.net_sales_30d,
                                   r.orders_30d, r.metrics_as_of)
                    for r in conn.execute(sa.select(product).where(product.c.shop == "DE"))}

    assert refresh_products(engine, "DE", d) == 3
    want = {r["product_id"]: (r["title"], r["units_7d"], r["net_sales_7d"], r["orders_7d"], r["units_30d"],
                              r["net_sales_30d"], r["orders_30d"], d)
            for r in expected_performance(orders, "DE", d)}
    assert table() == want
    # A re-run is idempotent.
    assert refresh_products(engine, "DE", d) == 3 and table() == want

    # 10 days later, only product 9 has a line in the 7-day window: 7 and 8 drop to 0
    # for 7 days but keep their 30-day figures.
    later = d + timedelta(days=10)
    refresh_products(engine, "DE", later)
    got = table()
    assert got[7][1:4] == (0, Decimal(0), 0) and got[7][4] == want[7][4]
    assert got[9][1] == 0  # product 9's lines were on d and d+1: outside D-6..D
    assert all(v[-1] == later for v in got.values())

    # 40 days later nothing is in any window: every product shows 0, none is stale, titles stay.
    far = d + timedelta(days=40)
    assert refresh_products(engine, "DE", far) == 3
    assert table() == {pid: (v[0], 0, Decimal(0), 0, 0, Decimal(0), 0, far) for pid, v in want.items()}

    # An older day (a backfill after a newer daily run) does not move the table back in
    # time: it is recomputed as of the newer date, so late data is reflected there.
    late = Order("DE", 99, at(far - timedelta(days=1)), "EUR",
                 lines=[Line(9901, 11, 110, "N", "New", 2, 2, Decimal("4.00"), Decimal("3.50"), "EUR")])
    load(engine, [late])
    assert refresh_products(engine, "DE", d) == 4
    got = table()
    assert all(v[-1] == far for v in got.values())
    assert got[11] == ("New", 2, Decimal("7.0000"), 1, 2, Decimal("7.0000"), 1, far)
    assert got[7] == (want[7][0], 0, Decimal(0), 0, 0, Decimal(0), 0, far)
    # force: as of the given day, even if older.
    assert refresh_products(engine, "DE", d, force=True) == 4
    assert table()[7] == want[7] and table()[11][1:] == (0, Decimal(0), 0, 0, Decimal(0), 0, d)
    # Other shops are untouched.
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(product).where(product.c.shop == "CH")).scalar() == 0


def test_mixed_currencies_in_one_key_are_refused(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    d = D0
    load(engine, [
        Order("DE", 1, at(d), "EUR", lines=[Line(1, 5, 50, "A", "A", 1, 1, Decimal(1), Decimal(1), "EUR")]),
        Order("DE", 2, at(d), "USD", lines=[Line(2, 5, 50, "A", "A", 1, 1, Decimal(1), Decimal(1), "USD")]),
    ])
    with pytest.raises(MixedCurrencyError, match="several currencies \\(EUR … USD\\)"):
        sales_frame(engine, "DE", d)
    with pytest.raises(MixedCurrencyError, match="product 5"):
        performance_frame(engine, "DE", d)


@pytest.mark.parametrize("bad", ["2026-13-01", "yesterday", datetime(2026, 1, 1, 5)])
def test_bad_day_is_a_clear_error(sqlite_url: str, bad: Any) -> None:
    engine = make_engine(sqlite_url)
    with pytest.raises(ValueError, match="day|timezone"):
        sales_frame(engine, "DE", bad)


# -- Parquet ---------------------------------------------------------------------------------


def test_parquet_schema_and_byte_identical_rewrite(sqlite_url: str, tmp_path) -> None:
    engine = make_engine(sqlite_url)
    orders = hand_built() + generated()
    load(engine, orders)
    d = D0 + timedelta(days=10)
    frame = sales_frame(engine, "DE", d)
    assert frame.height >= 5
    store = LocalObjectStore(tmp_path / "objects")
    key = sales_key("DE", d)
    written = write_parquet(store, key, frame)
    first = store.get_bytes(key)
    assert written == len(first)

    schema = pq.read_schema(io.BytesIO(first))
    assert schema.field("product_id").type == pa.int64() and schema.field("variant_id").type == pa.int64()
    assert schema.field("orders").type == pa.int64() and schema.field("units_net").type == pa.int64()
    assert schema.field("gross_sales").type == pa.decimal128(38, 4)
    assert schema.field("net_sales").type == pa.decimal128(38, 4)
    assert schema.field("date").type == pa.date32() and schema.field("shop").type == pa.string()
    assert not any(pa.types.is_floating(f.type) for f in schema)
    assert pq.ParquetFile(io.BytesIO(first)).metadata.metadata is None  # no writer/time-dependent blobs

    # Recomputed later, rows in another order: the object is rewritten byte for byte.
    again = sales_frame(engine, "DE", d).sample(fraction=1.0, shuffle=True, seed=3)
    write_parquet(store, key, again)
    assert store.get_bytes(key) == first
    # What is read back is exactly the frame.
    back = pl.read_parquet(io.BytesIO(first))
    assert back.to_dicts() == frame.to_dicts()

    perf = performance_frame(engine, "DE", d)
    pbytes = write_parquet(perf)
    assert pbytes == parquet_bytes(perf.reverse())
    pschema = pq.read_schema(io.BytesIO(pbytes))
    assert pschema.field("net_sales_30d").type == pa.decimal128(38, 4)
    assert pschema.names[:3] == ["shop", "date", "product_id"]


def test_empty_day_still_writes_a_typed_file(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    frame = sales_frame(engine, "DE", D0)
    assert frame.height == 0
    schema = pq.read_schema(io.BytesIO(parquet_bytes(frame)))
    assert schema.field("net_sales").type == pa.decimal128(38, 4)


def test_parquet_refuses_frames_that_are_not_measurements() -> None:
    with pytest.raises(ValueError, match="not a measurement frame"):
        parquet_bytes(pl.DataFrame({"a": [1]}))
    frame = pl.DataFrame([{"shop": "DE", "date": D0, "product_id": 1, "variant_id": 2, "sku": "S",
                           "currency_code": "EUR", "orders": 1, "units_ordered": 1, "units_net": 1,
                           "gross_sales": 1.1, "net_sales": 1.1}])
    with pytest.raises(ValueError, match="float"):
        parquet_bytes(frame)
    with pytest.raises(TypeError):
        write_parquet(1, 2)  # type: ignore[call-overload]


def test_sqlite_plans_drive_lines_by_order_not_by_a_product_range_scan(sqlite_url: str) -> None:
    """Guards the quadratic plan (a (shop, product_id) range scan per order) seen without statistics."""
    engine = make_engine(sqlite_url)
    load(engine, generated(n=40))
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "order_line_item" in statement:
            captured.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        sales_frame(engine, "DE", D0 + timedelta(days=3))
        performance_frame(engine, "DE", D0 + timedelta(days=40))
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    assert len(captured) >= 3
    with engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()
        for statement, parameters in captured:
            plan = " | ".join(str(row[-1]) for row in cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters))
            assert "product_id>" not in plan.replace(" ", ""), plan
            assert "ix_order_line_item_shop_order" in plan or "SCAN li" not in plan, plan
