"""What the emulated Admin API's root fields answer: bulk operations as GraphQL objects.

One ``Resolvers`` per request, used as graphql-core's ``root_value``; it remembers the
operation id the request was about, for the request log.
"""

from __future__ import annotations

from collections.abc import Callable

from graphql import GraphQLError, GraphQLResolveInfo

from shopify_sync.emulator.bulk import BulkMachine, BulkOp, grouped_by_default, user_errors_for
from shopify_sync.emulator.dataset import fmt_ts, shop_currency
from shopify_sync.emulator.downloads import ResultHost

JsonObject = dict[str, object]


def parse_gid(value: object) -> tuple[str, int] | None:
    """``("BulkOperation", 42)`` from ``gid://shopify/BulkOperation/42``; ``None`` if malformed."""
    if not isinstance(value, str) or not value.startswith("gid://shopify/"):
        return None
    kind, _, num = value.removeprefix("gid://shopify/").partition("/")
    num = num.split("?", 1)[0]
    if not kind or not num.isdigit():
        return None
    return kind, int(num)


def op_view(op: BulkOp, host: ResultHost) -> JsonObject:
    """The ``BulkOperation`` object as GraphQL returns it."""
    result = op.result
    done = op.status in {"COMPLETED", "EXPIRED"} and result is not None
    return {
        "__typename": "BulkOperation", "id": op.gid, "status": op.status, "type": "QUERY",
        "errorCode": op.fail_code if op.status == "FAILED" else None,
        "createdAt": fmt_ts(op.created_at),
        "completedAt": fmt_ts(op.completed_at) if op.completed_at and op.status in {"COMPLETED", "EXPIRED"}
        else None,
        "objectCount": str(result.object_count) if done and result else
        (str(op.partial.object_count) if op.partial else str(op.objects_seen)),
        "rootObjectCount": str(result.root_count) if done and result else
        (str(op.partial.root_count) if op.partial else str(op.roots_seen)),
        "fileSize": str(result.size) if done and result and result.object_count else None,
        "url": host.signed_url(op, "result") if op.status == "COMPLETED" and result and result.object_count
        else None,
        "partialDataUrl": host.signed_url(op, "partial") if op.status == "FAILED" and op.partial else None,
        "query": op.query,
    }


class Resolvers:
    """Root resolvers for one request."""

    def __init__(self, bulk: BulkMachine, host: ResultHost, shop: str, version: str) -> None:
        self.bulk, self.host, self.shop, self.version = bulk, host, shop, version
        self.operation_id: str | None = None
        self.detail = ""

    def root(self) -> dict[str, Callable[..., object]]:
        return {
            "bulkOperationRunQuery": self.run_query, "bulkOperationCancel": self.cancel,
            "node": self.node, "nodes": self.nodes, "bulkOperation": self.bulk_operation,
            "currentBulkOperation": self.current, "bulkOperations": self.bulk_operations,
            "shop": lambda info: {"__typename": "Shop", "name": f"Emulator {self.shop}",
                                  "myshopifyDomain": f"{self.shop.lower()}.myshopify.com",
                                  "currencyCode": shop_currency(self.shop)},
        }

    def _view(self, op: BulkOp) -> JsonObject:
        return op_view(op, self.host)

    def run_query(self, info: GraphQLResolveInfo, query: str, groupObjects: bool | None = None) -> JsonObject:  # noqa: N803
        explicit = any(a.name.value == "groupObjects" for a in info.field_nodes[0].arguments)
        grouped = bool(groupObjects) if explicit else grouped_by_default(self.version)
        op, errors = self.bulk.run_query(self.shop, self.version, query, grouped)
        errors = user_errors_for(self.version, errors)
        if op is None:
            self.detail = str(errors[0]["message"]) if errors else ""
            return {"__typename": "BulkOperationRunQueryPayload", "bulkOperation": None, "userErrors": errors}
        self.operation_id = op.gid
        return {"__typename": "BulkOperationRunQueryPayload", "bulkOperation": self._view(op), "userErrors": []}

    def cancel(self, info: GraphQLResolveInfo, id: str) -> JsonObject:  # noqa: A002
        parsed = parse_gid(id)
        self.operation_id = id
        num = parsed[1] if parsed and parsed[0] == "BulkOperation" else -1
        op, errors = self.bulk.cancel(self.shop, num)
        return {"__typename": "BulkOperationCancelPayload",
                "bulkOperation": self._view(op) if op else None, "userErrors": errors}

    def _lookup(self, id: object, strict_type: bool) -> JsonObject | None:  # noqa: A002
        parsed = parse_gid(id)
        self.operation_id = id if isinstance(id, str) else None
        if parsed is None:
            raise GraphQLError(f"Invalid global id '{id}'", extensions={"code": "INVALID_VARIABLE"})
        kind, num = parsed
        if kind != "BulkOperation":
            if strict_type:
                raise GraphQLError(f"Invalid id: {id}", extensions={"code": "RESOURCE_NOT_FOUND"})
            return None
        op = self.bulk.get_op(self.shop, num)
        return self._view(op) if op else None

    def node(self, info: GraphQLResolveInfo, id: str) -> JsonObject | None:  # noqa: A002
        return self._lookup(id, strict_type=False)

    def nodes(self, info: GraphQLResolveInfo, ids: list[str]) -> list[JsonObject | None]:
        return [self._lookup(i, strict_type=False) for i in ids]

    def bulk_operation(self, info: GraphQLResolveInfo, id: str) -> JsonObject | None:  # noqa: A002
        return self._lookup(id, strict_type=True)

    def current(self, info: GraphQLResolveInfo, type: str = "QUERY") -> JsonObject | None:  # noqa: A002
        if type != "QUERY":
            return None
        ops = sorted(self.bulk.operations(self.shop), key=lambda o: o.num)
        return self._view(ops[-1]) if ops else None

    def bulk_operations(self, info: GraphQLResolveInfo, first: int | None = None, last: int | None = None,
                        reverse: bool = False, query: str | None = None, **_: object) -> JsonObject:
        if first is None and last is None:
            raise GraphQLError("you must provide one of first or last", extensions={"code": "BAD_REQUEST"})
        if first is not None and last is not None:
            raise GraphQLError("providing both first and last is not supported",
                               extensions={"code": "BAD_REQUEST"})
        ops = sorted(self.bulk.operations(self.shop), key=lambda o: o.num, reverse=not reverse)
        if query:
            for term in query.split():
                if term.startswith("status:"):
                    want = term.split(":", 1)[1].upper()
                    ops = [o for o in ops if o.status == want]
        ops = ops[:first] if first is not None else ops[-(last or 0):]
        views = [self._view(o) for o in ops]
        return {"__typename": "BulkOperationConnection", "nodes": views,
                "edges": [{"__typename": "BulkOperationEdge", "node": v, "cursor": v["id"]} for v in views],
                "pageInfo": {"__typename": "PageInfo", "hasNextPage": False, "hasPreviousPage": False,
                             "startCursor": None, "endCursor": None}}
