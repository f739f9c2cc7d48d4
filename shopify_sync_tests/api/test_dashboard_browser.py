"""The staff dashboard in headless Chromium over a warehouse a real sync filled (two shops).

The page is served by the real app under uvicorn on loopback; the test signs in, checks
that both charts are drawn with one line per shop and that every KPI equals
``/analytics/commerce/overview`` for the shown range, changes the range and the shop by
keyboard only, then shows the empty-range and refused-token messages. Screenshots of
each step go to ``docs/screenshots/dashboard-*.png``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shopify_sync_tests.api.conftest import API_TOKEN, Synced
from shopify_sync_tests.browser import browser_page, free_port, shot


@pytest.fixture(scope="module")
def served(synced_sqlite: Synced) -> Iterator[str]:
    import uvicorn

    from shopify_sync.api.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(synced_sqlite.settings), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def _overview(base: str, start: str, end: str, shop: str = "") -> dict[tuple[str, str], dict[str, str]]:
    params = {"start": start, "end": end, **({"shop": shop} if shop else {})}
    resp = httpx.get(f"{base}/analytics/commerce/overview", params=params,
                     headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert resp.status_code == 200, resp.text
    keys = ("orders", "units", "gross_sales", "net_sales", "average_order_value", "refunds")
    return {(r["shop"], r["currency_code"]): {k: str(r[k]) for k in keys} for r in resp.json()["shops"]}


def _shown_kpis(page: Any) -> dict[tuple[str, str], dict[str, str]]:
    rows = page.eval_on_selector_all("#kpis tbody tr", """rows => rows.map(r => ({
        shop: r.dataset.shop, currency: r.dataset.currency,
        kpis: Object.fromEntries([...r.querySelectorAll('[data-kpi]')].map(c => [c.dataset.kpi, c.dataset.value]))
    }))""")
    return {(r["shop"], r["currency"]): r["kpis"] for r in rows}


def _assert_kpis_match(page: Any, base: str) -> dict[tuple[str, str], dict[str, str]]:
    start, end = page.input_value("#start"), page.input_value("#end")
    expected = _overview(base, start, end, page.input_value("#shop"))
    assert _shown_kpis(page) == expected
    assert page.text_content("#kpi-range") == f"{start} to {end}"
    return expected


def _wait_loaded(page: Any) -> None:
    page.wait_for_selector("body[data-loaded]", state="attached")


def _reload_wait(page: Any, action: Any) -> None:
    page.evaluate("delete document.body.dataset.loaded")
    action()
    _wait_loaded(page)


def _tab_until(page: Any, focused_js: str, *, back: bool = False, limit: int = 20) -> None:
    # A date input has a Tab stop per field (month, day, year): count stops, not controls.
    for _ in range(limit):
        page.keyboard.press("Shift+Tab" if back else "Tab")
        if page.evaluate(focused_js):
            return
    raise AssertionError(f"never focused by keyboard: {focused_js}")


def _chart_drawn(page: Any, selector: str) -> bool:
    # Some pixel of the plot canvas is painted: uPlot drew lines, not just an empty frame.
    return bool(page.eval_on_selector(f"{selector} canvas", """c => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) return true;
        return false; }"""))


def test_dashboard_in_chromium(served: str, synced_sqlite: Synced) -> None:
    errors: list[str] = []
    with browser_page(errors) as page:
        page.goto(f"{served}/dashboard")
        # First visit: only the token form, focused, so typing is all it takes.
        assert page.evaluate("document.activeElement.id") == "token"
        shot(page, "dashboard-1-sign-in")
        page.keyboard.type(API_TOKEN)
        page.keyboard.press("Enter")
        _wait_loaded(page)
        assert page.evaluate("document.body.dataset.loaded") == "ok", page.text_content("#messages")
        assert API_TOKEN not in page.url
        for chart in ("#chart-net", "#chart-units"):
            assert page.get_attribute(chart, "data-series") == str(len(synced_sqlite.settings.shop_codes))
            assert _chart_drawn(page, chart), f"{chart} has a blank canvas"
        expected = _assert_kpis_match(page, served)
        assert {shop for shop, _ in expected} == set(synced_sqlite.settings.shop_codes)
        assert page.locator("#top-products table").count() == 2
        assert page.locator("#health tbody tr").count() == 2
        shot(page, "dashboard-2-overview")

        # Keyboard only: Tab from the focused start date to "Last 7 days", Enter.
        page.focus("#start")
        _tab_until(page, "document.activeElement.dataset.days === '7'")
        _reload_wait(page, lambda: page.keyboard.press("Enter"))
        week = _assert_kpis_match(page, served)
        assert week != expected, "the 7-day figures equal the 30-day ones: the range did not change"
        # Then one shop: focus the select, arrow down to the first shop, Tab to Show, Enter.
        _tab_until(page, "document.activeElement.id === 'shop'", back=True)
        page.keyboard.press("ArrowDown")
        _tab_until(page, "document.activeElement.id === 'apply'")
        _reload_wait(page, lambda: page.keyboard.press("Enter"))
        shop = page.input_value("#shop")
        assert shop == synced_sqlite.settings.shop_codes[0]
        assert {s for s, _ in _assert_kpis_match(page, served)} == {shop}
        assert page.get_attribute("#chart-net", "data-series") == "1"
        shot(page, "dashboard-3-one-shop-7-days")
        assert errors == [], errors

        # A range without orders: a visible message per shop and no chart.
        page.select_option("#shop", "")
        page.fill("#start", "2001-01-01")
        page.fill("#end", "2001-01-31")
        _reload_wait(page, lambda: page.click("#apply"))
        assert page.locator("#kpis tbody tr").count() == 0
        for code in synced_sqlite.settings.shop_codes:
            assert page.locator(f'#empty-shops [data-empty-shop="{code}"]').is_visible()
        assert "No orders in this range" in (page.text_content("#chart-net") or "")
        shot(page, "dashboard-4-empty-range")
        assert errors == [], errors

        # A refused token: back to the form with a visible reason, the token dropped.
        page.evaluate("sessionStorage.setItem('shopify_sync.api_token', 'wrong-token')")
        page.reload()
        page.wait_for_selector("#login:not([hidden])")
        assert "refused the token" in (page.text_content("#messages") or "")
        assert page.evaluate("sessionStorage.getItem('shopify_sync.api_token')") is None
        shot(page, "dashboard-5-token-refused")
        # The only console errors now are the browser's own notes on the 401 responses.
        assert all("401" in e for e in errors), errors
