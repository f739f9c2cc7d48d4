"""The Admin GraphQL endpoint: authenticate, rate-limit, parse, validate, dispatch.

Requests are validated against the shipped Admin schema of their API version
(``shopify_sync.shopify.schema``), plus the version differences those snapshots do not
show; errors and the cost extension have Shopify's shape (graphql-ruby wording).
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
import time
from collections.abc import Iterator

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    InlineFragmentNode,
    ListTypeNode,
    NamedTypeNode,
    Node,
    NonNullTypeNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    TypeNode,
    execute_sync,
    parse,
    print_ast,
    validate,
)

from shopify_sync.emulator.bulk import BulkMachine, root_field
from shopify_sync.emulator.bulk_rules import ruby_style
from shopify_sync.emulator.downloads import ResultHost
from shopify_sync.emulator.resolvers import JsonObject, Resolvers, parse_gid
from shopify_sync.emulator.response import Response
from shopify_sync.emulator.state import EmulatorConfig, EmulatorState
from shopify_sync.shopify.schema import SchemaError, load_schema, schema_version_for

INVALID_TOKEN_BODY = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
MUTATION_COST = 10
QUERY_COST = 1
_POLL_FIELDS = {"node", "bulkOperation", "currentBulkOperation", "nodes", "bulkOperations"}


class CostBucket:
    """Shopify's leaky bucket of query cost points, one per shop."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, shop: str, cost: float, spend: bool) -> tuple[bool, float]:
        """(allowed, available after the request)."""
        cfg = self.config
        with self._lock:
            avail, last = self._buckets.get(shop, (cfg.bucket_size, time.monotonic()))
            now = time.monotonic()
            avail = min(cfg.bucket_size, avail + (now - last) * cfg.restore_rate)
            ok = cost <= avail
            if ok and spend:
                avail -= cost
            self._buckets[shop] = (avail, now)
            return ok, avail

    def extension(self, requested: int, actual: int | None, available: float) -> JsonObject:
        """``extensions.cost`` with JSON numbers, never strings, as captured (reference §1.2, §5.2).

        Answers that ran carry integers (``"maximumAvailable":2000,...,"restoreRate":100``);
        the captured THROTTLED body (``actual`` is null) has ``1000.0`` / ``50.0`` for the
        bucket size and rate, and an integer ``currentlyAvailable``.
        """
        cfg = self.config
        size: float = float(cfg.bucket_size) if actual is None else _whole(cfg.bucket_size)
        rate: float = float(cfg.restore_rate) if actual is None else _whole(cfg.restore_rate)
        return {"cost": {"requestedQueryCost": requested, "actualQueryCost": actual,
                         "throttleStatus": {"maximumAvailable": size, "currentlyAvailable": int(available),
                                            "restoreRate": rate}}}


def _whole(value: float) -> float:
    """``value`` as an int when it is whole (JSON ``2000``, not ``2000.0``)."""
    return int(value) if float(value).is_integer() else value


class _Call:
    """One GraphQL request: its answer headers, and the request log entry it leaves."""

    def __init__(self, state: EmulatorState, shop: str, version: str) -> None:
        self.state, self.shop, self.version = state, shop, version
        self.kind = "graphql"  # until the document is classified
        self.root: str | None = None  # a bulk query's root field (run_query only)
        self.headers = {"X-Shopify-API-Version": version, "X-Request-Id": secrets.token_hex(8)}

    def answer(self, status: int, payload: object, detail: str, operation_id: str | None = None,
               headers: dict[str, str] | None = None) -> Response:
        self.state.log(self.kind, self.shop, self.version, operation_id, status, detail, root=self.root)
        return Response.json(status, payload, {**self.headers, **(headers or {})})


class GraphQLEndpoint:
    """``/admin/api/<version>/graphql.json`` of every emulated shop."""

    def __init__(self, state: EmulatorState, bulk: BulkMachine, host: ResultHost) -> None:
        self.state, self.bulk, self.host = state, bulk, host
        self.bucket = CostBucket(state.config)

    def handle(self, shop: str, version: str, headers: dict[str, str], body: bytes) -> Response:
        call = _Call(self.state, shop, version)
        token = {k.lower(): v for k, v in headers.items()}.get("x-shopify-access-token")
        if token is None or not hmac.compare_digest(token.encode(), self.state.config.token.encode()):
            return call.answer(401, INVALID_TOKEN_BODY, "invalid token")
        try:
            schema_version_for(version)
        except SchemaError:
            return call.answer(404, {"errors": "Not Found"}, "unknown version")
        request = _read_body(body)
        if request is None:
            return call.answer(400, {"errors": {"query": "Required parameter missing or invalid"}}, "bad body")
        text, variables = request
        call.kind, doc, parse_error = _classify(text)
        inner = variables.get("query")
        if call.kind == "run_query" and isinstance(inner, str):
            call.root = root_field(inner)
        refused = self._http_fault(call)
        if refused is not None:
            return refused
        requested = _cost(call.kind, doc)
        throttled = self.state.faults.take({"throttled"}, call.kind, shop) is not None
        ok, available = self.bucket.take(shop, requested, spend=not throttled)
        if throttled or not ok:
            return call.answer(200, {
                "errors": [{"message": "Throttled",
                            "extensions": {"code": "THROTTLED",
                                           "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                "extensions": self.bucket.extension(requested, None, available)}, "throttled")
        ext = self.bucket.extension(requested, requested, available)
        if parse_error is not None or doc is None:
            err = parse_error or GraphQLError("Syntax Error")
            return call.answer(200, {"errors": [_error_dict(err)], "extensions": ext}, "syntax error")
        return self._execute(call, doc, variables, ext)

    def _http_fault(self, call: _Call) -> Response | None:
        """The HTTP-level fault (429, 5xx) armed for this request, if any."""
        fault = self.state.faults.take({"http_429", "http_5xx"}, call.kind, call.shop)
        if fault is None:
            return None
        if fault.kind == "http_429":
            return call.answer(429, {"errors": "Exceeded 2 calls per second for api client. "
                                               "Reduce request rates to resume uninterrupted service."},
                               "fault http_429", headers={"Retry-After": fault.text("retry_after", "1")})
        status = int(fault.number("status", 503))
        return call.answer(status, {"errors": "Internal Server Error" if status == 500 else "Service Unavailable"},
                           "fault http_5xx")

    def _execute(self, call: _Call, doc: DocumentNode, variables: dict[str, object], ext: JsonObject) -> Response:
        schema = load_schema(call.version)
        errors = _version_errors(doc, call.version) + [_error_dict(e) for e in validate(schema, doc)]
        if errors:
            return call.answer(200, {"errors": errors, "extensions": ext}, "invalid document")
        bad_ids = _invalid_id_variables(doc, variables)
        if bad_ids:
            return call.answer(200, {"errors": bad_ids, "extensions": ext}, "invalid variable")
        resolvers = Resolvers(self.bulk, self.host, call.shop, call.version)
        result = execute_sync(schema, doc, root_value=resolvers.root(), variable_values=variables,
                              context_value=resolvers)
        out: JsonObject = {}
        if result.errors:
            out["errors"] = [_error_dict(e, locations=False) for e in result.errors]
        out["data"] = result.data
        out["extensions"] = ext
        return call.answer(200, out, resolvers.detail, resolvers.operation_id)


def _read_body(body: bytes) -> tuple[str, dict[str, object]] | None:
    """(query text, variables) of a GraphQL POST body; ``None`` when malformed."""
    try:
        payload = json.loads(body or b"")
        text = payload["query"]
        variables = payload.get("variables") or {}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(text, str) or not isinstance(variables, dict):
        return None
    return text, variables


def _cost(kind: str, doc: DocumentNode | None) -> int:
    if kind in {"run_query", "cancel"}:
        return MUTATION_COST
    if doc is not None and any(isinstance(d, OperationDefinitionNode) and d.operation == OperationType.MUTATION
                               for d in doc.definitions):
        return MUTATION_COST
    return QUERY_COST


def _classify(text: str) -> tuple[str, DocumentNode | None, GraphQLError | None]:
    """The request kind the log and the faults know it by (run_query, cancel, poll, graphql)."""
    try:
        doc = parse(text)
    except GraphQLError as exc:
        return "graphql", None, exc
    names = {f.name.value for d in doc.definitions if isinstance(d, OperationDefinitionNode)
             for f in d.selection_set.selections if isinstance(f, FieldNode)}
    if "bulkOperationRunQuery" in names:
        return "run_query", doc, None
    if "bulkOperationCancel" in names:
        return "cancel", doc, None
    if names & _POLL_FIELDS:
        return "poll", doc, None
    return "graphql", doc, None


def _error_dict(e: GraphQLError, locations: bool = True) -> JsonObject:
    message, ruby_ext = ruby_style(e)
    ext: dict[str, object] = dict(e.extensions) if e.extensions else dict(ruby_ext)
    out: JsonObject = {"message": message}
    if locations and e.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in e.locations]
    if e.path:
        out["path"] = list(e.path)
    out["extensions"] = ext
    return out


def _located(node: Node, message: str, path: list[str] | None, ext: JsonObject) -> JsonObject:
    """A GraphQL error at ``node``'s position in the document."""
    out: JsonObject = {"message": message}
    loc = node.loc.source.get_location(node.loc.start) if node.loc else None
    if loc:
        out["locations"] = [{"line": loc.line, "column": loc.column}]
    if path is not None:
        out["path"] = path
    out["extensions"] = ext
    return out


def _walk_fields(sel: SelectionSetNode | None, path: list[str]) -> Iterator[tuple[FieldNode, list[str]]]:
    for s in sel.selections if sel else ():
        if isinstance(s, FieldNode):
            p = [*path, s.alias.value if s.alias else s.name.value]
            yield s, p
            yield from _walk_fields(s.selection_set, p)
        elif isinstance(s, InlineFragmentNode):
            yield from _walk_fields(s.selection_set, path)


def _version_errors(doc: DocumentNode, version: str) -> list[JsonObject]:
    """Differences between API versions that the two shipped schema snapshots do not show."""
    if version == "unstable":
        return []
    out = []
    for d in doc.definitions:
        if not isinstance(d, OperationDefinitionNode):
            continue
        root = "mutation" if d.operation == OperationType.MUTATION else "query"
        for f, path in _walk_fields(d.selection_set, [root]):
            name = f.name.value
            if len(path) == 2 and name in {"bulkOperation", "bulkOperations"} and version < "2026-01":
                out.append(_located(f, f"Field '{name}' doesn't exist on type 'QueryRoot'", path,
                                    {"code": "undefinedField", "typeName": "QueryRoot", "fieldName": name}))
            if name == "bulkOperationRunQuery" and version < "2025-07":
                for a in f.arguments:
                    if a.name.value == "groupObjects":
                        out.append(_located(
                            f, "Field 'bulkOperationRunQuery' doesn't accept argument 'groupObjects'",
                            [*path, "groupObjects"], {"code": "argumentNotAccepted", "name": "bulkOperationRunQuery",
                                                      "typeName": "Field", "argumentName": "groupObjects"}))
            if (name == "code" and version < "2025-01" and len(path) >= 3 and path[-2] == "userErrors"
                    and "bulkOperationRunQuery" in path[1]):
                out.append(_located(f, "Field 'code' doesn't exist on type 'UserError'", path,
                                    {"code": "undefinedField", "typeName": "UserError", "fieldName": "code"}))
    return out


def _named(type_node: TypeNode) -> NamedTypeNode | None:
    while isinstance(type_node, NonNullTypeNode | ListTypeNode):
        type_node = type_node.type
    return type_node if isinstance(type_node, NamedTypeNode) else None


def _invalid_id_variables(doc: DocumentNode, variables: dict[str, object]) -> list[JsonObject]:
    """Shopify coerces ``ID`` variables as global ids before executing anything."""
    errors = []
    for d in doc.definitions:
        if not isinstance(d, OperationDefinitionNode):
            continue
        for vd in d.variable_definitions or ():
            named = _named(vd.type)
            name = vd.variable.name.value
            value = variables.get(name)
            if named is None or named.name.value != "ID" or value is None:
                continue
            values = value if isinstance(value, list) else [value]
            bad = next((v for v in values if parse_gid(v) is None), None)
            if bad is None:
                continue
            errors.append(_located(
                vd, f"Variable ${name} of type {print_ast(vd.type)} was provided invalid value", None,
                {"code": "INVALID_VARIABLE", "value": value,
                 "problems": [{"path": [], "explanation": f"Invalid global id '{bad}'"}]}))
    return errors
