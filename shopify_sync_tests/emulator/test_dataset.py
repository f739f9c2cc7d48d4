"""The seeded dataset: determinism, shape, money consistency, update_order, demo singleton."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from shopify_sync.emulator import Emulator, EmulatorConfig, demo_base_url, demo_emulator, demo_token
from shopify_sync.emulator.dataset import default_anchor
from shopify_sync_tests.emulator.helpers import Api

ANCHOR = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def big() -> Emulator:
    return Emulator(EmulatorConfig(anchor=ANCHOR, orders_per_shop=2000))


def test_deterministic_per_seed_and_shop():
    a = Emulator(EmulatorConfig(anchor=ANCHOR, seed=11)).orders("DE")
    b = Emulator(EmulatorConfig(anchor=ANCHOR, seed=11)).orders("DE")
    c = Emulator(EmulatorConfig(anchor=ANCHOR, seed=12)).orders("DE")
    d = Emulator(EmulatorConfig(anchor=ANCHOR, seed=11)).orders("NL")
    assert a == b
    assert a != c
    assert {o.id for o in a}.isdisjoint({o.id for o in d})  # ids are distinct across shops


@pytest.mark.parametrize(("shop", "currency"), [
    ("DA", "DKK"), ("DE", "EUR"), ("NL", "EUR"), ("INT", "USD"), ("CHF", "CHF"), ("DEMO", "EUR"), ("XYZ", "EUR")])
def test_currency_per_shop(shop, currency):
    orders = Emulator(EmulatorConfig(anchor=ANCHOR, orders_per_shop=5)).orders(shop)
    assert {o.currency_code for o in orders} == {currency}


def test_types_are_python_objects(big):
    o = big.orders("DE")[0]
    assert isinstance(o.id, int) and o.created_at.tzinfo is not None
    assert isinstance(o.current_total, Decimal) and o.current_total.as_tuple().exponent == -2
    li = o.line_items[0]
    assert isinstance(li.id, int) and isinstance(li.original_unit_price, Decimal)


def test_distribution_of_order_kinds(big):
    orders = big.orders("DE")
    n = len(orders)
    assert 0.01 * n < sum(o.test for o in orders) < 0.06 * n
    assert 0.02 * n < sum(o.cancelled_at is not None for o in orders) < 0.07 * n
    partial = [o for o in orders if o.display_financial_status == "PARTIALLY_REFUNDED"]
    assert 0.08 * n < len(partial) < 0.22 * n
    assert all(any(li.current_quantity < li.quantity for li in o.line_items) and o.refunds for o in partial)
    lines = [li for o in orders for li in o.line_items]
    assert Counter(len(o.line_items) for o in orders).keys() == {1, 2, 3, 4, 5}
    assert any(li.discounted_unit_price < li.original_unit_price for li in lines)
    custom = [li for li in lines if li.product_id is None]
    assert custom and all(li.variant_id is None and li.sku is None for li in custom)
    assert any(o.processed_at != o.created_at for o in orders)
    assert all(o.updated_at >= o.created_at for o in orders)
    assert len({o.updated_at.date() for o in orders}) > 50
    assert all(ANCHOR - timedelta(days=60) <= o.created_at <= ANCHOR for o in orders)
    skus = {li.sku for li in lines if li.sku}
    variants = {li.variant_id for li in lines if li.product_id}
    products = {li.product_id for li in lines if li.product_id}
    assert len(skus) == len(variants) > len(products) > 20  # one SKU per variant, several variants per product


def test_money_is_exact_and_consistent(big):
    for o in big.orders("DA"):
        for li in o.line_items:
            assert li.discounted_total == li.discounted_unit_price * li.quantity
            assert 0 <= li.current_quantity <= li.quantity
        assert o.current_total == o.current_subtotal + o.current_total_tax + o.current_shipping
        refunded_units = sum(u for r in o.refunds for _, u in r.lines)
        removed = sum(li.quantity - li.current_quantity for li in o.line_items)
        if o.cancelled_at is None:
            assert refunded_units == removed
            if o.display_financial_status not in {"VOIDED"}:
                assert o.original_total - o.total_refunded == o.current_total
        else:
            assert o.current_total == 0 and all(li.current_quantity == 0 for li in o.line_items)
        for amount in (o.current_total, o.total_refunded, o.current_total_tax):
            assert amount == amount.quantize(Decimal("0.01")) and amount >= 0


def test_update_order_refund_cancel_and_status():
    em = Emulator(EmulatorConfig(anchor=ANCHOR, orders_per_shop=50))
    o = next(x for x in em.orders("DE") if x.cancelled_at is None and x.display_financial_status == "PAID"
             and x.line_items[0].quantity >= 2)
    li = o.line_items[0]
    at = o.updated_at + timedelta(hours=1)
    new = em.update_order("DE", o.id, at=at, refund={li.id: 1})
    assert new.updated_at == at and new.line_items[0].current_quantity == li.current_quantity - 1
    assert new.refunds[-1].total_refunded == li.discounted_unit_price + (li.discounted_unit_price * new.tax_rate
                                                                        ).quantize(Decimal("0.01"))
    assert new.display_financial_status in {"PARTIALLY_REFUNDED", "REFUNDED"}
    assert new.original_total - new.total_refunded == new.current_total
    assert em.order("DE", o.id) == new
    later = em.update_order("DE", o.id, at=at + timedelta(hours=1), cancel=True, fulfillment_status="RESTOCKED")
    assert later.cancelled_at == at + timedelta(hours=1) and later.current_total == 0
    assert later.display_fulfillment_status == "RESTOCKED"
    with pytest.raises(ValueError, match="before the order's updatedAt"):
        em.update_order("DE", o.id, at=at, test=True)
    with pytest.raises(TypeError, match="unknown change"):
        em.update_order("DE", o.id, colour="red")
    with pytest.raises(ValueError, match="cannot refund"):
        em.update_order("DE", o.id, refund={li.id: 99})
    with pytest.raises(KeyError, match="no order"):
        em.update_order("DE", 1, cancel=True)
    with pytest.raises(ValueError, match="timezone-aware"):
        em.update_order("DE", o.id, at=datetime(2030, 1, 1), test=True)
    newest = max(em.orders("DE"), key=lambda x: x.updated_at)
    assert em.update_order("DE", newest.id, test=True).updated_at > newest.updated_at  # default `at`


def test_updated_order_is_served_with_new_updated_at(emulator_server):
    em = emulator_server.emulator
    o = em.orders("DEMO")[0]
    at = max(em.now().replace(microsecond=0), o.updated_at + timedelta(seconds=1))
    em.update_order("DEMO", o.id, at=at, cancel=True)
    api = Api(emulator_server)
    ts = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    _, lines, _ = api.result_lines(f"{{ orders(query: \"updated_at:>='{ts}'\") {{ edges {{ node {{ id updatedAt "
                                   f"cancelledAt }} }} }} }}")
    assert [x["id"] for x in lines] == [f"gid://shopify/Order/{o.id}"]
    assert lines[0]["cancelledAt"] == ts and lines[0]["updatedAt"] == ts
    api.close()


def test_default_anchor_is_the_next_utc_hour():
    assert default_anchor(datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)) == datetime(2026, 3, 4, 6, tzinfo=UTC)


def test_demo_singleton_serves_recent_orders():
    srv = demo_emulator()
    assert demo_emulator() is srv
    assert demo_base_url() == srv.base_url and demo_base_url("DE") == f"{srv.base_url}/shops/DE"
    assert demo_token() == "shpat_emulator"
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    assert any(o.created_at.date() == yesterday for o in srv.emulator.orders("DEMO"))
    r = httpx.post(f"{demo_base_url()}/admin/api/2026-10/graphql.json", json={"query": "{ shop { name } }"},
                   headers={"X-Shopify-Access-Token": demo_token()})
    assert r.status_code == 200


def test_config_rejects_naive_anchor():
    with pytest.raises(ValueError, match="anchor"):
        EmulatorConfig(anchor=datetime(2026, 1, 1))


def test_big_datasets_are_not_materialised_but_behave_the_same():
    small = Emulator(EmulatorConfig(anchor=ANCHOR, orders_per_shop=300))
    big = Emulator(EmulatorConfig(anchor=ANCHOR, orders_per_shop=300))
    big.MATERIALISE_UP_TO = 100  # type: ignore[misc]  # force the streaming path
    assert big.orders("DE") == small.orders("DE")
    o = small.orders("DE")[123]
    at = o.updated_at + timedelta(days=1)
    for em in (small, big):
        em.update_order("DE", o.id, at=at, cancel=True)
    assert big.orders("DE") == small.orders("DE")
    assert big.order("DE", o.id).cancelled_at == at
    assert big._orders == {}  # nothing materialised
    with pytest.raises(KeyError):
        big.order("DE", o.id + 10_000)
