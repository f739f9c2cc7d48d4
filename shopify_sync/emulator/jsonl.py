"""Shopify-shaped bulk JSONL: projection of the selection set, connection splitting.

What Shopify does and we reproduce:
- one JSON object per line, ``\\n``-terminated, compact, ``/`` escaped as ``\\/`` (Ruby's
  encoder; the captured files show ``gid:\\/\\/shopify\\/...``), non-ASCII unescaped;
- every node of a connection is its own line; a nested connection's nodes get
  ``__parentId`` (the parent's ``id``), appended last; objects and lists (``refunds``,
  ``variant { id }``) stay inline on their owner's line;
- only the selected fields appear, under their aliases, in selection order;
- amounts are decimal strings without padding (``"25.0"``, ``"19.9"``, ``"12.34"``);
- ``groupObjects: true`` puts each node's children directly under it; ungrouped
  (the default since 2026-01) only guarantees that children come after their parent,
  so we emit roots in pages and interleave the page's children round-robin after them:
  a child is almost never adjacent to its parent, which catches clients that rely on
  line order.

Fields that exist in the schema but that the emulator does not model resolve to null
(connections to no nodes).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import cast

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    SelectionSetNode,
)

from shopify_sync.emulator.dataset import LineItem, Order, Product, Refund, Variant, fmt_ts

UNGROUPED_PAGE = 10


class Connection:
    """A connection value in the raw object graph (its nodes become JSONL lines)."""

    __slots__ = ("nodes",)

    def __init__(self, nodes: Iterable[dict[str, object]]) -> None:
        self.nodes = list(nodes)


def amount(value: Decimal) -> str:
    """Shopify's Decimal rendering: ``25.00`` → ``"25.0"``, ``19.90`` → ``"19.9"``."""
    text = str(value)
    dot = text.find(".")
    if dot >= 0 and len(text) - dot == 3 and "E" not in text:  # the usual 2-dp case, fast
        return text[:-1] if text[-1] == "0" else text
    text = format(value.normalize(), "f")
    return text if "." in text else text + ".0"


def gid(kind: str, n: int) -> str:
    return f"gid://shopify/{kind}/{n}"


def money_bag(value: Decimal, currency: str) -> dict[str, object]:
    money = {"__typename": "MoneyV2", "amount": amount(value), "currencyCode": currency}
    return {"__typename": "MoneyBag", "shopMoney": money, "presentmentMoney": money}


def raw_variant(v: Variant, product: Product | None = None) -> dict[str, object]:
    out: dict[str, object] = {
        "__typename": "ProductVariant", "id": gid("ProductVariant", v.id), "legacyResourceId": str(v.id),
        "sku": v.sku, "title": v.title, "price": amount(v.price),
        "displayName": f"{product.title} - {v.title}" if product else v.title,
    }
    if product is not None:
        out["product"] = {"__typename": "Product", "id": gid("Product", product.id), "title": product.title}
    return out


def raw_product(p: Product) -> dict[str, object]:
    return {
        "__typename": "Product", "id": gid("Product", p.id), "legacyResourceId": str(p.id), "title": p.title,
        "handle": p.title.lower().replace(" ", "-"), "status": "ACTIVE",
        "variants": Connection(raw_variant(v, p) for v in p.variants),
    }


def _raw_line(li: LineItem, c: str, titles: dict[int, str] | None) -> dict[str, object]:
    # money bags are zero-argument callables: only the selected ones get computed
    return {
        "__typename": "LineItem", "id": gid("LineItem", li.id), "name": li.title, "title": li.title,
        "sku": li.sku, "quantity": li.quantity, "currentQuantity": li.current_quantity,
        "refundableQuantity": li.current_quantity, "isGiftCard": False,
        "originalUnitPriceSet": lambda: money_bag(li.original_unit_price, c),
        "originalTotalSet": lambda: money_bag(li.original_total, c),
        "discountedUnitPriceSet": lambda: money_bag(li.discounted_unit_price, c),
        "discountedUnitPriceAfterAllDiscountsSet": lambda: money_bag(li.discounted_unit_price, c),
        "discountedTotalSet": lambda: money_bag(li.discounted_total, c),
        "totalDiscountSet": lambda: money_bag(li.original_total - li.discounted_total, c),
        "variant": None if li.variant_id is None else {
            "__typename": "ProductVariant", "id": gid("ProductVariant", li.variant_id), "sku": li.sku},
        "product": None if li.product_id is None else {
            "__typename": "Product", "id": gid("Product", li.product_id),
            "title": (titles or {}).get(li.product_id, li.title)},
    }


def _raw_refund(r: Refund, c: str) -> dict[str, object]:
    return {"__typename": "Refund", "id": gid("Refund", r.id), "createdAt": fmt_ts(r.created_at),
            "updatedAt": fmt_ts(r.created_at), "note": None,
            "totalRefundedSet": lambda: money_bag(r.total_refunded, c), "refundLineItems": Connection([])}


def raw_order(o: Order, titles: dict[int, str] | None = None) -> dict[str, object]:
    """The order as a GraphQL object graph (only what the emulator models)."""
    c = o.currency_code
    lines = [_raw_line(li, c, titles) for li in o.line_items]
    refunds = [_raw_refund(r, c) for r in o.refunds]
    return {
        "__typename": "Order", "id": gid("Order", o.id), "legacyResourceId": str(o.id), "name": o.name,
        "createdAt": fmt_ts(o.created_at), "updatedAt": fmt_ts(o.updated_at),
        "processedAt": fmt_ts(o.processed_at),
        "cancelledAt": fmt_ts(o.cancelled_at) if o.cancelled_at else None,
        "cancelReason": "CUSTOMER" if o.cancelled_at else None,
        "test": o.test, "currencyCode": c, "presentmentCurrencyCode": c, "taxesIncluded": False,
        "sourceName": "web",
        "displayFinancialStatus": o.display_financial_status,
        "displayFulfillmentStatus": o.display_fulfillment_status,
        "currentTotalPriceSet": lambda: money_bag(o.current_total, c),
        "totalPriceSet": lambda: money_bag(o.original_total, c),
        "currentSubtotalPriceSet": lambda: money_bag(o.current_subtotal, c),
        "subtotalPriceSet": lambda: money_bag(o.original_subtotal, c),
        "currentTotalDiscountsSet": lambda: money_bag(o.current_total_discounts, c),
        "totalDiscountsSet": lambda: money_bag(
            sum((li.original_total - li.discounted_total for li in o.line_items), Decimal("0.00")), c),
        "currentTotalTaxSet": lambda: money_bag(o.current_total_tax, c),
        "totalTaxSet": lambda: money_bag(o.original_tax, c),
        "currentShippingPriceSet": lambda: money_bag(o.current_shipping, c),
        "totalShippingPriceSet": lambda: money_bag(o.shipping, c),
        "totalRefundedSet": lambda: money_bag(o.total_refunded, c),
        "netPaymentSet": lambda: money_bag(
            o.original_total - o.total_refunded
            if o.display_financial_status not in {"VOIDED", "PENDING", "AUTHORIZED"} else Decimal("0.00"), c),
        "subtotalLineItemsQuantity": sum(li.quantity for li in o.line_items),
        "currentSubtotalLineItemsQuantity": sum(li.current_quantity for li in o.line_items),
        "refunds": refunds,
        "lineItems": Connection(lines),
    }


# --- projection -----------------------------------------------------------------------

@dataclass
class Tree:
    """One JSONL line and the connections below it."""

    line: dict[str, object]
    children: list[Tree]


class Projector:
    """Projects raw objects on a selection set (aliases, fragments, __typename)."""

    def __init__(self, fragments: dict[str, FragmentDefinitionNode] | None = None) -> None:
        self.fragments = fragments or {}
        # (selection set, typename) -> [(output key, field name, sub-selection)]: the same
        # selection is applied to every node of a result, so expand fragments once
        self._plans: dict[tuple[int, str | None], list[tuple[str, str, SelectionSetNode | None]]] = {}

    def _fields(self, sel: SelectionSetNode, typename: str | None) -> Iterator[FieldNode]:
        for s in sel.selections:
            if isinstance(s, FieldNode):
                yield s
            elif isinstance(s, InlineFragmentNode):
                if s.type_condition is None or typename is None or s.type_condition.name.value == typename:
                    yield from self._fields(s.selection_set, typename)
            elif isinstance(s, FragmentSpreadNode):
                frag = self.fragments.get(s.name.value)
                if frag and (typename is None or frag.type_condition.name.value == typename):
                    yield from self._fields(frag.selection_set, typename)

    def _plan(self, sel: SelectionSetNode, typename: str | None) -> list[tuple[str, str, SelectionSetNode | None]]:
        key = (id(sel), typename)
        plan = self._plans.get(key)
        if plan is None:
            plan = [(f.alias.value if f.alias else f.name.value, f.name.value, f.selection_set)
                    for f in self._fields(sel, typename)]
            self._plans[key] = plan
        return plan

    def value(self, raw: object, sel: SelectionSetNode | None) -> object:
        """``raw`` projected on ``sel``; a callable ``raw`` is a value computed only when selected."""
        if raw is None or sel is None:
            return raw() if callable(raw) else raw
        if callable(raw):
            raw = raw()
        if isinstance(raw, list):
            return [self.value(r, sel) for r in raw]
        if isinstance(raw, dict):
            out: dict[str, object] = {}
            typename = raw.get("__typename")
            for key, name, sub in self._plan(sel, typename):
                if name == "__typename":
                    out[key] = typename
                    continue
                v = raw.get(name)
                if isinstance(v, Connection):
                    continue  # split into lines by `tree`, never inlined
                out[key] = self.value(v, sub)
            return out
        return raw

    def node_selection(self, conn_field: FieldNode, typename: str | None = None) -> SelectionSetNode | None:
        """The ``edges { node { … } }`` selection of a connection field."""
        if conn_field.selection_set is None:
            return None
        for edges in self._fields(conn_field.selection_set, None):
            if edges.name.value == "edges" and edges.selection_set:
                for node in self._fields(edges.selection_set, None):
                    if node.name.value == "node":
                        return node.selection_set
        return None

    def tree(self, raw: dict[str, object], sel: SelectionSetNode, parent_id: str | None) -> Tree:
        line = cast(dict[str, object], self.value(raw, sel))  # a dict projects to a dict
        if parent_id is not None:
            line["__parentId"] = parent_id
        children: list[Tree] = []
        typename, own_id = raw.get("__typename"), raw.get("id")
        for f in self._fields(sel, typename if isinstance(typename, str) else None):
            v = raw.get(f.name.value)
            if isinstance(v, Connection):
                node_sel = self.node_selection(f)
                if node_sel is None:
                    continue
                for child in v.nodes:
                    children.append(self.tree(child, node_sel, own_id if isinstance(own_id, str) else None))
        return Tree(line, children)


def _flatten_grouped(tree: Tree) -> Iterator[dict[str, object]]:
    yield tree.line
    for c in tree.children:
        yield from _flatten_grouped(c)


def _round_robin(groups: list[list[Tree]]) -> list[Tree]:
    out: list[Tree] = []
    longest = max((len(g) for g in groups), default=0)
    for k in range(longest):
        for g in groups:
            if k < len(g):
                out.append(g[k])
    return out


def flatten(trees: Iterable[Tree], grouped: bool, page: int = UNGROUPED_PAGE) -> Iterator[dict[str, object]]:
    """Lines in Shopify's order (see module docstring)."""
    if grouped:
        for t in trees:
            yield from _flatten_grouped(t)
        return
    batch: list[Tree] = []

    def emit(level: list[Tree]) -> Iterator[dict[str, object]]:
        while level:
            for t in level:
                yield t.line
            level = _round_robin([t.children for t in level])

    for t in trees:
        batch.append(t)
        if len(batch) >= page:
            yield from emit(batch)
            batch = []
    yield from emit(batch)


def dumps(line: dict[str, object]) -> str:
    return json.dumps(line, ensure_ascii=False, separators=(",", ":")).replace("/", "\\/") + "\n"
