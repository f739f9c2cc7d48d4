"""The emulator's state: configuration, the shops' datasets, the clock, faults and the request log.

The other parts (``bulk``, ``graphql_api``, ``downloads``) read and record through an
``EmulatorState``; none of them holds orders or time of its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TypedDict, Unpack

from shopify_sync.emulator import jsonl
from shopify_sync.emulator.catalog import EmulatorCatalog
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
)
from shopify_sync.emulator.faults import Faults


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
    # Pins the hot variants' stock moves (one every HOT_PERIOD_SECONDS of the clock) to this
    # instant: runs minutes apart that must compare equal (the fault suite) see one stock.
    stock_clock: datetime | None = None

    def __post_init__(self) -> None:
        if self.orders_per_shop < 0 or self.days < 1:
            raise ValueError("EmulatorConfig: orders_per_shop must be >= 0 and days >= 1")
        if self.anchor is not None and self.anchor.tzinfo is None:
            raise ValueError("EmulatorConfig: anchor must be timezone-aware (UTC)")


@dataclass(frozen=True)
class RequestLogEntry:
    kind: str  # run_query | poll | cancel | download | graphql
    shop: str | None
    version: str | None
    operation_id: str | None
    status_code: int
    at: float
    detail: str = ""
    root: str | None = None  # run_query: the bulk query's root field (orders, productVariants)


class OrderChanges(TypedDict, total=False):
    """What ``update_order`` can change (display enum names for the statuses)."""

    cancel: bool
    refund: dict[int, int]  # line item id -> units
    financial_status: str
    fulfillment_status: str
    test: bool


_ALLOWED_CHANGES = set(OrderChanges.__annotations__)


class EmulatorState:
    """Every emulated shop's dataset (with updates), the clock, faults and the request log."""

    # Small datasets are materialised once (tests read them repeatedly); big ones (the CLI's
    # --orders N) are regenerated on each pass from (seed, shop, i) so memory stays flat.
    MATERIALISE_UP_TO = 50_000

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.anchor = self.config.anchor or default_anchor()
        self.faults = Faults()
        self.request_log: list[RequestLogEntry] = []
        self._lock = threading.RLock()
        self._orders: dict[str, dict[int, Order]] = {}  # materialised lazily per shop
        self._overrides: dict[str, dict[int, Order]] = {}  # orders changed by update_order
        self._clock_offset = 0.0
        # productVariants: the seeded catalog, stock moving with this clock, test changes.
        pinned = self.config.stock_clock
        self.product_catalog = EmulatorCatalog(
            self.config.seed, self.anchor, self.now if pinned is None else (lambda: pinned))

    # -- clock: real time plus an offset tests can advance (URL expiry, slow jobs) --
    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self._clock_offset)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._clock_offset += seconds

    # -- request log -------------------------------------------------------------------
    def log(self, kind: str, shop: str | None, version: str | None, op: str | None, status: int,
            detail: str = "", *, root: str | None = None) -> None:
        with self._lock:
            self.request_log.append(RequestLogEntry(kind, shop, version, op, status, time.time(), detail, root))

    def log_of(self, kind: str | None = None, shop: str | None = None) -> list[RequestLogEntry]:
        with self._lock:
            return [e for e in self.request_log if (kind is None or e.kind == kind) and (shop is None or e.shop == shop)]

    # -- dataset ---------------------------------------------------------------------
    def params(self, shop: str) -> DatasetParams:
        n = self.config.shop_orders.get(shop, self.config.orders_per_shop)
        return DatasetParams(self.config.seed, shop, n, self.config.days, self.anchor)

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

    def overrides(self, shop: str) -> dict[int, Order]:
        """The shop's orders changed by ``update_order``, by id (a copy)."""
        with self._lock:
            return dict(self._overrides.get(shop, {}))

    def orders_signature(self, shop: str) -> int:
        """Equal while the shop's orders are the same (changed, or reset to the generated ones):
        what a rendered result can be reused for."""
        with self._lock:
            return hash(frozenset(self._overrides.get(shop, {}).items()))

    def reset_orders(self, shop: str) -> None:
        """Undo every ``update_order`` of ``shop``: its orders are the generated ones again."""
        with self._lock:
            self._overrides.pop(shop, None)
            self._orders.pop(shop, None)

    def product_titles(self, shop: str) -> dict[int, str]:
        return {p.id: p.title for p in catalog(self.config.seed, shop)}

    def _store(self, shop: str, order: Order) -> None:
        with self._lock:
            if shop in self._orders:
                self._orders[shop][order.id] = order
            self._overrides.setdefault(shop, {})[order.id] = order

    def update_order(self, shop: str, order_id: int, at: datetime | None = None,
                     **changes: Unpack[OrderChanges]) -> Order:
        """Apply an update at time ``at`` (default: now, or just after the last update) and bump
        ``updated_at``.

        ``changes``: ``cancel=True``; ``refund={line_item_id: units}`` (a new refund of
        those units, tax included); ``financial_status=`` / ``fulfillment_status=``
        (display enum names); ``test=``. Returns the new order.
        """
        unknown = set(changes) - _ALLOWED_CHANGES
        if unknown:
            raise TypeError(f"update_order: unknown change(s) {sorted(unknown)}; allowed: {sorted(_ALLOWED_CHANGES)}")
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
            new = _changed(o, at, changes)
            self._store(shop, new)
            return new


def _changed(o: Order, at: datetime, changes: OrderChanges) -> Order:
    """``o`` with ``changes`` applied at ``at`` (a new refund, a cancellation, new statuses)."""
    if changes.get("refund"):
        o = _refunded(o, at, changes["refund"])
    lines = list(o.line_items)
    financial = o.display_financial_status
    cancelled_at = o.cancelled_at
    if changes.get("cancel"):
        cancelled_at = at
        lines = [replace(li, current_quantity=0) for li in lines]
        financial = "VOIDED" if financial in {"PENDING", "AUTHORIZED"} else financial
    return replace(
        o, line_items=tuple(lines), cancelled_at=cancelled_at,
        display_financial_status=changes.get("financial_status", financial),
        display_fulfillment_status=changes.get("fulfillment_status", o.display_fulfillment_status),
        test=changes.get("test", o.test), updated_at=at,
    )


def _refunded(o: Order, at: datetime, units_by_line: dict[int, int]) -> Order:
    """``o`` with a new refund of ``units_by_line`` (tax included) at ``at``."""
    lines = list(o.line_items)
    by_id = {li.id: k for k, li in enumerate(lines)}
    sub = ZERO
    refunded = []
    for li_id, units in units_by_line.items():
        if li_id not in by_id:
            raise ValueError(f"update_order: order {o.id} has no line item {li_id}")
        li = lines[by_id[li_id]]
        if not 0 < units <= li.current_quantity:
            raise ValueError(f"update_order: cannot refund {units} of line {li_id} "
                             f"(current quantity {li.current_quantity})")
        lines[by_id[li_id]] = replace(li, current_quantity=li.current_quantity - units)
        sub += q2(li.discounted_unit_price * units)
        refunded.append((li_id, units))
    refund_id = o.line_items[0].id + 7 + 10_000 * len(o.refunds) if o.line_items else o.id
    refunds = (*o.refunds, Refund(refund_id, at, sub, q2(sub * o.tax_rate), tuple(refunded)))
    financial = "REFUNDED" if all(li.current_quantity == 0 for li in lines) else "PARTIALLY_REFUNDED"
    return replace(o, line_items=tuple(lines), refunds=refunds, display_financial_status=financial)
