"""The API over warehouses filled by a real sync, on SQLite, MariaDB and PostgreSQL.

Expected figures are computed here, straight from the emulator's dataset with exact
Decimals and the SPEC §5 definitions, independently of the API's SQL.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest

from shopify_sync_tests.api.conftest import SHOPS, Synced

MONEY_RE = r"^-?\d+\.\d{2,}$"


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def _sec(ts: datetime | None) -> datetime | None:
    # The JSONL carries second precision.
    return ts.replace(microsecond=0) if ts is not None else None


def _counted(order: Any) -> bool:
    return not order.test and order.cancelled_at is None


def expected_overview(orders: dict[str, list[Any]], start: date, end: date) -> dict[tuple[str, str], dict]:
    out: dict[tuple[str, str], dict] = {}
    for shop, shop_orders in orders.items():
        for o in shop_orders:
            if not _counted(o) or not start <= o.processed_at.date() <= end:
                continue
            row = out.setdefault((shop, o.currency_code), {
                "orders": 0, "units": 0, "units_ordered": 0, "gross_sales": Decimal(0), "net_sales": Decimal(0),
                "refunds": Decimal(0), "refunded_orders": 0})
            row["orders"] += 1
            row["refunds"] += o.total_refunded
            row["refunded_orders"] += 1 if o.total_refunded > 0 else 0
            for li in o.line_items:
                if li.product_id is None:
                    continue
                row["units"] += li.current_quantity
                row["units_ordered"] += li.quantity
                row["gross_sales"] += li.quantity * li.original_unit_price
                row["net_sales"] += li.current_quantity * li.discounted_unit_price
    for row in out.values():
        row["average_order_value"] = (row["net_sales"] / row["orders"]).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
    return out


def _overview(synced: Synced, **params: str) -> dict[tuple[str, str], dict]:
    with synced.client() as client:
        resp = client.get("/analytics/commerce/overview", params=params)
    assert resp.status_code == 200, resp.text
    rows = {}
    for r in resp.json()["shops"]:
        for money in ("gross_sales", "net_sales", "average_order_value", "refunds"):
            assert isinstance(r[money], str)
            assert __import__("re").match(MONEY_RE, r[money]), r[money]
            r[money] = Decimal(r[money])
        rows[(r.pop("shop"), r.pop("currency_code"))] = r
    return rows


def _all_days(synced: Synced) -> tuple[date, date]:
    days = [o.processed_at.date() for orders in synced.orders.values() for o in orders]
    return min(days), max(days)


def test_overview_matches_the_dataset(synced: Synced) -> None:
    first, last = _all_days(synced)
    expected = expected_overview(synced.orders, first, last)
    assert {k[0] for k in expected} == set(SHOPS)  # both shops have counted orders
    assert {k[1] for k in expected} == {"EUR", "DKK"}
    assert _overview(synced, start=first.isoformat(), end=last.isoformat()) == expected


def test_overview_sub_range_and_shop_filter(synced: Synced) -> None:
    first, last = _all_days(synced)
    start, end = last - timedelta(days=6), last - timedelta(days=1)
    expected = expected_overview(synced.orders, start, end)
    assert _overview(synced, start=start.isoformat(), end=end.isoformat()) == expected
    only_da = {k: v for k, v in expected.items() if k[0] == "DA"}
    assert only_da and _overview(synced, start=start.isoformat(), end=end.isoformat(), shop="DA") == only_da
    # The widest possible range is not an error on any backend (bounds are clamped).
    assert _overview(synced, start="0001-01-01", end="9999-12-31") == expected_overview(
        synced.orders, date.min, date.max)
    # A range with no orders is an empty list, not an error.
    assert _overview(synced, start=(first - timedelta(days=40)).isoformat(),
                     end=(first - timedelta(days=30)).isoformat()) == {}


def _walk(client: Any, limit: int, **params: str) -> list[dict]:
    seen: list[dict] = []
    cursor = None
    pages = 0
    while True:
        resp = client.get("/orders", params={**params, "limit": limit, **({"cursor": cursor} if cursor else {})})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert len(body["orders"]) <= limit
        seen.extend(body["orders"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert pages < 1000
    return seen


def _sort_key(o: dict) -> tuple:
    return (-_ts(o["processed_at"]).timestamp(), o["shop"], o["order_id"])


def test_orders_pagination_has_no_duplicates_or_gaps(synced: Synced) -> None:
    with synced.client() as client:
        walked = _walk(client, limit=7)
    ids = [(o["shop"], o["order_id"]) for o in walked]
    assert len(ids) == len(set(ids))
    assert set(ids) == {(shop, o.id) for shop, orders in synced.orders.items() for o in orders}
    assert walked == sorted(walked, key=_sort_key)


def test_orders_filtered_by_shop_and_dates(synced: Synced) -> None:
    _, last = _all_days(synced)
    start, end = last - timedelta(days=5), last - timedelta(days=2)
    with synced.client() as client:
        walked = _walk(client, limit=4, shop="DEMO", start=start.isoformat(), end=end.isoformat())
        # A cursor is bound to its filters: reusing it with other filters is refused.
        page = client.get("/orders", params={"shop": "DEMO", "limit": 1}).json()
        other = client.get("/orders", params={"shop": "DA", "cursor": page["next_cursor"]})
        extreme = client.get("/orders", params={"start": "0001-01-01", "end": "9999-12-31", "limit": 500})
    expected = {o.id for o in synced.orders["DEMO"] if start <= o.processed_at.date() <= end}
    assert expected and {o["order_id"] for o in walked} == expected
    assert all(o["shop"] == "DEMO" for o in walked)
    assert other.status_code == 400 and other.json()["error"]["code"] == "bad_cursor"
    assert extreme.status_code == 200 and len(extreme.json()["orders"]) == sum(map(len, synced.orders.values()))


def _money(value: str | None) -> Decimal | None:
    return Decimal(value) if value is not None else None


def test_order_detail_matches_the_dataset(synced: Synced) -> None:
    # An order with refunds, a cancelled one and a test one: every flag must come through.
    demo = synced.orders["DEMO"]
    picks = [next(o for o in demo if o.refunds), next((o for o in demo if o.cancelled_at), None),
             next((o for o in demo if o.test), None)]
    with synced.client() as client:
        for o in (p for p in picks if p is not None):
            resp = client.get(f"/orders/{o.id}")
            assert resp.status_code == 200, resp.text
            body = resp.json()
            assert body["shop"] == "DEMO" and body["order_id"] == o.id and body["order_name"] == o.name
            assert body["test"] is o.test
            assert _ts(body["processed_at"]) == _sec(o.processed_at)
            assert _ts(body["cancelled_at"]) == _sec(o.cancelled_at)
            assert body["currency_code"] == o.currency_code
            assert body["financial_status"] == o.display_financial_status
            assert _money(body["total_price"]) == o.current_total
            assert _money(body["subtotal_price"]) == o.current_subtotal
            assert _money(body["total_tax"]) == o.current_total_tax
            assert _money(body["total_shipping"]) == o.current_shipping
            assert _money(body["total_refunded"]) == o.total_refunded
            lines = {li["line_item_id"]: li for li in body["line_items"]}
            assert set(lines) == {li.id for li in o.line_items}
            for li in o.line_items:
                got = lines[li.id]
                assert (got["quantity"], got["current_quantity"], got["product_id"], got["sku"]) == (
                    li.quantity, li.current_quantity, li.product_id, li.sku)
                assert _money(got["original_unit_price"]) == li.original_unit_price
                assert _money(got["discounted_unit_price"]) == li.discounted_unit_price
                assert _money(got["discounted_total"]) == li.discounted_total
            assert {r["refund_id"]: _money(r["total_refunded"]) for r in body["refunds"]} == {
                r.id: r.total_refunded for r in o.refunds}
        # The same id with the other shop is a 404 (ids are per shop).
        missing = client.get(f"/orders/{demo[0].id}", params={"shop": "DA"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "order_not_found"


def test_pipelines_report_watermark_and_last_success(synced: Synced) -> None:
    with synced.client() as client:
        resp = client.get("/analytics/pipelines")
    assert resp.status_code == 200, resp.text
    shops = {s["shop"]: s for s in resp.json()["shops"]}
    assert set(shops) == set(SHOPS)
    for shop in SHOPS:
        s = shops[shop]
        assert _ts(s["watermark_at"]) == _sec(max(o.updated_at for o in synced.orders[shop]))
        assert s["last_success_run_id"] == synced.run_ids[shop]
        assert s["lag_seconds"] is not None and s["lag_seconds"] >= 0
        assert s["open_jobs"] == 0 and s["recent_failures"] == []


def test_ingest_runs_list_the_syncs(synced: Synced) -> None:
    with synced.client() as client:
        runs = client.get("/api/ingest/runs").json()["runs"]
        only_da = client.get("/api/ingest/runs", params={"shop": "DA"}).json()["runs"]
    by_run = {r["run_id"]: r for r in runs}
    for shop in SHOPS:
        r = by_run[synced.run_ids[shop]]
        assert (r["shop"], r["status"], r["job_type"], r["initiator"]) == (
            shop, "completed", "DAILY_INCREMENTAL", "user")
        assert r["error"] is None
    # Newest first: the DA run was launched after the DEMO run.
    assert [r["run_id"] for r in runs][:2] == [synced.run_ids["DA"], synced.run_ids["DEMO"]]
    assert [r["run_id"] for r in only_da] == [synced.run_ids["DA"]]


@pytest.mark.parametrize("path", ["/orders", "/analytics/commerce/overview", "/analytics/pipelines",
                                  "/api/ingest/runs"])
def test_data_needs_the_token(synced_sqlite: Synced, path: str) -> None:
    with synced_sqlite.client() as client:
        resp = client.get(path, headers={"Authorization": "Bearer nope"})
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "unauthorized"
