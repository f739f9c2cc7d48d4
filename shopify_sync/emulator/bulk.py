"""The bulk operation machine: submission, status over time, cancel, and the version rules.

An operation is CREATED for the first quarter of its completion time, then RUNNING,
then COMPLETED (or FAILED under a ``bulk_failed`` fault); a COMPLETED result expires
after ``URL_LIFETIME``; a cancel goes through CANCELING to CANCELED. Status is advanced
lazily, against the emulator's clock, whenever an operation is looked at.

While RUNNING, ``objectCount`` / ``rootObjectCount`` grow with the elapsed share of the
running time and never go down; a cancel freezes them (Shopify returns the CANCELING
operation with its counters unchanged and keeps them at CANCELED, reference §2.1, §2.6).
Only FAILED operations get a ``partialDataUrl``: the captures and docs show none for
CANCELED (§2.1 "partial JSONL of a FAILED op").
"""

from __future__ import annotations

import itertools
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from graphql import FieldNode, GraphQLError, OperationDefinitionNode, parse

from shopify_sync.emulator.bulk_rules import bulk_query_errors
from shopify_sync.emulator.dataset import DatasetParams
from shopify_sync.emulator.results import (
    ResultFile,
    damage_result,
    partial_result,
    render_result,
    synthetic_result,
)
from shopify_sync.emulator.state import EmulatorState
from shopify_sync.shopify.schema import load_schema

URL_LIFETIME = timedelta(days=7)  # Shopify: result URLs expire 7 days after completion
TERMINAL = {"COMPLETED", "FAILED", "CANCELED", "EXPIRED"}
ACTIVE = {"CREATED", "RUNNING", "CANCELING"}  # CANCELING still blocks new submissions
DEFAULT_BLOCKER = "gid://shopify/BulkOperation/7749099028786"
RENDERED_KEPT = 6  # rendered results kept for reuse (1M orders: about 2 GB each; a bench backend makes 4)
# (shop, query, grouped, ungrouped page size, dataset parameters, orders signature)
_RenderKey = tuple[str, str, bool, int, DatasetParams, int]
_NOW = re.compile(r"\bnow\b", re.IGNORECASE)

# A userError as GraphQL returns it: field path (or null), message, and from 2025-01 a code.
UserError = dict[str, str | list[str] | None]


# --- what differs between API versions --------------------------------------------------


def _from(version: str, first: str) -> bool:
    return version == "unstable" or version >= first


def concurrent_limit(version: str) -> int:
    """Bulk queries a shop may run at once: one before 2026-01, five from then on."""
    return 5 if _from(version, "2026-01") else 1


def grouped_by_default(version: str) -> bool:
    """``groupObjects`` when not given: absent before 2025-07 (always grouped), default true
    in 2025-07/2025-10, false from 2026-01."""
    return not _from(version, "2026-01")


def user_errors_for(version: str, errors: list[UserError]) -> list[UserError]:
    """``BulkOperationUserError.code`` exists only from 2025-01."""
    if version < "2025-01":
        return [{k: v for k, v in e.items() if k != "code"} for e in errors]
    return errors


def root_field(query: str) -> str | None:
    """The bulk query's root field (``orders``, ``productVariants``): what ``root=`` faults match."""
    try:
        doc = parse(query)
    except GraphQLError:
        return None
    for d in doc.definitions:
        if isinstance(d, OperationDefinitionNode):
            for f in d.selection_set.selections:
                if isinstance(f, FieldNode):
                    return f.name.value
    return None


def in_progress_error(ids: list[str]) -> UserError:
    return {"field": None, "message": f"A bulk query operation for this app and shop is already in progress: "
                                      f"{', '.join(ids)}.", "code": "OPERATION_IN_PROGRESS"}


# --- operations -------------------------------------------------------------------------


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
    defect: str | None = None  # malformed_result / object_count_mismatch: how the file is damaged
    missing_lines: int = 0
    status: str = "CREATED"
    completed_at: datetime | None = None
    canceled_at: datetime | None = None
    cancel_done_at: datetime | None = None
    result: ResultFile | None = None
    partial: ResultFile | None = None
    expected: tuple[int, int] | None = None  # (objects, roots) the running job is heading for
    objects_seen: int = 0  # counters shown so far: monotonic while RUNNING, frozen by a cancel
    roots_seen: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def gid(self) -> str:
        return f"gid://shopify/BulkOperation/{self.num}"


class BulkMachine:
    """Every shop's bulk operations; result files live in a temp dir until ``close``."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self._lock = threading.RLock()
        self._ops: dict[int, BulkOp] = {}
        self._seq = itertools.count(7_933_223_797_042)
        self._tmp = tempfile.TemporaryDirectory(prefix="shopify-emulator-")
        # Rendered orders results by (shop, query, grouping, dataset, orders signature), oldest first: the
        # same query over an unchanged dataset gets the same bytes, rendered once (a
        # benchmark's backends send the same windows; rendering 1M orders takes minutes).
        self._rendered: dict[_RenderKey, ResultFile] = {}
        self._kept_seq = itertools.count()
        # Seconds spent rendering results: Shopify's own work, which a benchmark with zero
        # poll delay takes out of the client's wall time (bench/e2e.py).
        self.render_seconds = 0.0

    def close(self) -> None:
        self._tmp.cleanup()

    def run_query(self, shop: str, version: str, query: str, grouped: bool) -> tuple[BulkOp | None, list[UserError]]:
        errors = bulk_query_errors(query, load_schema(version))
        if errors:
            return None, [{"field": ["query"], "message": m, "code": "INVALID"} for m in errors]
        faults = self.state.faults
        root = root_field(query)
        fault = faults.take({"operation_in_progress"}, "run_query", shop, root)
        if fault is not None:
            return None, [in_progress_error(fault.ids("blocking_ids") or [DEFAULT_BLOCKER])]
        with self._lock:
            active = [o for o in self._ops.values() if o.shop == shop]
            for o in active:
                self._refresh(o)
            active = sorted((o for o in active if o.status in ACTIVE), key=lambda o: o.num)
            if len(active) >= concurrent_limit(version):
                return None, [in_progress_error([o.gid for o in active])]
            now = self.state.now()
            seconds = self.state.config.completion_seconds
            slow = faults.take({"slow_completion"}, "run_query", shop, root)
            if slow is not None:
                seconds += slow.number("seconds", 30)
            op = BulkOp(next(self._seq), shop, version, query, grouped, now, now + timedelta(seconds=seconds))
            failed = faults.take({"bulk_failed"}, "run_query", shop, root)
            if failed is not None:
                op.fail_code = failed.text("error_code", "INTERNAL_SERVER_ERROR")
                op.fail_partial = bool(failed.params.get("partial", False))
            large = faults.take({"large_result"}, "run_query", shop, root)
            if large is not None:
                op.large_size = int(large.number("size_bytes", 0))
            malformed = faults.take({"malformed_result"}, "run_query", shop, root)
            if malformed is not None:
                op.defect = malformed.text("defect", "truncated_line")
            short = faults.take({"object_count_mismatch"}, "run_query", shop, root)
            if short is not None:
                op.missing_lines = max(1, int(short.number("missing", 1)))
            self._ops[op.num] = op
        return op, []

    def find(self, num: int) -> BulkOp | None:
        """The operation numbered ``num`` of any shop, as it is (no status update)."""
        with self._lock:
            return self._ops.get(num)

    def get_op(self, shop: str, num: int) -> BulkOp | None:
        op = self.find(num)
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

    def cancel(self, shop: str, num: int) -> tuple[BulkOp | None, list[UserError]]:
        op = self.get_op(shop, num)
        if op is None:
            return None, [{"field": ["id"], "message": "Bulk operation does not exist"}]
        with op.lock:
            if op.status in TERMINAL or op.status == "CANCELING":
                status = op.status.lower()
                return op, [{"field": None, "message": f"A bulk operation cannot be canceled when it is {status}"}]
            op.status = "CANCELING"
            op.canceled_at = self.state.now()
            op.cancel_done_at = op.canceled_at + timedelta(seconds=self.state.config.cancel_seconds)
        return op, []

    def _refresh(self, op: BulkOp) -> None:
        """Advance the status machine to the emulator's current time."""
        now = self.state.now()
        with op.lock:
            if op.status in {"CANCELING"} and op.cancel_done_at is not None and now >= op.cancel_done_at:
                op.status = "CANCELED"
            if op.status in {"CREATED", "RUNNING"}:
                started = op.created_at + (op.complete_at - op.created_at) / 4
                if now >= op.complete_at:
                    self._finish(op)
                elif now >= started:
                    op.status = "RUNNING"
                    self._progress(op, (now - started) / (op.complete_at - started))
            if op.status == "COMPLETED" and op.completed_at and now > op.completed_at + URL_LIFETIME:
                op.status = "EXPIRED"

    def _progress(self, op: BulkOp, share: float) -> None:
        """Grow the running counters towards the expected totals (never down)."""
        if op.expected is None:
            # A dry render for the totals; the result itself is rendered at completion, so
            # order updates made while the job runs still show in it.
            dry = self._render(op, f"bulk-{op.num}-progress.jsonl")
            op.expected = (dry.object_count, dry.root_count)
            if dry.path is not None:
                dry.path.unlink(missing_ok=True)
        share = min(max(share, 0.0), 1.0)
        op.objects_seen = max(op.objects_seen, int(op.expected[0] * share))
        op.roots_seen = max(op.roots_seen, int(op.expected[1] * share))

    def _finish(self, op: BulkOp) -> None:
        result = self._render(op)
        op.completed_at = op.complete_at.replace(microsecond=0)
        if op.fail_code:
            op.status = "FAILED"
            op.completed_at = None
            if op.fail_partial and result.object_count > 1 and result.path is not None:
                op.partial = partial_result(result, self._path(f"bulk-{op.num}-partial.jsonl"))
            if result.path is not None:
                result.path.unlink(missing_ok=True)
        else:
            op.status = "COMPLETED"
            if op.defect or op.missing_lines:
                result = damage_result(result, op.defect, op.missing_lines)
            op.result = result
            op.objects_seen, op.roots_seen = result.object_count, result.root_count

    def _render(self, op: BulkOp, name: str | None = None) -> ResultFile:
        if op.large_size is not None:
            return synthetic_result(self.state, op.shop, op.grouped, op.large_size)
        path = self._path(name or f"bulk-{op.num}.jsonl")
        key = (op.shop, op.query, op.grouped, self.state.config.ungrouped_page, self.state.params(op.shop),
               self.state.orders_signature(op.shop))
        with self._lock:
            cached = self._rendered.get(key)
            if cached is not None and cached.path is not None:
                os.link(cached.path, path)
                return ResultFile(path, cached.size, cached.object_count, cached.root_count)
        started = time.perf_counter()
        result = render_result(self.state, op.shop, op.query, op.grouped, path)
        with self._lock:
            self.render_seconds += time.perf_counter() - started
        # Only orders results, and only without "now" in the search: the catalog's stock
        # moves with the clock, and so does a "now" window.
        if result.path is not None and root_field(op.query) == "orders" and not _NOW.search(op.query):
            self._remember(key, result)
        return result

    def _remember(self, key: _RenderKey, result: ResultFile) -> None:
        assert result.path is not None
        with self._lock:
            kept = self._path(f"rendered-{next(self._kept_seq)}.jsonl")
            os.link(result.path, kept)
            self._rendered[key] = ResultFile(kept, result.size, result.object_count, result.root_count)
            while len(self._rendered) > RENDERED_KEPT:
                oldest = self._rendered.pop(next(iter(self._rendered)))
                if oldest.path is not None:
                    oldest.path.unlink(missing_ok=True)

    def _path(self, name: str) -> Path:
        return Path(self._tmp.name) / name
