"""The orders ``query:`` search filter (the subset the sync relies on, plus a little more).

Grammar (Shopify search syntax): terms separated by whitespace are ANDed (``AND`` may
be written out), ``OR`` separates alternatives, a leading ``-`` or ``NOT`` negates a
term. A term is ``field:value`` or ``field:<op>value`` with op in ``< <= > >=``; values
may be quoted with ``'`` or ``"``. Supported fields: ``created_at``, ``updated_at``,
``processed_at`` (timestamps or dates, compared in UTC), ``id`` (numeric range),
``test`` (true/false), ``status`` (open/cancelled/closed/any), ``financial_status``,
``fulfillment_status``, ``name``, ``sku``. As on Shopify, unknown fields and values
that cannot be parsed are ignored (the term matches everything), and a term without
``field:`` is ignored too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from shopify_sync.emulator.dataset import Order

_TERM = re.compile(
    r"""\s*(?P<neg>-|NOT\s+)?(?P<field>[A-Za-z_][A-Za-z0-9_]*)\s*:\s*(?P<op><=|>=|<|>)?\s*"""
    r"""(?:'(?P<sq>[^']*)'|"(?P<dq>[^"]*)"|(?P<bare>[^\s()]+))"""
)
_TIME_FIELDS = {"created_at", "updated_at", "processed_at"}

Predicate = Callable[[Order], bool]


class SearchSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class Term:
    field: str
    op: str  # "=", "<", "<=", ">", ">="
    value: str
    negated: bool = False


def parse_time(value: str) -> datetime:
    """``2026-01-02T03:04:05Z``, ``...+02:00``, ``2026-01-02`` (UTC midnight) or ``now``."""
    if value.lower() == "now":
        return datetime.now(UTC)
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        if re.fullmatch(r"\d{4}", text):
            return datetime(int(text), 1, 1, tzinfo=UTC)
        raise SearchSyntaxError(f"Invalid timestamp for query filter: {value!r}") from None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def tokenize(query: str) -> list[list[Term]]:
    """Disjunctive normal form: a list of OR-alternatives, each a list of ANDed terms."""
    groups: list[list[Term]] = [[]]
    pos = 0
    text = query.strip()
    while pos < len(text):
        rest = text[pos:]
        stripped = rest.lstrip()
        pos += len(rest) - len(stripped)
        if not stripped:
            break
        if stripped.startswith(("AND ", "AND\t")) or stripped == "AND":
            pos += 3
            continue
        if stripped.startswith(("OR ", "OR\t")):
            groups.append([])
            pos += 2
            continue
        if stripped[0] in "()":  # grouping is flattened: enough for the ranges we emit
            pos += 1
            continue
        m = _TERM.match(text, pos)
        if m:
            value = next(v for v in (m.group("sq"), m.group("dq"), m.group("bare")) if v is not None)
            groups[-1].append(Term(m.group("field").lower(), m.group("op") or "=", value, bool(m.group("neg"))))
            pos = m.end()
            continue
        # free text (no field): Shopify searches default fields; we ignore it
        nxt = re.match(r"\S+", text[pos:])
        pos += nxt.end() if nxt else 1
    return [g for g in groups if g] or [[]]


def _compare(left: object, op: str, right: object) -> bool:
    if op == "=":
        return left == right
    if op == "<":
        return left < right  # type: ignore[operator]
    if op == "<=":
        return left <= right  # type: ignore[operator]
    if op == ">":
        return left > right  # type: ignore[operator]
    return left >= right  # type: ignore[operator]


def _term_predicate(term: Term) -> Predicate | None:
    f, op, v = term.field, term.op, term.value
    if f in _TIME_FIELDS:
        try:
            bound = parse_time(v)
        except SearchSyntaxError:
            return None  # Shopify ignores a term it cannot parse (search warnings), so do we

        attr = f
        date_only = op == "=" and re.fullmatch(r"\d{4}-\d{2}-\d{2}", v) is not None

        def by_time(o: Order) -> bool:
            ts: datetime = getattr(o, attr)
            if date_only:
                return ts.date() == bound.date()
            return _compare(ts.replace(microsecond=0), op, bound)

        return by_time
    if f == "id":
        try:
            n = int(v.rsplit("/", 1)[-1])
        except ValueError:
            return None
        return lambda o: _compare(o.id, op, n)
    if f == "test":
        want = v.lower() == "true"
        return lambda o: o.test == want
    if f == "status":
        s = v.lower()
        if s == "cancelled":
            return lambda o: o.cancelled_at is not None
        if s in {"open", "not_closed"}:
            return lambda o: o.cancelled_at is None
        return None
    if f == "financial_status":
        return lambda o: o.display_financial_status.lower() == v.lower()
    if f == "fulfillment_status":
        return lambda o: o.display_fulfillment_status.lower() == v.lower()
    if f == "name":
        return lambda o: o.name.lstrip("#") == v.lstrip("#")
    if f == "sku":
        return lambda o: any(li.sku == v for li in o.line_items)
    return None  # unknown field: ignored, as Shopify does


def compile_query(query: str | None) -> Predicate:
    """A predicate over orders for the ``query:`` argument (``None``/empty: everything)."""
    if not query or not query.strip():
        return lambda o: True
    alternatives: list[list[tuple[Predicate, bool]]] = []
    for group in tokenize(query):
        preds = []
        for term in group:
            pred = _term_predicate(term)
            if pred is not None:
                preds.append((pred, term.negated))
        alternatives.append(preds)

    def match(o: Order) -> bool:
        return any(all(p(o) != neg for p, neg in alt) for alt in alternatives)

    return match


SORT_KEYS: dict[str, Callable[[Order], object]] = {
    "CREATED_AT": lambda o: (o.created_at, o.id),
    "UPDATED_AT": lambda o: (o.updated_at, o.id),
    "PROCESSED_AT": lambda o: (o.processed_at, o.id),
    "ID": lambda o: o.id,
    "ORDER_NUMBER": lambda o: o.id,
    "TOTAL_PRICE": lambda o: (o.current_total, o.id),
    "RELEVANCE": lambda o: o.id,
}


def sort_orders(orders: list[Order], sort_key: str | None, reverse: bool) -> list[Order]:
    """Orders' default sort key is PROCESSED_AT (Admin schema ``OrderSortKeys``)."""
    key = SORT_KEYS.get(sort_key or "PROCESSED_AT", SORT_KEYS["ID"])
    return sorted(orders, key=key, reverse=reverse)  # type: ignore[arg-type]
