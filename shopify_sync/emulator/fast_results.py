"""The sync's own orders bulk query over a big dataset, rendered with the fast writer.

The generic renderer (``results.render_result``) builds every order as Python objects,
projects it on the selection set and sorts the whole selection in memory: about a
minute per 100k orders, the most of what a benchmark's "request/poll" phase measured
(docs/benchmarks.md, issue 15). For the one query shape the sync sends
(``queries.orders_query``: a time-window search, a sort by time, the sync's fields),
``render_orders`` gives the same bytes from ``fast``'s string templates: one pass draws
every order and keeps ``(sort key, index)`` of those the search selects, a second pass
renders them in sorted order. Orders changed by ``update_order`` go through the
generic projector, one order at a time. Any other query returns ``None`` and the
generic path renders it. A test compares both paths byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from graphql import FieldNode, OperationDefinitionNode, SelectionSetNode, ValueNode, parse, print_ast

from shopify_sync.emulator import jsonl
from shopify_sync.emulator.dataset import Order, draw_order
from shopify_sync.emulator.fast import line_item_lines, order_line
from shopify_sync.emulator.search import Term, compile_query, tokenize
from shopify_sync.emulator.state import EmulatorState
from shopify_sync.shopify.queries import orders_query

# Search fields whose predicate reads only what ``_Times`` carries.
_FAST_FIELDS = {"created_at", "updated_at", "processed_at", "id"}
# Sort key -> the Draw attribute it orders by (ties by id, as ``search.SORT_KEYS``).
_SORT_ATTR = {"CREATED_AT": "created", "UPDATED_AT": "updated", "PROCESSED_AT": "processed",
              "ID": "id", "ORDER_NUMBER": "id", "RELEVANCE": "id"}


class _Times:
    """What a time/id search predicate reads of an order, without building the order."""

    __slots__ = ("id", "created_at", "updated_at", "processed_at")

    def __init__(self, order_id: int, created: int, updated: int, processed: int) -> None:
        self.id = order_id
        self.created_at = datetime.fromtimestamp(created, UTC)
        self.updated_at = datetime.fromtimestamp(updated, UTC)
        self.processed_at = datetime.fromtimestamp(processed, UTC)


@lru_cache(maxsize=1)
def _sync_selection() -> str:
    root = _orders_field(parse(orders_query("updated_at", datetime(2026, 1, 1, tzinfo=UTC))))
    assert root is not None
    return _printed_node_selection(root)


def _orders_field(doc: object) -> FieldNode | None:
    """The document's single root field if it is ``orders``."""
    fields = [f for d in getattr(doc, "definitions", ()) if isinstance(d, OperationDefinitionNode)
              for f in d.selection_set.selections]
    if len(fields) != 1 or not isinstance(fields[0], FieldNode) or fields[0].name.value != "orders":
        return None
    return fields[0]


def _printed_node_selection(root: FieldNode) -> str:
    node_sel: SelectionSetNode | None = jsonl.Projector().node_selection(root)
    return "" if node_sel is None else print_ast(node_sel)


def _literal(root: FieldNode, name: str) -> object:
    value: ValueNode | None = next((a.value for a in root.arguments if a.name.value == name), None)
    return getattr(value, "value", None) if value is not None else None


def render_orders(state: EmulatorState, shop: str, query: str, grouped: bool, path: Path) -> tuple[int, int] | None:
    """Write the result of the sync's orders ``query`` to ``path``: (objects, roots); ``None``
    when the query is not of that shape (the caller renders it the generic way)."""
    root = _orders_field(parse(query))
    if root is None or _printed_node_selection(root) != _sync_selection():
        return None
    search, sort_key = _literal(root, "query"), _literal(root, "sortKey") or "PROCESSED_AT"
    terms = [t for t in tokenize(search if isinstance(search, str) else "") if isinstance(t, Term)]
    if sort_key not in _SORT_ATTR or any(t.field not in _FAST_FIELDS or t.value.lower() == "now" for t in terms):
        return None
    pred = compile_query(search if isinstance(search, str) else None)
    reverse = str(_literal(root, "reverse")).lower() == "true"
    picked = _select(state, shop, pred, _SORT_ATTR[str(sort_key)], reverse)
    objects = roots = 0
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for line in _paged(_orders_lines(state, shop, picked), grouped, state.config.ungrouped_page):
            fh.write(line)
            objects += 1
        roots = len(picked)
    return objects, roots


def _select(state: EmulatorState, shop: str, pred: object, attr: str, reverse: bool) -> list[int]:
    """Indexes of the orders the search selects, in the requested order."""
    p = state.params(shop)
    overrides = state.overrides(shop)
    keyed: list[tuple[int, int, int]] = []
    for i in range(p.orders):
        d = draw_order(p, i)
        changed = overrides.get(d.id)
        if changed is not None:
            times: _Times | Order = changed
            key = _order_key(changed, attr)
        else:
            times = _Times(d.id, d.created, d.updated, d.processed)
            key = getattr(d, attr)
        if pred(times):  # type: ignore[operator]
            keyed.append((key, d.id, i))
    keyed.sort(reverse=reverse)
    return [i for _, _, i in keyed]


def _order_key(order: Order, attr: str) -> int:
    if attr == "id":
        return order.id
    ts: datetime = getattr(order, f"{attr}_at")
    return int(ts.timestamp())


def _orders_lines(state: EmulatorState, shop: str, picked: list[int]) -> Iterator[tuple[str, list[str]]]:
    """Each picked order's own line and its line items' lines."""
    p = state.params(shop)
    overrides = state.overrides(shop)
    projector = jsonl.Projector()
    root = _orders_field(parse(orders_query("updated_at", datetime(2026, 1, 1, tzinfo=UTC))))
    assert root is not None
    node_sel = projector.node_selection(root)
    assert node_sel is not None
    titles = state.product_titles(shop) if overrides else {}
    for i in picked:
        d = draw_order(p, i)
        changed = overrides.get(d.id)
        if changed is None:
            yield order_line(d), line_item_lines(d)
            continue
        lines = [jsonl.dumps(line) for line in jsonl.flatten([projector.tree(jsonl.raw_order(changed, titles),
                                                                              node_sel, None)], True)]
        yield lines[0], lines[1:]


def _paged(orders: Iterator[tuple[str, list[str]]], grouped: bool, page: int) -> Iterator[str]:
    """Lines in ``jsonl.flatten``'s order: grouped, or pages of roots then their children
    round robin."""
    batch: list[tuple[str, list[str]]] = []

    def emit() -> Iterator[str]:
        for own, _ in batch:
            yield own
        longest = max((len(children) for _, children in batch), default=0)
        for k in range(longest):
            for _, children in batch:
                if k < len(children):
                    yield children[k]

    for own, children in orders:
        if grouped:
            yield own
            yield from children
            continue
        batch.append((own, children))
        if len(batch) >= page:
            yield from emit()
            batch = []
    yield from emit()
