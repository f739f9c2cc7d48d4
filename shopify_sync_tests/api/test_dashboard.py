"""The dashboard's page and assets, and the two endpoints it added (daily series, top products).

The daily series is checked day by day against the emulator's dataset (exact Decimals,
SPEC §5), on the three backends: its day grouping is SQL each dialect spells its own way.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from shopify_sync.api.dashboard import STATIC_DIR
from shopify_sync.api.series import trend_of
from shopify_sync_tests.api.conftest import Synced
from shopify_sync_tests.api.test_data import expected_overview


def _expected_days(orders: dict[str, list[Any]], start: date, end: date) -> dict[tuple[str, str, str], dict]:
    out: dict[tuple[str, str, str], dict] = {}
    for i in range((end - start).days + 1):
        day = start + timedelta(days=i)
        for (shop, cur), row in expected_overview(orders, day, day).items():
            out[(shop, cur, day.isoformat())] = row
    return out


def test_daily_series_matches_the_dataset_day_by_day(synced: Synced) -> None:
    end = synced.day + timedelta(days=1)
    start = end - timedelta(days=24)
    with synced.client() as client:
        resp = client.get("/analytics/commerce/daily", params={"start": start.isoformat(), "end": end.isoformat()})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    expected = _expected_days(synced.orders, start, end)
    assert expected, "the dataset has no counted orders in the range: the test would prove nothing"
    seen = set()
    for series in body["series"]:
        assert [d["date"] for d in series["days"]] == [
            (start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
        for d in series["days"]:
            want = expected.get((series["shop"], series["currency_code"], d["date"]))
            if want is None:
                assert (d["orders"], d["units"], Decimal(d["net_sales"])) == (0, 0, 0)
                continue
            seen.add((series["shop"], series["currency_code"], d["date"]))
            assert (d["orders"], d["units"], Decimal(d["net_sales"])) == (
                want["orders"], want["units"], want["net_sales"]), (series["shop"], d)
    assert seen == set(expected)


def test_daily_series_adds_up_to_the_overview(synced_sqlite: Synced) -> None:
    params = {"start": (synced_sqlite.day - timedelta(days=40)).isoformat(), "end": synced_sqlite.day.isoformat()}
    with synced_sqlite.client() as client:
        daily = client.get("/analytics/commerce/daily", params=params).json()
        overview = client.get("/analytics/commerce/overview", params=params).json()
    sums = {(s["shop"], s["currency_code"]): (sum(d["orders"] for d in s["days"]), sum(d["units"] for d in s["days"]),
                                               sum(Decimal(d["net_sales"]) for d in s["days"]))
            for s in daily["series"]}
    assert sums == {(r["shop"], r["currency_code"]): (r["orders"], r["units"], Decimal(r["net_sales"]))
                    for r in overview["shops"]}


def test_daily_series_rejects_bad_ranges(synced_sqlite: Synced) -> None:
    with synced_sqlite.client() as client:
        too_long = client.get("/analytics/commerce/daily", params={"start": "2020-01-01", "end": "2026-01-01"})
        reversed_ = client.get("/analytics/commerce/daily", params={"start": "2026-01-02", "end": "2026-01-01"})
        unknown = client.get("/analytics/commerce/daily", params={"shop": "NOPE"})
    assert too_long.status_code == 400 and too_long.json()["error"]["code"] == "invalid_range"
    assert reversed_.status_code == 400 and reversed_.json()["error"]["code"] == "invalid_range"
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "unknown_shop"


def test_top_products_are_the_product_table_ranked(synced_sqlite: Synced) -> None:
    from shopify_sync.warehouse import make_engine
    from shopify_sync.warehouse.tables import product

    with synced_sqlite.client() as client:
        body = client.get("/analytics/products/top", params={"limit": 5}).json()
    engine = make_engine(synced_sqlite.settings.database_url)
    try:
        with engine.connect() as conn:
            p = product
            rows = conn.execute(sa.select(p.c.shop, p.c.product_id, p.c.net_sales_30d, p.c.net_sales_7d)).all()
    finally:
        engine.dispose()
    assert [s["shop"] for s in body["shops"]] == list(synced_sqlite.settings.shop_codes)
    for shop in body["shops"]:
        stored = sorted(((Decimal(str(r.net_sales_30d)), Decimal(str(r.net_sales_7d)), r.product_id)
                         for r in rows if r.shop == shop["shop"]), key=lambda t: (-t[0], -t[1], t[2]))[:5]
        assert stored, f"{shop['shop']} has no product rows: the test would prove nothing"
        got = [(Decimal(p["net_sales_30d"]), Decimal(p["net_sales_7d"]), p["product_id"]) for p in shop["products"]]
        assert got == stored
        assert shop["metrics_as_of"] is not None


def test_trend_compares_daily_rates() -> None:
    # 7-day rate 10/day vs 30-day rate 10/day: flat, 0 %.
    assert trend_of(Decimal(70), Decimal(300)) == ("flat", 0.0)
    # 7-day rate 20/day vs 30-day rate 10/day: up 100 %.
    assert trend_of(Decimal(140), Decimal(300)) == ("up", 100.0)
    assert trend_of(Decimal(0), Decimal(300)) == ("down", -100.0)
    assert trend_of(Decimal(5), Decimal(0)) == ("new", None)
    assert trend_of(Decimal(0), Decimal(0)) == ("flat", None)


def test_new_endpoints_need_the_token(synced_sqlite: Synced) -> None:
    with synced_sqlite.client() as client:
        client.headers.pop("Authorization")
        for path in ("/analytics/commerce/daily", "/analytics/products/top"):
            resp = client.get(path)
            assert resp.status_code == 401 and resp.json()["error"]["code"] == "unauthorized"


def test_page_and_assets_are_served_from_the_app(synced_sqlite: Synced) -> None:
    with synced_sqlite.client() as client:
        client.headers.pop("Authorization")
        page = client.get("/dashboard")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        for ref in re.findall(r'(?:src|href)="(/dashboard/static/[^"]+)"', page.text):
            asset = client.get(ref)
            assert asset.status_code == 200, ref
    assert '<option value="DA">DA</option>' in page.text
    # Nothing from elsewhere: no absolute URL in the page or the dashboard's own script.
    for text in (page.text, (STATIC_DIR / "dashboard.js").read_text()):
        assert not re.search(r"https?://", text)
    assert (STATIC_DIR / "vendor" / "uPlot.LICENSE").read_text().startswith("The MIT License")
