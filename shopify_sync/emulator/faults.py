"""Per-scenario fault injection: ``emulator.faults.add("http_429", times=2, retry_after=1)``.

Each fault kind applies to a default set of request kinds (``run_query``, ``poll``,
``cancel``, ``graphql``, ``download``); ``on=`` narrows or widens that, ``shop=`` limits it
to one shop and ``times=None`` arms it for good. A ``root=`` parameter (e.g.
``root="productVariants"``) limits a fault to bulk operations whose query has that root
field: the catalog's operations, or the orders' (``root="orders"``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

# A fault's parameter: a number, a word, a flag or a list of ids (``blocking_ids``).
FaultParam = int | float | str | bool | list[str]

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
    "malformed_result",       # next operation's file has one bad line in its middle (param defect)
    "object_count_mismatch",  # next operation's file lacks its last `missing` lines; objectCount counts them
}
ERROR_CODES = {"ACCESS_DENIED", "INTERNAL_SERVER_ERROR", "TIMEOUT"}
# malformed_result: a line cut in half, a line that is no JSON, a child whose __parentId names no line.
DEFECTS = {"truncated_line", "not_json", "orphan_child"}

_DEFAULT_ON = {
    "throttled": {"run_query", "poll", "cancel", "graphql"},
    "http_429": {"run_query", "poll", "cancel", "graphql"},
    "http_5xx": {"run_query", "poll", "cancel", "graphql"},
    "operation_in_progress": {"run_query"},
    "bulk_failed": {"run_query"},
    "slow_completion": {"run_query"},
    "large_result": {"run_query"},
    "malformed_result": {"run_query"},
    "object_count_mismatch": {"run_query"},
    "download_500": {"download"},
    "download_truncated": {"download"},
    "download_expired": {"download"},
}


@dataclass
class Fault:
    kind: str
    times: int | None  # None: every matching request
    params: dict[str, FaultParam]
    shop: str | None = None
    on: frozenset[str] | None = None  # request kinds it applies to; None: kind's default
    fired: int = 0

    def number(self, name: str, default: float) -> float:
        """A numeric parameter (``status``, ``seconds``, ``fraction``, ``size_bytes``)."""
        value = self.params.get(name, default)
        if isinstance(value, list):
            raise TypeError(f"fault {self.kind}: {name} must be a number, got a list")
        return float(value)

    def text(self, name: str, default: str) -> str:
        return str(self.params.get(name, default))

    def ids(self, name: str) -> list[str]:
        value = self.params.get(name)
        return [str(v) for v in value] if isinstance(value, list) else []


class Faults:
    """Per-scenario fault injection: ``faults.add("http_429", times=2, retry_after=1)``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, kind: str, times: int | None = 1, *, shop: str | None = None,
            on: Iterable[str] | None = None, **params: FaultParam) -> Fault:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(sorted(FAULT_KINDS))}")
        if kind == "bulk_failed" and params.get("error_code", "INTERNAL_SERVER_ERROR") not in ERROR_CODES:
            raise ValueError(f"bulk_failed error_code must be one of {sorted(ERROR_CODES)}")
        if kind == "malformed_result" and params.get("defect", "truncated_line") not in DEFECTS:
            raise ValueError(f"malformed_result defect must be one of {sorted(DEFECTS)}")
        fault = Fault(kind, times, params, shop, frozenset(on) if on else None)
        if kind == "large_result" and int(fault.number("size_bytes", 0)) <= 0:
            raise ValueError("large_result needs size_bytes > 0")
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, kinds: set[str], request_kind: str, shop: str | None, root: str | None = None) -> Fault | None:
        """The first armed fault of one of ``kinds`` matching the request; consumes one use.

        ``root``: the bulk query's root field, when the request concerns one operation."""
        with self._lock:
            for f in self._faults:
                if f.kind not in kinds or (f.shop is not None and f.shop != shop):
                    continue
                if "root" in f.params and f.params["root"] != root:
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
