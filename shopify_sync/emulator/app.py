"""The emulator's state and request handling, independent of the HTTP server.

``Emulator.handle_graphql`` and ``Emulator.handle_download`` take a parsed request and
return a ``Response``; ``server.py`` puts them on real sockets. What is emulated and
where it comes from is in reference/shopify-bulk-api.md; the module docstrings of
``bulk_rules``, ``jsonl`` and ``search`` say what each part reproduces.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import secrets
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    execute,
    parse,
    print_ast,
    validate,
)

from shopify_sync.emulator import jsonl
from shopify_sync.emulator.bulk_rules import bulk_query_errors, ruby_style
from shopify_sync.emulator.dataset import (
    ZERO,
    DatasetParams,
    Order,
    Refund,
    catalog,
    default_anchor,
    fmt_ts,
    generate_order,
    order_id_base,
    q2,
    shop_currency,
)
from shopify_sync.emulator.search import compile_query, sort_orders
from shopify_sync.shopify.schema import SchemaError, load_schema, schema_version_for

INVALID_TOKEN_BODY = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
URL_LIFETIME = timedelta(days=7)  # Shopify: result URLs expire 7 days after completion
MUTATION_COST = 10
QUERY_COST = 1
TERMINAL = {"COMPLETED", "FAILED", "CANCELED", "EXPIRED"}
ACTIVE = {"CREATED", "RUNNING", "CANCELING"}  # CANCELING still blocks new submissions
ERROR_CODES = {"ACCESS_DENIED", "INTERNAL_SERVER_ERROR", "TIMEOUT"}


@dataclass
class EmulatorConfig:
    seed: int = 7
    orders_per_shop: int = 200
    days: int = 60
    anchor: datetime | None = None
    token: str = field(default="shpat_emulator", repr=False)
    # Seconds from submission to COMPLETED; the first quarter is CREATED, the rest RUNNING.
    completion_seconds: float = 0.0
    cancel_seconds: float = 0.0  # CANCELING → CANCELED
    bucket_size: float = 2000.0  # leaky bucket (a 2026 dev store: 2000 points, 100/s)
    restore_rate: float = 100.0
    ungrouped_page: int = jsonl.UNGROUPED_PAGE
    host: str = "127.0.0.1"
    shop_orders: dict[str, int] = field(default_factory=dict)  # per-shop override of orders_per_shop

    def __post_init__(self) -> None:
        if self.orders_per_shop < 0 or self.days < 1:
            raise ValueError("EmulatorConfig: orders_per_shop must be >= 0 and days >= 1")
        if self.anchor is not None and self.anchor.tzinfo is None:
            raise ValueError("EmulatorConfig: anchor must be timezone-aware (UTC)")


@dataclass
class Response:
    status: int
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # streamed bodies: (content_length, chunk iterator); send fewer bytes to simulate truncation
    stream: tuple[int, Iterator[bytes]] | None = None

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
        return cls(status, json.dumps(payload, separators=(",", ":")).encode(), {"Content-Type": "application/json; charset=utf-8",
                                                          **(headers or {})})


@dataclass(frozen=True)
class RequestLogEntry:
    kind: str  # run_query | poll | cancel | download | graphql
    shop: str | None
    version: str | None
    operation_id: str | None
    status_code: int
    at: float
    detail: str = ""


# --- faults ---------------------------------------------------------------------------

FAULT_KINDS = {
    "throttled",              # GraphQL body THROTTLED (HTTP 200)
    "http_429",               # HTTP 429 with Retry-After (param retry_after, default 1)
    "http_5xx",               # HTTP status (param status, default 503)
    "operation_in_progress",  # runQuery refused with OPERATION_IN_PROGRESS (param blocking_ids)
    "bulk_failed",            # next operation FAILS (param error_code, partial=True|False)
    "slow_completion",        # next operation takes `seconds` longer
    "download_500",           # result host answers 500
    "download_truncated",     # Content-Length says more than sent (param fraction, default 0.5)
    "download_expired",       # result host answers 403 "Request has expired"
    "large_result",           # next operation's result is `size_bytes` of valid JSONL
}


@dataclass
class Fault:
    kind: str
    times: int | None  # None: every matching request
    params: dict[str, Any]
    shop: str | None = None
    on: frozenset[str] | None = None  # request kinds it applies to; None: kind's default
    fired: int = 0


_DEFAULT_ON = {
    "throttled": {"run_query", "poll", "cancel", "graphql"},
    "http_429": {"run_query", "poll", "cancel", "graphql"},
    "http_5xx": {"run_query", "poll", "cancel", "graphql"},
    "operation_in_progress": {"run_query"},
    "bulk_failed": {"run_query"},
    "slow_completion": {"run_query"},
    "large_result": {"run_query"},
    "download_500": {"download"},
    "download_truncated": {"download"},
    "download_expired": {"download"},
}


class Faults:
    """Per-scenario fault injection: ``faults.add("http_429", times=2, retry_after=1)``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, kind: str, times: int | None = 1, *, shop: str | None = None,
            on: Iterable[str] | None = None, **params: Any) -> Fault:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(sorted(FAULT_KINDS))}")
        if kind == "bulk_failed" and params.get("error_code", "INTERNAL_SERVER_ERROR") not in ERROR_CODES:
            raise ValueError(f"bulk_failed error_code must be one of {sorted(ERROR_CODES)}")
        if kind == "large_result" and int(params.get("size_bytes", 0)) <= 0:
            raise ValueError("large_result needs size_bytes > 0")
        fault = Fault(kind, times, params, shop, frozenset(on) if on else None)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, kinds: set[str], request_kind: str, shop: str | None) -> Fault | None:
        """The first armed fault of one of ``kinds`` matching the request; consumes one use."""
        with self._lock:
            for f in self._faults:
                if f.kind not in kinds or (f.shop is not None and f.shop != shop):
                    continue
                if request_kind not in (f.on or _DEFAULT_ON[f.kind]):
                    continue
                if f.times is not None and f.fired >= f.times:
                    continue
                f.fired += 1
                return f
        return None

    def __len__(self) -> int:
        with self._lock:
            return sum(1 for f in self._faults if f.times is None or f.fired < f.times)


# --- bulk operations ----------------------------------------------------------------


@dataclass
class ResultFile:
    path: Path | None  # None: synthetic (large_result)
    size: int
    object_count: int
    root_count: int
    synthetic: tuple[bytes, int, bytes] | None = None  # (block, repeats, tail)


@dataclass
class BulkOp:
    num: int
    shop: str
    version: str
    query: str
    grouped: bool
    created_at: datetime
    complete_at: datetime
    fail_code: str | None = None
    fail_partial: bool = False
    large_size: int | None = None
    status: str = "CREATED"
    completed_at: datetime | None = None
    canceled_at: datetime | None = None
    cancel_done_at: datetime | None = None
    result: ResultFile | None = None
    partial: ResultFile | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def gid(self) -> str:
        return f"gid://shopify/BulkOperation/{self.num}"


def _throttle_status(available: float, cfg: EmulatorConfig) -> dict[str, Any]:
    return {"maximumAvailable": float(cfg.bucket_size), "currentlyAvailable": int(available),
            "restoreRate": float(cfg.restore_rate)}


class Emulator:
    """State of every emulated shop: dataset, bulk operations, request log, faults."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.anchor = self.config.anchor or default_anchor()
        self.faults = Faults()
        self.request_log: list[RequestLogEntry] = []
        self._lock = threading.RLock()
        self._ops: dict[int, BulkOp] = {}
        self._op_seq = itertools.count(7_933_223_797_042)
        self._orders: dict[str, dict[int, Order]] = {}  # materialised lazily per shop
        self._overrides: dict[str, dict[int, Order]] = {}  # orders changed by update_order
        self._buckets: dict[str, tuple[float, float]] = {}
        self._clock_offset = 0.0
        self._secret = secrets.token_bytes(16)
        self._tmp = tempfile.TemporaryDirectory(prefix="shopify-emulator-")
        self.files_base_url = "http://127.0.0.1:0"  # set by the server
        self.base_url = "http://127.0.0.1:0"

    # -- clock: real time plus an offset tests can advance (URL expiry, slow jobs) --
    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self._clock_offset)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._clock_offset += seconds

    def close(self) -> None:
        self._tmp.cleanup()

    def shop_base_url(self, code: str) -> str:
        """Value for ``SHOPIFY_<CODE>_STORE``."""
        return self.base_url if code == "DEMO" else f"{self.base_url}/shops/{code}"

    # -- dataset ---------------------------------------------------------------------
    def params(self, shop: str) -> DatasetParams:
        n = self.config.shop_orders.get(shop, self.config.orders_per_shop)
        return DatasetParams(self.config.seed, shop, n, self.config.days, self.anchor)

    # Small datasets are materialised once (tests read them repeatedly); big ones (the CLI's
    # --orders N) are regenerated on each pass from (seed, shop, i) so memory stays flat.
    MATERIALISE_UP_TO = 50_000

    def iter_orders(self, shop: str) -> Iterator[Order]:
        """The shop's current orders (updates applied), by id, without materialising big datasets."""
        p = self.params(shop)
        with self._lock:
            cached = self._orders.get(shop)
            if cached is None and p.orders <= self.MATERIALISE_UP_TO:
                cached = self._orders[shop] = {o.id: o for o in (generate_order(p, i) for i in range(p.orders))}
            overrides = dict(self._overrides.get(shop, {}))
        if cached is not None:
            yield from list(cached.values())
            return
        for i in range(p.orders):
            o = generate_order(p, i)
            yield overrides.get(o.id, o)

    def orders(self, shop: str) -> list[Order]:
        """The shop's current orders (with updates applied), ordered by id."""
        return list(self.iter_orders(shop))

    def order(self, shop: str, order_id: int) -> Order:
        p = self.params(shop)
        i = order_id - order_id_base(shop)
        with self._lock:
            cached = self._orders.get(shop)
            if cached is not None:
                found = cached.get(order_id)
            elif order_id in self._overrides.get(shop, {}):
                found = self._overrides[shop][order_id]
            else:
                found = generate_order(p, i) if 0 <= i < p.orders else None
        if found is None:
            raise KeyError(f"shop {shop} has no order {order_id}")
        return found

    def _store(self, shop: str, order: Order) -> None:
        with self._lock:
            if shop in self._orders:
                self._orders[shop][order.id] = order
            self._overrides.setdefault(shop, {})[order.id] = order

    def update_order(self, shop: str, order_id: int, at: datetime | None = None, **changes: Any) -> Order:
        """Apply an update at time ``at`` (default: now, or just after the last update) and bump
        ``updated_at``.

        ``changes``: ``cancel=True``; ``refund={line_item_id: units}`` (a new refund of
        those units, tax included); ``financial_status=`` / ``fulfillment_status=``
        (display enum names); ``test=``. Returns the new order.
        """
        allowed = {"cancel", "refund", "financial_status", "fulfillment_status", "test"}
        unknown = set(changes) - allowed
        if unknown:
            raise TypeError(f"update_order: unknown change(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        with self._lock:
            o = self.order(shop, order_id)
            if at is None:
                # the dataset runs up to its anchor (up to an hour ahead): never go back in time
                at = max(self.now().replace(microsecond=0), o.updated_at + timedelta(seconds=1))
            if at.tzinfo is None:
                raise ValueError("update_order: at must be timezone-aware (UTC)")
            at = at.astimezone(UTC).replace(microsecond=0)
            if at < o.updated_at:
                raise ValueError(f"update_order: at={fmt_ts(at)} is before the order's updatedAt {fmt_ts(o.updated_at)}")
            lines = list(o.line_items)
            refunds = list(o.refunds)
            financial = o.display_financial_status
            if changes.get("refund"):
                by_id = {li.id: k for k, li in enumerate(lines)}
                sub = ZERO
                refunded = []
                for li_id, units in changes["refund"].items():
                    if li_id not in by_id:
                        raise ValueError(f"update_order: order {order_id} has no line item {li_id}")
                    li = lines[by_id[li_id]]
                    if not 0 < units <= li.current_quantity:
                        raise ValueError(f"update_order: cannot refund {units} of line {li_id} "
                                         f"(current quantity {li.current_quantity})")
                    lines[by_id[li_id]] = replace(li, current_quantity=li.current_quantity - units)
                    sub += q2(li.discounted_unit_price * units)
                    refunded.append((li_id, units))
                refund_id = o.line_items[0].id + 7 + 10_000 * len(refunds) if o.line_items else order_id
                refunds.append(Refund(refund_id, at, sub, q2(sub * o.tax_rate), tuple(refunded)))
                financial = "REFUNDED" if all(li.current_quantity == 0 for li in lines) else "PARTIALLY_REFUNDED"
            cancelled_at = o.cancelled_at
            if changes.get("cancel"):
                cancelled_at = at
                lines = [replace(li, current_quantity=0) for li in lines]
                financial = "VOIDED" if financial in {"PENDING", "AUTHORIZED"} else financial
            financial = changes.get("financial_status", financial)
            new = replace(
                o, line_items=tuple(lines), refunds=tuple(refunds), cancelled_at=cancelled_at,
                display_financial_status=financial,
                display_fulfillment_status=changes.get("fulfillment_status", o.display_fulfillment_status),
                test=changes.get("test", o.test), updated_at=at,
            )
            self._store(shop, new)
            return new

    def product_titles(self, shop: str) -> dict[int, str]:
        return {p.id: p.title for p in catalog(self.config.seed, shop)}

    # -- logging / rate limit ----------------------------------------------------------
    def _log(self, kind: str, shop: str | None, version: str | None, op: str | None, status: int,
             detail: str = "") -> None:
        with self._lock:
            self.request_log.append(RequestLogEntry(kind, shop, version, op, status, time.time(), detail))

    def log_of(self, kind: str | None = None, shop: str | None = None) -> list[RequestLogEntry]:
        with self._lock:
            return [e for e in self.request_log if (kind is None or e.kind == kind) and (shop is None or e.shop == shop)]

    def _bucket(self, shop: str, cost: float, spend: bool) -> tuple[bool, float]:
        """Leaky bucket per shop: returns (allowed, available after the request)."""
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

    def _cost(self, shop: str, requested: int, actual: int | None, available: float) -> dict[str, Any]:
        return {"cost": {"requestedQueryCost": requested, "actualQueryCost": actual,
                         "throttleStatus": _throttle_status(available, self.config)}}

    # -- GraphQL endpoint --------------------------------------------------------------
    def handle_graphql(self, shop: str, version: str, headers: dict[str, str], body: bytes) -> Response:
        hdrs = {k.lower(): v for k, v in headers.items()}
        extra = {"X-Shopify-API-Version": version, "X-Request-Id": secrets.token_hex(8)}
        token = hdrs.get("x-shopify-access-token")
        if token is None or not hmac.compare_digest(token.encode(), self.config.token.encode()):
            self._log("graphql", shop, version, None, 401, "invalid token")
            return Response.json(401, INVALID_TOKEN_BODY, extra)
        try:
            schema_version_for(version)
        except SchemaError:
            self._log("graphql", shop, version, None, 404, "unknown version")
            return Response.json(404, {"errors": "Not Found"}, extra)
        try:
            payload = json.loads(body or b"")
            text = payload["query"]
            if not isinstance(text, str):
                raise TypeError
            variables = payload.get("variables") or {}
            if not isinstance(variables, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            self._log("graphql", shop, version, None, 400, "bad body")
            return Response.json(400, {"errors": {"query": "Required parameter missing or invalid"}}, extra)

        kind, doc, parse_error = _classify(text)
        fault = self.faults.take({"http_429", "http_5xx"}, kind, shop)
        if fault is not None:
            if fault.kind == "http_429":
                retry = str(fault.params.get("retry_after", 1))
                self._log(kind, shop, version, None, 429, "fault http_429")
                return Response.json(429, {"errors": "Exceeded 2 calls per second for api client. "
                                                     "Reduce request rates to resume uninterrupted service."},
                                     {**extra, "Retry-After": retry})
            status = int(fault.params.get("status", 503))
            self._log(kind, shop, version, None, status, "fault http_5xx")
            return Response.json(status, {"errors": "Internal Server Error" if status == 500 else
                                          "Service Unavailable"}, extra)

        requested = MUTATION_COST if kind in {"run_query", "cancel"} else QUERY_COST
        if doc is not None and any(isinstance(d, OperationDefinitionNode) and d.operation == OperationType.MUTATION
                                   for d in doc.definitions):
            requested = MUTATION_COST
        throttled = self.faults.take({"throttled"}, kind, shop) is not None
        ok, available = self._bucket(shop, requested, spend=not throttled)
        if throttled or not ok:
            self._log(kind, shop, version, None, 200, "throttled")
            return Response.json(200, {
                "errors": [{"message": "Throttled",
                            "extensions": {"code": "THROTTLED",
                                           "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                "extensions": self._cost(shop, requested, None, available)}, extra)
        ext = self._cost(shop, requested, requested, available)

        if parse_error is not None or doc is None:
            err = parse_error or GraphQLError("Syntax Error")
            self._log(kind, shop, version, None, 200, "syntax error")
            return Response.json(200, {"errors": [_error_dict(err)], "extensions": ext}, extra)
        errors = _version_errors(doc, version) + [
            _error_dict(e) for e in validate(load_schema(version), doc)]
        if errors:
            self._log(kind, shop, version, None, 200, "invalid document")
            return Response.json(200, {"errors": errors, "extensions": ext}, extra)

        bad_ids = _invalid_id_variables(doc, variables)
        if bad_ids:
            self._log(kind, shop, version, None, 200, "invalid variable")
            return Response.json(200, {"errors": bad_ids, "extensions": ext}, extra)
        ctx = _Ctx(self, shop, version)
        result = execute(load_schema(version), doc, root_value=ctx.root(), variable_values=variables,
                         context_value=ctx)
        out: dict[str, Any] = {}
        if result.errors:
            out["errors"] = [_error_dict(e, locations=False) for e in result.errors]
        out["data"] = result.data
        out["extensions"] = ext
        self._log(kind, shop, version, ctx.operation_id, 200, ctx.detail)
        return Response.json(200, out, extra)

    # -- bulk operations ---------------------------------------------------------------
    def _refresh(self, op: BulkOp) -> None:
        """Advance the status machine to the emulator's current time."""
        now = self.now()
        with op.lock:
            if op.status in {"CANCELING"} and op.cancel_done_at is not None and now >= op.cancel_done_at:
                op.status = "CANCELED"
            if op.status in {"CREATED", "RUNNING"}:
                started = op.created_at + (op.complete_at - op.created_at) / 4
                if now >= op.complete_at:
                    self._finish(op)
                elif now >= started:
                    op.status = "RUNNING"
            if op.status == "COMPLETED" and op.completed_at and now > op.completed_at + URL_LIFETIME:
                op.status = "EXPIRED"

    def _finish(self, op: BulkOp) -> None:
        result = self._render(op)
        op.completed_at = op.complete_at.replace(microsecond=0)
        if op.fail_code:
            op.status = "FAILED"
            op.completed_at = None
            if op.fail_partial and result.object_count > 1 and result.path is not None:
                op.partial = self._partial(op, result)
            if result.path is not None:
                result.path.unlink(missing_ok=True)
        else:
            op.status = "COMPLETED"
            op.result = result

    def _render(self, op: BulkOp) -> ResultFile:
        if op.large_size is not None:
            return self._synthetic(op, op.large_size)
        doc = parse(op.query)
        fragments = {d.name.value: d for d in doc.definitions if isinstance(d, FragmentDefinitionNode)}
        projector = jsonl.Projector(fragments)
        ops = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
        path = Path(self._tmp.name) / f"bulk-{op.num}.jsonl"
        objects = roots = 0
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            for root_field in (f for o in ops for f in o.selection_set.selections if isinstance(f, FieldNode)):
                node_sel = projector.node_selection(root_field)
                if node_sel is None:
                    continue
                raws = self._root_nodes(op.shop, root_field)
                trees = (projector.tree(r, node_sel, None) for r in raws)
                for line in jsonl.flatten(trees, op.grouped, self.config.ungrouped_page):
                    fh.write(jsonl.dumps(line))
                    objects += 1
                    roots += "__parentId" not in line
        return ResultFile(path, path.stat().st_size, objects, roots)

    def _root_nodes(self, shop: str, root_field: FieldNode) -> Iterator[dict[str, Any]]:
        args = {a.name.value: a.value for a in root_field.arguments}

        def literal(name: str) -> Any:
            v = args.get(name)
            return getattr(v, "value", None) if v is not None else None

        name = root_field.name.value
        if name == "orders":
            pred = compile_query(literal("query"))
            reverse = str(literal("reverse")).lower() == "true"
            selected = sort_orders([o for o in self.iter_orders(shop) if pred(o)], literal("sortKey"), reverse)
            titles = self.product_titles(shop)
            return (jsonl.raw_order(o, titles) for o in selected)
        if name == "products":
            return (jsonl.raw_product(p) for p in catalog(self.config.seed, shop))
        if name == "productVariants":
            return (jsonl.raw_variant(v, p) for p in catalog(self.config.seed, shop) for v in p.variants)
        return iter(())  # not modelled: an empty connection

    def _partial(self, op: BulkOp, full: ResultFile) -> ResultFile | None:
        assert full.path is not None
        path = Path(self._tmp.name) / f"bulk-{op.num}-partial.jsonl"
        objects = roots = 0
        with open(full.path, encoding="utf-8") as src, open(path, "w", encoding="utf-8", newline="\n") as dst:
            for line in itertools.islice(src, max(1, full.object_count // 2)):
                dst.write(line)
                objects += 1
                roots += '"__parentId"' not in line
        return ResultFile(path, path.stat().st_size, objects, roots)

    def _synthetic(self, op: BulkOp, size: int) -> ResultFile:
        """``size`` bytes of valid JSONL: a block (<= 1 MiB) of real order lines, repeated.

        Ids repeat from one block to the next: this is for download/memory tests, not
        for warehouse contents. The last line is padded so the total is exact.
        """
        from shopify_sync.emulator.fast import iter_lines  # local: fast imports dataset only

        pad_template = '{"id":"gid:\\/\\/shopify\\/Order\\/1","note":"%s"}\n'
        minimum = len(pad_template % "")
        if size < minimum:
            raise ValueError(f"large_result size_bytes must be >= {minimum}")
        block = bytearray()
        block_lines: list[bytes] = []
        for line in iter_lines(self.params(op.shop), grouped=op.grouped):
            if len(block) + len(line) > min(size, 1 << 20):
                break
            block += line
            block_lines.append(line)
        if not block:
            return ResultFile(None, size, 1, 1, synthetic=(b"", 0, (pad_template % ("x" * (size - minimum))).encode()))
        full, rest = divmod(size, len(block))
        tail = bytearray()
        tail_lines = 0
        if rest:
            if rest < minimum:  # too small for a padding line: rebuild the last block as the tail
                full -= 1
                rest += len(block)
            for raw in block_lines:
                if len(tail) + len(raw) + minimum > rest:
                    break
                tail += raw
                tail_lines += 1
            tail += (pad_template % ("x" * (rest - len(tail) - minimum))).encode()
            tail_lines += 1
        count = full * len(block_lines) + tail_lines
        roots_in_block = sum(1 for raw in block_lines if b'"__parentId"' not in raw)
        roots = full * roots_in_block + sum(1 for raw in bytes(tail).splitlines() if b'"__parentId"' not in raw)
        return ResultFile(None, size, count, roots, synthetic=(bytes(block), full, bytes(tail)))

    def run_query(self, shop: str, version: str, query: str, grouped: bool) -> tuple[BulkOp | None, list[dict]]:
        errors = bulk_query_errors(query, load_schema(version))
        if errors:
            return None, [{"field": ["query"], "message": m, "code": "INVALID"} for m in errors]
        fault = self.faults.take({"operation_in_progress"}, "run_query", shop)
        if fault is not None:
            ids = fault.params.get("blocking_ids") or ["gid://shopify/BulkOperation/7749099028786"]
            return None, [_in_progress(ids)]
        with self._lock:
            active = [o for o in self._ops.values() if o.shop == shop]
            for o in active:
                self._refresh(o)
            active = sorted((o for o in active if o.status in ACTIVE), key=lambda o: o.num)
            limit = 5 if version >= "2026-01" or version == "unstable" else 1
            if len(active) >= limit:
                return None, [_in_progress([o.gid for o in active])]
            now = self.now()
            seconds = self.config.completion_seconds
            slow = self.faults.take({"slow_completion"}, "run_query", shop)
            if slow is not None:
                seconds += float(slow.params.get("seconds", 30))
            op = BulkOp(next(self._op_seq), shop, version, query, grouped, now, now + timedelta(seconds=seconds))
            failed = self.faults.take({"bulk_failed"}, "run_query", shop)
            if failed is not None:
                op.fail_code = failed.params.get("error_code", "INTERNAL_SERVER_ERROR")
                op.fail_partial = bool(failed.params.get("partial", False))
            large = self.faults.take({"large_result"}, "run_query", shop)
            if large is not None:
                op.large_size = int(large.params["size_bytes"])
            self._ops[op.num] = op
        return op, []

    def get_op(self, shop: str, num: int) -> BulkOp | None:
        with self._lock:
            op = self._ops.get(num)
        if op is None or op.shop != shop:
            return None
        self._refresh(op)
        return op

    def operations(self, shop: str | None = None) -> list[BulkOp]:
        with self._lock:
            ops = [o for o in self._ops.values() if shop is None or o.shop == shop]
        for o in ops:
            self._refresh(o)
        return ops

    def cancel(self, shop: str, num: int) -> tuple[BulkOp | None, list[dict]]:
        op = self.get_op(shop, num)
        if op is None:
            return None, [{"field": ["id"], "message": "Bulk operation does not exist"}]
        with op.lock:
            if op.status in TERMINAL or op.status == "CANCELING":
                status = op.status.lower()
                return op, [{"field": None, "message": f"A bulk operation cannot be canceled when it is {status}"}]
            op.status = "CANCELING"
            op.canceled_at = self.now()
            op.cancel_done_at = op.canceled_at + timedelta(seconds=self.config.cancel_seconds)
        return op, []

    def op_view(self, op: BulkOp) -> dict[str, Any]:
        """The ``BulkOperation`` object as GraphQL returns it."""
        done = op.status in {"COMPLETED", "EXPIRED"} and op.result is not None
        result = op.result
        return {
            "__typename": "BulkOperation", "id": op.gid, "status": op.status, "type": "QUERY",
            "errorCode": op.fail_code if op.status == "FAILED" else None,
            "createdAt": fmt_ts(op.created_at),
            "completedAt": fmt_ts(op.completed_at) if op.completed_at and op.status in {"COMPLETED", "EXPIRED"}
            else None,
            "objectCount": str(result.object_count) if done and result else
            (str(op.partial.object_count) if op.partial else "0"),
            "rootObjectCount": str(result.root_count) if done and result else
            (str(op.partial.root_count) if op.partial else "0"),
            "fileSize": str(result.size) if done and result and result.object_count else None,
            "url": self._signed_url(op, "result") if op.status == "COMPLETED" and result and result.object_count
            else None,
            "partialDataUrl": self._signed_url(op, "partial") if op.status == "FAILED" and op.partial else None,
            "query": op.query,
        }

    # -- result host ---------------------------------------------------------------------
    def _signature(self, name: str, expires: int) -> str:
        return hmac.new(self._secret, f"{name}\n{expires}".encode(), hashlib.sha256).hexdigest()[:64]

    def _signed_url(self, op: BulkOp, which: str) -> str:
        at = op.completed_at if which == "result" else op.complete_at.replace(microsecond=0)
        assert at is not None
        expires = int((at + URL_LIFETIME).timestamp())
        name = f"{'' if which == 'result' else 'partial-'}bulk-{op.num}.jsonl"
        query = urllib.parse.urlencode({
            "GoogleAccessId": "bulk-operations@shopify-emulator.iam.gserviceaccount.com",
            "Expires": str(expires), "Signature": self._signature(name, expires),
            "response-content-disposition": f'attachment; filename="{name}"; filename*=UTF-8\'\'{name}',
            "response-content-type": "application/jsonl"})
        return f"{self.files_base_url}/shopify-tiers-assets-prod-us-east1/bulk-operation-outputs/{name}?{query}"

    def handle_download(self, path: str, query: str, headers: dict[str, str]) -> Response:
        hdrs = {k.lower(): v for k, v in headers.items()}
        params = dict(urllib.parse.parse_qsl(query))
        name = path.rsplit("/", 1)[-1]
        op_num = None
        try:
            op_num = int(name.removeprefix("partial-").removeprefix("bulk-").removesuffix(".jsonl"))
        except ValueError:
            pass
        op_id = f"gid://shopify/BulkOperation/{op_num}" if op_num is not None else None
        with self._lock:
            op = self._ops.get(op_num) if op_num is not None else None
        shop = op.shop if op else None

        def xml_error(status: int, code: str, message: str, details: str = "") -> Response:
            body = ("<?xml version='1.0' encoding='UTF-8'?><Error><Code>" + code + "</Code><Message>" + message
                    + "</Message>" + (f"<Details>{details}</Details>" if details else "") + "</Error>")
            self._log("download", shop, op.version if op else None, op_id, status, code)
            return Response(status, body.encode(), {"Content-Type": "application/xml; charset=UTF-8"})

        if "x-shopify-access-token" in hdrs:
            # A pre-signed URL must be fetched without the shop's credentials (and never leak them).
            return xml_error(403, "AccessDenied", "Access denied.",
                             "Anonymous pre-signed request must not carry X-Shopify-Access-Token.")
        try:
            expires = int(params.get("Expires", ""))
        except ValueError:
            return xml_error(400, "MissingSecurityHeader", "Your request was missing a required header.",
                             "Expires")
        if op is None or not hmac.compare_digest(params.get("Signature", ""), self._signature(name, expires)):
            return xml_error(403, "SignatureDoesNotMatch",
                             "The request signature we calculated does not match the signature you provided.")
        fault = self.faults.take({"download_500", "download_truncated", "download_expired"}, "download", shop)
        if (fault is not None and fault.kind == "download_expired") or self.now().timestamp() > expires:
            return xml_error(403, "ExpiredToken", "The provided token has expired.", f"Request has expired: {expires}")
        if fault is not None and fault.kind == "download_500":
            return xml_error(500, "InternalError", "We encountered an internal error. Please try again.")
        result = op.partial if name.startswith("partial-") else op.result
        if result is None:
            return xml_error(404, "NoSuchKey", "The specified key does not exist.")
        headers_out = {"Content-Type": "application/jsonl",
                       "Content-Disposition": f'attachment; filename="{name}"',
                       "Cache-Control": "private, max-age=0", "Accept-Ranges": "bytes"}
        start, end, status = 0, result.size, 200
        rng = hdrs.get("range")
        if rng:  # storage hosts honour single byte ranges: lets a client resume a broken download
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
            if m is None or int(m.group(1)) >= result.size:
                self._log("download", shop, op.version, op_id, 416, "bad range")
                return Response(416, b"", {"Content-Range": f"bytes */{result.size}"})
            start = int(m.group(1))
            end = min(result.size, int(m.group(2)) + 1) if m.group(2) else result.size
            status = 206
            headers_out["Content-Range"] = f"bytes {start}-{end - 1}/{result.size}"
        length = end - start
        send = length
        if fault is not None and fault.kind == "download_truncated":
            send = int(length * float(fault.params.get("fraction", 0.5)))
        self._log("download", shop, op.version, op_id, status, "truncated" if send < length else "")
        return Response(status, None, headers_out, stream=(length, _limit(_chunks(result, start), send)))


def _chunks(result: ResultFile, offset: int = 0, chunk: int = 1 << 16) -> Iterator[bytes]:
    if result.path is not None:
        with open(result.path, "rb") as fh:
            fh.seek(offset)
            while data := fh.read(chunk):
                yield data
        return
    assert result.synthetic is not None
    block, full, tail = result.synthetic
    skip_blocks, skip = divmod(offset, len(block)) if block else (0, offset)
    for _ in range(skip_blocks, full):
        yield block[skip:]
        skip = 0
    if tail:
        yield tail[max(0, offset - full * len(block)):] if skip_blocks >= full else tail


def _limit(chunks: Iterator[bytes], n: int) -> Iterator[bytes]:
    sent = 0
    for c in chunks:
        if sent + len(c) >= n:
            yield c[: n - sent]
            return
        sent += len(c)
        yield c


def _in_progress(ids: list[str]) -> dict[str, Any]:
    return {"field": None, "message": f"A bulk query operation for this app and shop is already in progress: "
                                      f"{', '.join(ids)}.", "code": "OPERATION_IN_PROGRESS"}


def _error_dict(e: GraphQLError, locations: bool = True) -> dict[str, Any]:
    message, ext = ruby_style(e)
    out: dict[str, Any] = {"message": message}
    if locations and e.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in e.locations]
    if e.path:
        out["path"] = list(e.path)
    if e.extensions:
        ext = dict(e.extensions)
    out["extensions"] = ext
    return out


def _classify(text: str) -> tuple[str, Any, GraphQLError | None]:
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
    if names & {"node", "bulkOperation", "currentBulkOperation", "nodes", "bulkOperations"}:
        return "poll", doc, None
    return "graphql", doc, None


def _walk_fields(sel: Any, path: list[str]) -> Iterator[tuple[FieldNode, list[str]]]:
    for s in sel.selections if sel else ():
        if isinstance(s, FieldNode):
            p = [*path, s.alias.value if s.alias else s.name.value]
            yield s, p
            yield from _walk_fields(s.selection_set, p)
        elif hasattr(s, "selection_set"):
            yield from _walk_fields(s.selection_set, path)


def _version_errors(doc: Any, version: str) -> list[dict[str, Any]]:
    """Differences between API versions that the two shipped schema snapshots do not show."""
    if version == "unstable":
        return []
    out = []

    def err(node: FieldNode, path: list[str], message: str, ext: dict[str, Any]) -> None:
        loc = node.loc.source.get_location(node.loc.start) if node.loc else None
        e: dict[str, Any] = {"message": message}
        if loc:
            e["locations"] = [{"line": loc.line, "column": loc.column}]
        e["path"] = path
        e["extensions"] = ext
        out.append(e)

    for d in doc.definitions:
        if not isinstance(d, OperationDefinitionNode):
            continue
        root = "mutation" if d.operation == OperationType.MUTATION else "query"
        for f, path in _walk_fields(d.selection_set, [root]):
            name = f.name.value
            if len(path) == 2 and name in {"bulkOperation", "bulkOperations"} and version < "2026-01":
                err(f, path, f"Field '{name}' doesn't exist on type 'QueryRoot'",
                    {"code": "undefinedField", "typeName": "QueryRoot", "fieldName": name})
            if name == "bulkOperationRunQuery" and version < "2025-07":
                for a in f.arguments:
                    if a.name.value == "groupObjects":
                        err(f, [*path, "groupObjects"], "Field 'bulkOperationRunQuery' doesn't accept argument "
                            "'groupObjects'", {"code": "argumentNotAccepted", "name": "bulkOperationRunQuery",
                                               "typeName": "Field", "argumentName": "groupObjects"})
            if (name == "code" and version < "2025-01" and len(path) >= 3 and path[-2] == "userErrors"
                    and "bulkOperationRunQuery" in path[1]):
                err(f, path, "Field 'code' doesn't exist on type 'UserError'",
                    {"code": "undefinedField", "typeName": "UserError", "fieldName": "code"})
    return out


def _invalid_id_variables(doc: Any, variables: dict[str, Any]) -> list[dict[str, Any]]:
    """Shopify coerces ``ID`` variables as global ids before executing anything."""
    errors = []
    for d in doc.definitions:
        if not isinstance(d, OperationDefinitionNode):
            continue
        for vd in d.variable_definitions or ():
            type_node, text = vd.type, print_ast(vd.type)
            while hasattr(type_node, "type"):
                type_node = type_node.type
            name = vd.variable.name.value
            value = variables.get(name)
            if getattr(type_node, "name", None) is None or type_node.name.value != "ID" or value is None:
                continue
            values = value if isinstance(value, list) else [value]
            bad = next((v for v in values if _parse_gid(v) is None), None)
            if bad is None:
                continue
            loc = vd.loc.source.get_location(vd.loc.start) if vd.loc else None
            err: dict[str, Any] = {"message": f"Variable ${name} of type {text} was provided invalid value"}
            if loc:
                err["locations"] = [{"line": loc.line, "column": loc.column}]
            err["extensions"] = {"code": "INVALID_VARIABLE", "value": value,
                                 "problems": [{"path": [], "explanation": f"Invalid global id '{bad}'"}]}
            errors.append(err)
    return errors


def _parse_gid(value: Any) -> tuple[str, int] | None:
    if not isinstance(value, str) or not value.startswith("gid://shopify/"):
        return None
    kind, _, num = value.removeprefix("gid://shopify/").partition("/")
    num = num.split("?", 1)[0]
    if not kind or not num.isdigit():
        return None
    return kind, int(num)


class _Ctx:
    """Root resolvers for one request."""

    def __init__(self, emulator: Emulator, shop: str, version: str) -> None:
        self.em, self.shop, self.version = emulator, shop, version
        self.operation_id: str | None = None
        self.detail = ""

    def root(self) -> dict[str, Callable[..., Any]]:
        return {
            "bulkOperationRunQuery": self.run_query, "bulkOperationCancel": self.cancel,
            "node": self.node, "nodes": self.nodes, "bulkOperation": self.bulk_operation,
            "currentBulkOperation": self.current, "bulkOperations": self.bulk_operations,
            "shop": lambda info: {"__typename": "Shop", "name": f"Emulator {self.shop}",
                                  "myshopifyDomain": f"{self.shop.lower()}.myshopify.com",
                                  "currencyCode": shop_currency(self.shop)},
        }

    def _grouped_default(self) -> bool:
        # absent before 2025-07 (always grouped); default true in 2025-07/2025-10, false from 2026-01
        return not (self.version >= "2026-01" or self.version == "unstable")

    def run_query(self, info: Any, query: str, groupObjects: bool | None = None) -> dict[str, Any]:  # noqa: N803
        explicit = any(a.name.value == "groupObjects" for a in info.field_nodes[0].arguments)
        grouped = bool(groupObjects) if explicit else self._grouped_default()
        op, errors = self.em.run_query(self.shop, self.version, query, grouped)
        if self.version < "2025-01":
            errors = [{k: v for k, v in e.items() if k != "code"} for e in errors]
        if op is None:
            self.detail = errors[0]["message"] if errors else ""
            return {"__typename": "BulkOperationRunQueryPayload", "bulkOperation": None, "userErrors": errors}
        self.operation_id = op.gid
        return {"__typename": "BulkOperationRunQueryPayload", "bulkOperation": self.em.op_view(op),
                "userErrors": []}

    def cancel(self, info: Any, id: str) -> dict[str, Any]:  # noqa: A002
        parsed = _parse_gid(id)
        self.operation_id = id
        num = parsed[1] if parsed and parsed[0] == "BulkOperation" else -1
        op, errors = self.em.cancel(self.shop, num)
        return {"__typename": "BulkOperationCancelPayload",
                "bulkOperation": self.em.op_view(op) if op else None, "userErrors": errors}

    def _lookup(self, id: Any, field_name: str, strict_type: bool) -> dict[str, Any] | None:  # noqa: A002
        parsed = _parse_gid(id)
        self.operation_id = id if isinstance(id, str) else None
        if parsed is None:
            raise GraphQLError(f"Invalid global id '{id}'", extensions={"code": "INVALID_VARIABLE"})
        kind, num = parsed
        if kind != "BulkOperation":
            if strict_type:
                raise GraphQLError(f"Invalid id: {id}", extensions={"code": "RESOURCE_NOT_FOUND"})
            return None
        op = self.em.get_op(self.shop, num)
        return self.em.op_view(op) if op else None

    def node(self, info: Any, id: str) -> dict[str, Any] | None:  # noqa: A002
        return self._lookup(id, "node", strict_type=False)

    def nodes(self, info: Any, ids: list[str]) -> list[dict[str, Any] | None]:
        return [self._lookup(i, "nodes", strict_type=False) for i in ids]

    def bulk_operation(self, info: Any, id: str) -> dict[str, Any] | None:  # noqa: A002
        return self._lookup(id, "bulkOperation", strict_type=True)

    def current(self, info: Any, type: str = "QUERY") -> dict[str, Any] | None:  # noqa: A002
        if type != "QUERY":
            return None
        ops = sorted(self.em.operations(self.shop), key=lambda o: o.num)
        return self.em.op_view(ops[-1]) if ops else None

    def bulk_operations(self, info: Any, first: int | None = None, last: int | None = None,
                        reverse: bool = False, query: str | None = None, **_: Any) -> dict[str, Any]:
        if first is None and last is None:
            raise GraphQLError("you must provide one of first or last", extensions={"code": "BAD_REQUEST"})
        if first is not None and last is not None:
            raise GraphQLError("providing both first and last is not supported",
                               extensions={"code": "BAD_REQUEST"})
        ops = sorted(self.em.operations(self.shop), key=lambda o: o.num, reverse=not reverse)
        if query:
            for term in query.split():
                if term.startswith("status:"):
                    want = term.split(":", 1)[1].upper()
                    ops = [o for o in ops if o.status == want]
        ops = ops[:first] if first is not None else ops[-(last or 0):]
        views = [self.em.op_view(o) for o in ops]
        return {"__typename": "BulkOperationConnection", "nodes": views,
                "edges": [{"__typename": "BulkOperationEdge", "node": v, "cursor": v["id"]} for v in views],
                "pageInfo": {"__typename": "PageInfo", "hasNextPage": False, "hasPreviousPage": False,
                             "startCursor": None, "endCursor": None}}
