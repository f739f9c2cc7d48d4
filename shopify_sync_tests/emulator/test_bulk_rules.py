"""bulkOperationRunQuery validation over real HTTP: schema errors and Shopify's bulk rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shopify_sync.emulator import bulk_rules
from shopify_sync.shopify.queries import orders_query
from shopify_sync_tests.emulator.helpers import RUN, Api


@pytest.fixture
def api(emulator_server):
    client = Api(emulator_server)
    yield client
    client.close()


def _errors(api: Api, inner: str) -> list[dict]:
    payload = api.run(inner)
    assert payload["bulkOperation"] is None
    return payload["userErrors"]


def test_project_orders_query_is_accepted(api):
    inner = orders_query("updated_at", datetime(2026, 1, 1, tzinfo=UTC))
    payload = api.run(inner)
    assert payload["userErrors"] == []
    op = payload["bulkOperation"]
    assert op["status"] == "CREATED"
    assert op["objectCount"] == "0" and op["rootObjectCount"] == "0"
    assert op["fileSize"] is None and op["url"] is None and op["completedAt"] is None
    assert op["query"] == inner  # echoed byte for byte
    assert op["id"].startswith("gid://shopify/BulkOperation/")


def test_unknown_field_is_rejected_with_ruby_wording(api):
    errors = _errors(api, "{ orders { edges { node { id notAField } } } }")
    assert errors == [{"field": ["query"], "message": "Field 'notAField' doesn't exist on type 'Order'",
                       "code": "INVALID"}]


def test_refund_line_items_connection_inside_refunds_list_is_rejected(api):
    inner = ("{ orders { edges { node { id refunds { id refundLineItems { edges { node { quantity } } } } } } } }")
    assert _errors(api, inner) == [{"field": ["query"], "code": "INVALID", "message": bulk_rules.MSG_LIST}]
    assert bulk_rules.MSG_LIST == ("Queries that contain a connection field within a list field are not "
                                   "currently supported.")


@pytest.mark.parametrize(
    ("inner", "messages"),
    [
        ("", ["Invalid bulk query: syntax error, unexpected end of file"]),
        ("   ", ["Invalid bulk query: syntax error, unexpected end of file"]),
        ("{ shop { name } }", ["Bulk queries must contain at least one connection."]),
        ('{ node(id: "gid://shopify/Order/1") { id } }',
         ["Bulk queries cannot contain a top level `node` field.", "Bulk queries must contain at least one connection."]),
        ("mutation { bulkOperationCancel(id: \"gid://shopify/BulkOperation/1\") { userErrors { message } } }",
         ["Invalid operation type. Only `query` operations are supported."]),
        ("{ orders { nodes { id } } }",
         ["All connection fields in a bulk query must select their contents using 'edges' > 'node', e.g: "
          "'orders { edges { node {'. Selecting via 'nodes' is not supported. Invalid connection fields: 'orders'."]),
        ("{ orders { edges { node { name lineItems { edges { node { id } } } } } } }",
         ["The parent 'node' field for a nested connection must select the 'id' field without an alias and must "
          "be of 'ID' return type. Connection fields without 'id': lineItems."]),
        ("{ orders { edges { node { orderId: id lineItems { edges { node { id } } } } } } }",
         ["The parent 'node' field for a nested connection must select the 'id' field without an alias and must "
          "be of 'ID' return type. Connection fields without 'id': lineItems."]),
        ("{ products { edges { node { id collections { edges { node { id products { edges { node { id "
         "variants { edges { node { id } } } } } } } } } } } } }",
         ["Bulk queries cannot contain connections with a nesting depth greater than 2."]),
        ("{ products { edges { node { id variants { edges { node { id } } } media { edges { node { id } } } "
         "metafields { edges { node { id } } } collections { edges { node { id } } } "
         "sellingPlanGroups { edges { node { id } } } } } } }",
         ["Bulk queries cannot contain more than 5 connections."]),
    ],
)
def test_bulk_rules_use_shopify_messages(api, inner, messages):
    errors = _errors(api, inner)
    assert [e["message"] for e in errors] == messages
    assert all(e["field"] == ["query"] and e["code"] == "INVALID" for e in errors)


def test_depth_two_and_five_connections_are_allowed(api):
    depth_two = ("{ products { edges { node { id collections { edges { node { id products { edges { node { id } } } "
                 "} } } } } } }")
    assert api.run(depth_two)["userErrors"] == []
    five = ("{ products { edges { node { id variants { edges { node { id } } } media { edges { node { id } } } "
            "metafields { edges { node { id } } } collections { edges { node { id } } } } } } }")
    assert api.run(five)["userErrors"] == []


def test_outer_document_is_validated_against_the_schema(api):
    body = api.gql("{ shop { notAField } }")
    assert "data" not in body
    assert body["errors"][0]["message"] == "Field 'notAField' doesn't exist on type 'Shop'"
    assert body["errors"][0]["extensions"]["code"] == "undefinedField"
    assert body["extensions"]["cost"]["throttleStatus"]["maximumAvailable"] > 0


def test_missing_query_parameter_is_a_400(api):
    r = api.http.post(api.url, json={"nope": 1}, headers={"X-Shopify-Access-Token": api.token})
    assert r.status_code == 400
    assert r.json() == {"errors": {"query": "Required parameter missing or invalid"}}


def test_userErrors_code_does_not_exist_before_2025_01(emulator_server):  # noqa: N802
    old = Api(emulator_server, version="2024-10")
    body = old.gql(RUN, {"q": "{ shop { name } }"})
    assert body["errors"][0]["message"] == "Field 'code' doesn't exist on type 'UserError'"
    body = old.gql(RUN.replace("field message code", "field message"), {"q": "{ shop { name } }"})
    assert body["data"]["bulkOperationRunQuery"]["userErrors"] == [
        {"field": ["query"], "message": "Bulk queries must contain at least one connection."}]
    old.close()


def test_query_text_over_64_kib_is_rejected(api):
    inner = "{ orders { edges { node { id } } } }" + " " * 70_000
    assert _errors(api, inner) == [{"field": ["query"], "code": "INVALID",
                                    "message": f"Query is too large ({len(inner)} bytes; maximum is 65535 bytes)"}]
