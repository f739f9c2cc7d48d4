"""Status machine, polling, cancel, concurrency and version differences, over real HTTP."""

from __future__ import annotations

from datetime import datetime

import pytest

from shopify_sync.emulator import EmulatorConfig, EmulatorServer
from shopify_sync_tests.emulator.helpers import RUN, RUN_GROUPED, SIMPLE, Api


@pytest.fixture
def slow_server():
    # long durations, moved along with emulator.advance(): deterministic on a loaded machine
    with EmulatorServer(EmulatorConfig(completion_seconds=100, cancel_seconds=40)) as srv:
        yield srv


def _wait_for(api: Api, op_id: str, status: str, via: str = "bulkOperation") -> dict:
    """Advance the emulator's clock in steps until the operation reaches ``status``."""
    for _ in range(20):
        op = api.poll(op_id, via=via)
        if op["status"] == status:
            return op
        api.server.emulator.advance(10)
    raise AssertionError(f"{op_id} never reached {status}")


def test_created_running_completed_with_counters_as_strings(slow_server):
    api = Api(slow_server)
    submitted = api.run(SIMPLE)["bulkOperation"]
    op_id = submitted["id"]
    seen = [submitted["status"]]
    objects: list[int] = []
    roots: list[int] = []
    for _ in range(12):
        op = api.poll(op_id)
        if seen[-1] != op["status"]:
            seen.append(op["status"])
        assert isinstance(op["objectCount"], str) and isinstance(op["rootObjectCount"], str)
        objects.append(int(op["objectCount"]))
        roots.append(int(op["rootObjectCount"]))
        if op["status"] == "COMPLETED":
            break
        if op["status"] == "CREATED":
            assert op["objectCount"] == "0" and op["rootObjectCount"] == "0"
        assert op["url"] is None and op["completedAt"] is None
        slow_server.emulator.advance(10)
    assert seen == ["CREATED", "RUNNING", "COMPLETED"]
    assert int(op["objectCount"]) > int(op["rootObjectCount"]) > 0
    # objectCount grows while RUNNING, never goes down, and ends at the final count
    assert objects == sorted(objects) and roots == sorted(roots)
    assert any(0 < n < objects[-1] for n in objects)
    assert op["type"] == "QUERY" and op["errorCode"] is None
    created = datetime.fromisoformat(op["createdAt"].replace("Z", "+00:00"))
    completed = datetime.fromisoformat(op["completedAt"].replace("Z", "+00:00"))
    assert 99 <= (completed - created).total_seconds() <= 101
    # the URL's expiry is fixed at completedAt + 7 days (pre-signed, another origin)
    assert f"Expires={int(completed.timestamp()) + 7 * 86400}" in op["url"]
    assert not op["url"].startswith(slow_server.base_url)
    body = api.download(op["url"]).content
    assert op["fileSize"] == str(len(body))
    api.close()


def test_node_and_bulk_operation_polls_agree_and_unknown_ids_are_null(emulator_server):
    api = Api(emulator_server)
    op_id = api.submit(SIMPLE)
    assert api.poll(op_id, via="node") == api.poll(op_id, via="bulkOperation")
    assert api.poll("gid://shopify/BulkOperation/1") is None
    assert api.poll("gid://shopify/BulkOperation/1", via="node") is None
    body = api.gql("query { bulkOperation(id: \"gid://shopify/Product/1\") { id } }")
    assert body["data"] == {"bulkOperation": None}
    assert body["errors"][0]["message"] == "Invalid id: gid://shopify/Product/1"
    assert body["errors"][0]["extensions"]["code"] == "RESOURCE_NOT_FOUND"
    assert body["errors"][0]["path"] == ["bulkOperation"]
    body = api.gql("query { bulkOperation(id: \"not-a-shopify-gid\") { id } }")
    assert body["data"] == {"bulkOperation": None}
    assert "Invalid global id 'not-a-shopify-gid'" in body["errors"][0]["message"]
    body = api.gql("query($id: ID!) { bulkOperation(id: $id) { id } }", {"id": "not-a-shopify-gid"})
    assert "data" not in body
    assert body["errors"][0]["message"] == "Variable $id of type ID! was provided invalid value"
    assert body["errors"][0]["extensions"]["code"] == "INVALID_VARIABLE"
    assert body["errors"][0]["extensions"]["problems"] == [
        {"path": [], "explanation": "Invalid global id 'not-a-shopify-gid'"}]
    # another shop does not see this shop's operation
    assert Api(emulator_server, shop="DA").poll(op_id) is None
    api.close()


def test_cancel_semantics_and_messages(slow_server):
    api = Api(slow_server)
    op_id = api.submit(SIMPLE)
    payload = api.cancel(op_id)
    assert payload["userErrors"] == []
    assert payload["bulkOperation"]["status"] == "CANCELING"
    assert payload["bulkOperation"]["objectCount"] == "0"
    # a CANCELING operation still blocks new submissions on < 2026-01
    again = api.cancel(op_id)
    assert again["userErrors"] == [{"field": None, "message": "A bulk operation cannot be canceled when it is canceling"}]
    slow_server.emulator.advance(39)
    assert api.poll(op_id)["status"] == "CANCELING"
    op = _wait_for(api, op_id, "CANCELED")
    assert op["completedAt"] is None and op["url"] is None
    assert api.cancel(op_id)["userErrors"] == [
        {"field": None, "message": "A bulk operation cannot be canceled when it is canceled"}]
    assert api.cancel("gid://shopify/BulkOperation/42") == {
        "bulkOperation": None, "userErrors": [{"field": ["id"], "message": "Bulk operation does not exist"}]}
    done = api.submit(SIMPLE)
    _wait_for(api, done, "COMPLETED")
    payload = api.cancel(done)
    assert payload["bulkOperation"]["status"] == "COMPLETED"
    assert payload["userErrors"] == [
        {"field": None, "message": "A bulk operation cannot be canceled when it is completed"}]
    api.close()


def test_cancel_keeps_the_counters_and_a_second_cancel_answers_like_shopify(slow_server):
    api = Api(slow_server)
    op_id = api.submit(SIMPLE)
    slow_server.emulator.advance(60)  # RUNNING, about half way
    running = api.poll(op_id)
    assert running["status"] == "RUNNING" and int(running["objectCount"]) > 0
    payload = api.cancel(op_id)
    canceling = payload["bulkOperation"]
    assert payload["userErrors"] == [] and canceling["status"] == "CANCELING"
    # the cancel keeps the counters (reference §2.6); the job ran on for the few real
    # milliseconds between the poll and the cancel, so they may have grown, never shrunk
    assert canceling["createdAt"] == running["createdAt"] and canceling["completedAt"] is None
    assert int(canceling["objectCount"]) >= int(running["objectCount"])
    assert int(canceling["rootObjectCount"]) >= int(running["rootObjectCount"])
    slow_server.emulator.advance(20)
    again = api.cancel(op_id)  # second cancel: the operation unchanged, plus Shopify's userError
    assert again["userErrors"] == [{"field": None, "message": "A bulk operation cannot be canceled when it is canceling"}]
    assert {**again["bulkOperation"], "status": "CANCELING"} == canceling
    canceled = _wait_for(api, op_id, "CANCELED")
    assert canceled["objectCount"] == canceling["objectCount"]  # frozen by the cancel, not reset
    assert canceled["rootObjectCount"] == canceling["rootObjectCount"]
    # Shopify documents and shows a partialDataUrl only for FAILED operations (§2.1)
    assert canceled["partialDataUrl"] is None and canceled["url"] is None and canceled["completedAt"] is None
    third = api.cancel(op_id)
    assert third["bulkOperation"] == canceled
    assert third["userErrors"] == [{"field": None, "message": "A bulk operation cannot be canceled when it is canceled"}]
    api.close()


def test_cost_figures_are_numbers_as_captured(emulator_server):
    api = Api(emulator_server)
    body = api.gql(RUN, {"q": SIMPLE})
    cost = body["extensions"]["cost"]
    # the 2026 capture: {"requestedQueryCost":10,"actualQueryCost":10,"throttleStatus":
    #   {"maximumAvailable":2000,"currentlyAvailable":1990,"restoreRate":100}}
    assert type(cost["requestedQueryCost"]) is int and type(cost["actualQueryCost"]) is int
    status = cost["throttleStatus"]
    assert {k: type(v) for k, v in status.items()} == {
        "maximumAvailable": int, "currentlyAvailable": int, "restoreRate": int}
    assert status["maximumAvailable"] == 2000 and status["restoreRate"] == 100
    assert 0 <= status["currentlyAvailable"] <= 2000
    api.close()


def test_concurrency_is_one_before_2026_01_with_the_exact_message(slow_server):
    api = Api(slow_server, version="2025-10")
    first = api.submit(SIMPLE)
    payload = api.run(SIMPLE)
    assert payload["bulkOperation"] is None
    assert payload["userErrors"] == [{
        "field": None, "code": "OPERATION_IN_PROGRESS",
        "message": f"A bulk query operation for this app and shop is already in progress: {first}."}]
    # CANCELING still counts as in progress
    api.cancel(first)
    assert api.run(SIMPLE)["userErrors"][0]["code"] == "OPERATION_IN_PROGRESS"
    _wait_for(api, first, "CANCELED", via="node")
    assert api.run(SIMPLE)["userErrors"] == []
    # other shops are independent
    assert Api(slow_server, shop="DE", version="2025-10").run(SIMPLE)["userErrors"] == []
    api.close()


def test_concurrency_is_five_from_2026_01_and_lists_every_blocking_id(slow_server):
    api = Api(slow_server, version="2026-01")
    ids = [api.submit(SIMPLE) for _ in range(5)]
    payload = api.run(SIMPLE)
    assert payload["bulkOperation"] is None
    assert payload["userErrors"][0]["message"] == (
        "A bulk query operation for this app and shop is already in progress: " + ", ".join(ids) + ".")
    api.close()


def test_bulk_operation_query_only_from_2026_01(emulator_server):
    old = Api(emulator_server, version="2025-10")
    op_id = old.submit(SIMPLE)
    body = old.gql("query($id: ID!) { bulkOperation(id: $id) { id } }", {"id": op_id})
    assert body["errors"][0]["message"] == "Field 'bulkOperation' doesn't exist on type 'QueryRoot'"
    assert "data" not in body
    assert old.poll(op_id, via="node")["status"] == "COMPLETED"
    body = old.gql("{ currentBulkOperation { id status } }")
    assert body["data"]["currentBulkOperation"]["id"] == op_id
    old.close()


@pytest.mark.parametrize(("version", "grouped_by_default", "accepts_argument"), [
    ("2025-04", True, False),
    ("2025-07", True, True),
    ("2025-10", True, True),
    ("2026-01", False, True),
    ("2026-10", False, True),
])
def test_group_objects_default_and_availability_by_version(emulator_server, version, grouped_by_default,
                                                           accepts_argument):
    api = Api(emulator_server, version=version)
    api.submit(SIMPLE)
    ops = emulator_server.emulator.operations("DEMO")
    assert ops[-1].grouped is grouped_by_default
    body = api.gql(RUN_GROUPED, {"q": SIMPLE, "g": not grouped_by_default})
    if accepts_argument:
        assert body["data"]["bulkOperationRunQuery"]["userErrors"] == []
        assert emulator_server.emulator.operations("DEMO")[-1].grouped is (not grouped_by_default)
    else:
        assert body["errors"][0]["message"] == (
            "Field 'bulkOperationRunQuery' doesn't accept argument 'groupObjects'")
    api.close()


def test_explicit_group_objects_is_honoured(emulator_server):
    api = Api(emulator_server, version="2026-10")
    api.submit(SIMPLE, grouped=True)
    assert emulator_server.emulator.operations("DEMO")[-1].grouped is True
    api.close()


def test_mutation_costs_ten_and_poll_costs_one(emulator_server):
    api = Api(emulator_server)
    body = api.gql(RUN, {"q": SIMPLE})
    assert body["extensions"]["cost"]["requestedQueryCost"] == 10
    assert body["extensions"]["cost"]["actualQueryCost"] == 10
    op_id = body["data"]["bulkOperationRunQuery"]["bulkOperation"]["id"]
    body = api.gql("query($id: ID!) { bulkOperation(id: $id) { id } }", {"id": op_id})
    assert body["extensions"]["cost"]["requestedQueryCost"] == 1
    status = body["extensions"]["cost"]["throttleStatus"]
    assert set(status) == {"maximumAvailable", "currentlyAvailable", "restoreRate"}
    assert status["currentlyAvailable"] < status["maximumAvailable"]
    api.close()


def test_url_expires_after_seven_days(emulator_server):
    api = Api(emulator_server)
    op_id = api.submit(SIMPLE)
    op = api.poll(op_id)
    assert api.download(op["url"]).status_code == 200
    emulator_server.emulator.advance(7 * 86400 + 5)
    r = api.download(op["url"])
    assert r.status_code == 403
    assert "Request has expired" in r.text and "ExpiredToken" in r.text
    assert api.poll(op_id)["status"] == "EXPIRED"
    assert api.poll(op_id)["url"] is None
    api.close()


def test_request_log_records_each_kind(emulator_server):
    api = Api(emulator_server, shop="NL")
    op_id = api.submit(SIMPLE)
    op = api.poll(op_id)
    api.download(op["url"])
    api.cancel(op_id)
    api.gql("{ shop { name } }")
    log = emulator_server.emulator.log_of(shop="NL")
    assert [e.kind for e in log] == ["run_query", "poll", "download", "cancel", "graphql"]
    assert all(e.version == "2026-10" for e in log)
    assert [e.operation_id for e in log[:4]] == [op_id] * 4
    assert all(e.status_code == 200 for e in log)
    api.close()


def test_bulk_operations_list_from_2026_01(emulator_server):
    api = Api(emulator_server, version="2026-01")
    ids = [api.submit(SIMPLE) for _ in range(3)]
    api.poll(ids[0])
    body = api.gql("{ bulkOperations(first: 10) { nodes { id status } } }")
    assert [n["id"] for n in body["data"]["bulkOperations"]["nodes"]] == ids[::-1]  # newest first
    body = api.gql("{ bulkOperations(first: 2, reverse: true) { edges { node { id } } } }")
    assert [e["node"]["id"] for e in body["data"]["bulkOperations"]["edges"]] == ids[:2]
    body = api.gql('{ bulkOperations(first: 10, query: "status:completed") { nodes { status } } }')
    assert {n["status"] for n in body["data"]["bulkOperations"]["nodes"]} == {"COMPLETED"}
    body = api.gql("{ bulkOperations { nodes { id } } }")
    assert body["errors"][0]["message"] == "you must provide one of first or last"
    body = api.gql("{ bulkOperations(first: 1, last: 1) { nodes { id } } }")
    assert body["errors"][0]["message"] == "providing both first and last is not supported"
    old = Api(emulator_server, version="2025-10")
    assert old.gql("{ bulkOperations(first: 1) { nodes { id } } }")["errors"][0]["message"] == (
        "Field 'bulkOperations' doesn't exist on type 'QueryRoot'")
    api.close()
    old.close()
