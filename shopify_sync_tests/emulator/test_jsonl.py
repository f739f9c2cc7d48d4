"""The served JSONL: Shopify's format, grouping, projection, counts and the write_jsonl fast path."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from shopify_sync.emulator import EmulatorConfig, EmulatorServer, write_jsonl
from shopify_sync.emulator.dataset import DatasetParams, fmt_epoch, generate_order, iter_orders
from shopify_sync.emulator.jsonl import amount
from shopify_sync.shopify.queries import orders_query
from shopify_sync_tests.emulator.helpers import Api

ANCHOR = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def server():
    with EmulatorServer(EmulatorConfig(anchor=ANCHOR, orders_per_shop=60)) as srv:
        yield srv


@pytest.fixture
def api(server):
    client = Api(server, shop="DA")
    yield client
    client.close()


def full_query(sort: str = "CREATED_AT") -> str:
    return orders_query("created_at", ANCHOR - timedelta(days=400)).replace("UPDATED_AT", sort)


def test_format_is_shopify_jsonl(api):
    op, lines, raw = api.result_lines(full_query())
    assert raw.endswith(b"\n") and b"\n\n" not in raw
    assert b'"gid:\\/\\/shopify\\/Order\\/' in raw  # Ruby-style escaped slashes
    assert b"gid://" not in raw
    assert op["fileSize"] == str(len(raw))
    assert op["objectCount"] == str(len(lines))
    roots = [x for x in lines if "__parentId" not in x]
    assert op["rootObjectCount"] == str(len(roots)) == "60"
    order = roots[0]
    # only the selected fields, in selection order; money as decimal strings; refunds inline
    assert list(order) == ["id", "name", "createdAt", "updatedAt", "processedAt", "cancelledAt", "test",
                           "currencyCode", "displayFinancialStatus", "displayFulfillmentStatus",
                           "currentTotalPriceSet", "currentSubtotalPriceSet", "currentTotalDiscountsSet",
                           "currentTotalTaxSet", "currentShippingPriceSet", "totalRefundedSet", "refunds"]
    assert order["currencyCode"] == "DKK"
    assert order["currentTotalPriceSet"] == {"shopMoney": {"amount": order["currentTotalPriceSet"]["shopMoney"]["amount"],
                                                           "currencyCode": "DKK"}}
    assert isinstance(order["refunds"], list)
    child = next(x for x in lines if "__parentId" in x)
    assert list(child)[-1] == "__parentId"
    assert child["id"].startswith("gid://shopify/LineItem/")
    assert set(child) == {"id", "sku", "title", "quantity", "currentQuantity", "originalUnitPriceSet",
                          "discountedUnitPriceAfterAllDiscountsSet", "discountedTotalSet", "variant", "product",
                          "__parentId"}
    for line in lines:
        for key in ("createdAt", "updatedAt", "processedAt"):
            if key in line:
                datetime.strptime(line[key], "%Y-%m-%dT%H:%M:%SZ")


def test_ungrouped_children_come_after_parents_but_not_adjacent(api):
    _, lines, _ = api.result_lines(full_query())
    position = {x["id"]: k for k, x in enumerate(lines) if "__parentId" not in x}
    right_after_parent = 0
    for k, line in enumerate(lines):
        if "__parentId" in line:
            assert position[line["__parentId"]] < k
            right_after_parent += lines[k - 1].get("id") == line["__parentId"]
    # 60 orders in pages of 10 roots, children interleaved after the page: never directly below
    assert right_after_parent == 0


def test_grouped_children_directly_follow_their_parent(api):
    _, lines, _ = api.result_lines(full_query(), grouped=True)
    current = None
    for line in lines:
        if "__parentId" not in line:
            current = line["id"]
        else:
            assert line["__parentId"] == current


def test_grouped_and_ungrouped_hold_the_same_objects(api):
    _, grouped, _ = api.result_lines(full_query(), grouped=True)
    _, ungrouped, _ = api.result_lines(full_query(), grouped=False)
    key = lambda x: x["id"]  # noqa: E731
    assert sorted(grouped, key=key) == sorted(ungrouped, key=key)
    assert grouped != ungrouped


def test_projection_aliases_typename_and_unselected_fields(api):
    inner = """{ orders(sortKey: ID) { edges { node { __typename orderId: id
        total: currentTotalPriceSet { shopMoney { amount } }
        lineItems { edges { node { id variant { id sku } } } } } } } }"""
    # an alias on the parent's id breaks the nested-connection rule ...
    assert api.run(inner)["userErrors"][0]["message"].startswith("The parent 'node' field")
    inner = inner.replace("orderId: id", "id")
    _, lines, _ = api.result_lines(inner)
    order = lines[0]
    assert list(order) == ["__typename", "id", "total"]
    assert order["__typename"] == "Order"
    assert set(order["total"]["shopMoney"]) == {"amount"}
    items = [x for x in lines if "__parentId" in x]
    assert items and all(set(x) == {"id", "variant", "__parentId"} for x in items)
    assert all(x["variant"] is None or set(x["variant"]) == {"id", "sku"} for x in items)
    assert any(x["variant"] is not None for x in items)


def test_objects_match_the_dataset(api, server):
    _, lines, _ = api.result_lines(full_query())
    by_id = {o.id: o for o in server.emulator.orders("DA")}
    for line in lines:
        if "__parentId" in line:
            continue
        o = by_id[int(line["id"].rsplit("/", 1)[1])]
        assert line["name"] == o.name
        assert Decimal(line["currentTotalPriceSet"]["shopMoney"]["amount"]) == o.current_total
        assert Decimal(line["totalRefundedSet"]["shopMoney"]["amount"]) == o.total_refunded
        assert line["test"] is o.test
        assert (line["cancelledAt"] is None) == (o.cancelled_at is None)
    items = {x["id"]: x for x in lines if "__parentId" in x}
    assert len(items) == sum(len(o.line_items) for o in by_id.values())


def test_empty_result_has_null_url(api):
    inner = ("{ orders(query: \"created_at:<'2001-01-01T00:00:00Z'\") { edges { node { id } } } }")
    op_id = api.submit(inner)
    op = api.poll(op_id)
    assert op["status"] == "COMPLETED"
    assert op["url"] is None and op["objectCount"] == "0" and op["rootObjectCount"] == "0"


def test_products_root_connection(api):
    _, lines, _ = api.result_lines("{ products { edges { node { id title variants { edges { node { id sku } } } } } } }")
    products = [x for x in lines if "__parentId" not in x]
    variants = [x for x in lines if "__parentId" in x]
    assert len(products) == 40 and len(variants) >= 40
    assert all(v["sku"].startswith("DA-") for v in variants)


@pytest.mark.parametrize(("value", "text"), [
    (Decimal("25.00"), "25.0"), (Decimal("19.90"), "19.9"), (Decimal("12.34"), "12.34"), (Decimal("0.00"), "0.0"),
    (Decimal("1909.9"), "1909.9"), (Decimal("100"), "100.0"), (Decimal("0.05"), "0.05"),
])
def test_amounts_render_like_shopify(value, text):
    assert amount(value) == text


@pytest.mark.parametrize("grouped", [False, True])
def test_write_jsonl_is_byte_identical_to_the_served_file(tmp_path, api, grouped):
    _, _, raw = api.result_lines(full_query("CREATED_AT"), grouped=grouped)
    stats = write_jsonl(tmp_path / "x.jsonl", "DA", orders=60, seed=7, anchor=ANCHOR, grouped=grouped)
    assert (tmp_path / "x.jsonl").read_bytes() == raw
    assert stats.size == len(raw)
    assert stats.objects == raw.count(b"\n")
    assert stats.roots == 60


def test_write_jsonl_is_deterministic_and_seed_dependent(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", "DE", orders=50, seed=3, anchor=ANCHOR)
    b = write_jsonl(tmp_path / "b.jsonl", "DE", orders=50, seed=3, anchor=ANCHOR)
    c = write_jsonl(tmp_path / "c.jsonl", "DE", orders=50, seed=4, anchor=ANCHOR)
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.path.read_bytes() != c.path.read_bytes()
    first = json.loads(a.path.read_text().split("\n", 1)[0])
    assert first["currentTotalPriceSet"]["shopMoney"]["currencyCode"] == "EUR"


def test_order_i_is_generated_independently_of_the_others(tmp_path):
    """Random access equals sequential generation: what makes write_jsonl constant-memory."""
    p = DatasetParams(seed=1, shop="NL", orders=500, days=60, anchor=ANCHOR)
    sequential = list(iter_orders(p))
    assert [generate_order(p, i) for i in (499, 17, 0)] == [sequential[499], sequential[17], sequential[0]]
    with pytest.raises(ValueError, match="orders must be >= 0"):
        write_jsonl(tmp_path / "bad.jsonl", "NL", orders=-1)


def test_write_jsonl_in_parallel_equals_sequential(tmp_path):
    one = write_jsonl(tmp_path / "one.jsonl", "CHF", orders=4100, seed=5, anchor=ANCHOR, workers=1)
    two = write_jsonl(tmp_path / "two.jsonl", "CHF", orders=4100, seed=5, anchor=ANCHOR, workers=2)
    assert one.path.read_bytes() == two.path.read_bytes()
    assert (one.objects, one.roots, one.size) == (two.objects, two.roots, two.size)
    assert one.size == one.path.stat().st_size and one.roots == 4100


@pytest.mark.parametrize("secs", [0, 59, 60, 3599, 86399, 86400, 951782400, 1790003599, 4102444799])
def test_timestamps_render_like_shopify(secs):
    expected = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=secs)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert fmt_epoch(secs) == expected
