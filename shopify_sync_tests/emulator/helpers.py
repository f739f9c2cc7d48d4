"""A tiny GraphQL client for the emulator tests (plain httpx, no project client)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from shopify_sync.emulator import EmulatorServer

RUN = """mutation($q: String!) {
  bulkOperationRunQuery(query: $q) {
    bulkOperation { id status type errorCode createdAt completedAt objectCount rootObjectCount fileSize url
                    partialDataUrl query }
    userErrors { field message code }
  }
}"""
RUN_GROUPED = RUN.replace("(query: $q)", "(query: $q, groupObjects: $g)").replace("$q: String!", "$q: String!, $g: Boolean!")
RUN_NO_CODE = RUN.replace("field message code", "field message")
OP_FIELDS = "id status type errorCode createdAt completedAt objectCount rootObjectCount fileSize url partialDataUrl query"
POLL_NODE = "query($id: ID!) { node(id: $id) { ... on BulkOperation { " + OP_FIELDS + " } } }"
POLL_BULK = "query($id: ID!) { bulkOperation(id: $id) { " + OP_FIELDS + " } }"
CANCEL = "mutation($id: ID!) { bulkOperationCancel(id: $id) { bulkOperation { " + OP_FIELDS + \
    " } userErrors { field message } } }"

SIMPLE = "{ orders { edges { node { id name lineItems { edges { node { id quantity } } } } } } }"


class Api:
    def __init__(self, server: EmulatorServer, shop: str = "DEMO", version: str = "2026-10",
                 token: str | None = None) -> None:
        self.server = server
        self.url = server.graphql_url(shop, version)
        self.token = server.token if token is None else token
        self.http = httpx.Client(timeout=30)

    def post(self, query: str, variables: dict[str, Any] | None = None, token: str | None = None) -> httpx.Response:
        headers = {"X-Shopify-Access-Token": self.token if token is None else token}
        return self.http.post(self.url, json={"query": query, "variables": variables or {}}, headers=headers)

    def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        r = self.post(query, variables)
        assert r.status_code == 200, r.text
        return r.json()

    def run(self, inner: str, grouped: bool | None = None) -> dict[str, Any]:
        """The ``bulkOperationRunQuery`` payload."""
        if grouped is None:
            body = self.gql(RUN, {"q": inner})
        else:
            body = self.gql(RUN_GROUPED, {"q": inner, "g": grouped})
        assert "errors" not in body, body
        return body["data"]["bulkOperationRunQuery"]

    def submit(self, inner: str, grouped: bool | None = None) -> str:
        payload = self.run(inner, grouped)
        assert payload["userErrors"] == [], payload
        return payload["bulkOperation"]["id"]

    def poll(self, op_id: str, via: str = "bulkOperation") -> dict[str, Any]:
        body = self.gql(POLL_BULK if via == "bulkOperation" else POLL_NODE, {"id": op_id})
        assert "errors" not in body, body
        return body["data"]["bulkOperation" if via == "bulkOperation" else "node"]

    def cancel(self, op_id: str) -> dict[str, Any]:
        body = self.gql(CANCEL, {"id": op_id})
        return body["data"]["bulkOperationCancel"]

    def download(self, url: str, **headers: str) -> httpx.Response:
        return self.http.get(url, headers=headers)

    def result_lines(self, inner: str, grouped: bool | None = None) -> tuple[dict[str, Any], list[dict[str, Any]], bytes]:
        op_id = self.submit(inner, grouped)
        op = self.poll(op_id)
        assert op["status"] == "COMPLETED", op
        if op["url"] is None:
            return op, [], b""
        r = self.download(op["url"])
        assert r.status_code == 200, r.text
        return op, [json.loads(line) for line in r.content.decode().split("\n") if line], r.content

    def close(self) -> None:
        self.http.close()
