"""The orders ``query:`` search filter (the subset the sync relies on, plus a little more).

Grammar (Shopify search syntax): terms separated by whitespace are ANDed (``AND`` may
be written out), ``OR`` separates alternatives and binds looser than AND, parentheses
group, and a leading ``-`` or ``NOT`` negates a term or a parenthesised group. A term is
``field:value`` or ``field:<op>value`` with op in ``< <= > >=``; values may be quoted with ``'`` or ``"``. Supported fields: ``created_at``, ``updated_at``,
``processed_at`` (timestamps or dates, compared in UTC), ``id`` (numeric range),
``test`` (true/false), ``status`` (open/cancelled/closed/any), ``financial_status``,
``fulfillment_status``, ``name``, ``sku``. As on Shopify, unknown fields and values
that cannot be parsed are ignored (the term matches everything), and a term without
``field:`` is ignored too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
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


# Operators and free text, tried where no ``field:value`` term starts. ``-`` negates a group
# only when a parenthesis follows (``-foo`` is free text); AND/OR/NOT are whole words.
_WORD = re.compile(r"-(?=\s*\()|NOT(?=[\s(])|AND(?=[\s(]|$)|OR(?=[\s(]|$)|[^\s()]+")
_SPACE = re.compile(r"\s*")

Token = Term | str  # a term, or one of "(", ")", "AND", "OR", "NOT"


def tokenize(query: str) -> list[Token]:
    """Terms and operators in order; free text (no ``field:``) is dropped, as Shopify
    searches default fields with it, which the emulator does not model."""
    out: list[Token] = []
    pos = 0
    while True:
        pos = _SPACE.match(query, pos).end()  # type: ignore[union-attr]
        if pos >= len(query):
            return out
        if query[pos] in "()":
            out.append(query[pos])
            pos += 1
            continue
        m = _TERM.match(query, pos)
        if m:
            value = next(v for v in (m.group("sq"), m.group("dq"), m.group("bare")) if v is not None)
            out.append(Term(m.group("field").lower(), m.group("op") or "=", value, bool(m.group("neg"))))
            pos = m.end()
            continue
        w = _WORD.match(query, pos)
        assert w is not None  # any non-space, non-parenthesis character matches
        pos = w.end()
        word = w.group()
        if word in {"AND", "OR"}:
            out.append(word)
        elif word in {"NOT", "-"}:
            out.append("NOT")


# A parsed (sub)expression: a predicate, or None where every term in it was ignored
# (unknown field, unparsable value), which then drops out of the AND / OR around it.
Node = Predicate | None


def _join(nodes: list[Node], combine: Callable[[Iterable[bool]], bool]) -> Node:
    """AND (``combine=all``) or OR (``any``) of the nodes that are not ignored."""
    preds = [n for n in nodes if n is not None]
    if len(preds) <= 1:
        return preds[0] if preds else None
    return lambda o: combine(p(o) for p in preds)


def _not(node: Node) -> Node:
    return None if node is None else (lambda o: not node(o))


def _parse_or(tokens: list[Token], i: int) -> tuple[Node, int]:
    """``or := and ("OR" and)*``: AND binds tighter than OR, as in Shopify's search syntax."""
    node, i = _parse_and(tokens, i)
    alternatives = [node]
    while i < len(tokens) and tokens[i] == "OR":
        node, i = _parse_and(tokens, i + 1)
        alternatives.append(node)
    return _join(alternatives, any), i


def _parse_and(tokens: list[Token], i: int) -> tuple[Node, int]:
    """``and := unary (["AND"] unary)*``: whitespace is an implicit AND."""
    items: list[Node] = []
    while i < len(tokens) and tokens[i] not in ("OR", ")"):
        if tokens[i] == "AND":
            i += 1
            continue
        node, i = _parse_unary(tokens, i)
        items.append(node)
    return _join(items, all), i


def _parse_unary(tokens: list[Token], i: int) -> tuple[Node, int]:
    """``unary := "NOT" unary | "(" or ")" | term``; a missing ``)`` closes at the end."""
    token = tokens[i]
    if token == "NOT":
        if i + 1 >= len(tokens) or tokens[i + 1] in ("AND", "OR", ")"):
            return None, i + 1  # nothing to negate ("NOT AND x" is read as "x")
        node, i = _parse_unary(tokens, i + 1)
        return _not(node), i
    if token == "(":
        node, i = _parse_or(tokens, i + 1)
        if i < len(tokens) and tokens[i] == ")":
            i += 1
        return node, i
    assert isinstance(token, Term)
    pred = _term_predicate(token)
    return (_not(pred) if token.negated else pred), i + 1


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
    """A predicate over orders for the ``query:`` argument (``None``/empty: everything).

    Parentheses group; an unmatched ``)`` is skipped and what follows is ANDed with what
    came before (Shopify answers such queries with a search warning, not an error)."""
    tokens = tokenize(query or "")
    parts: list[Node] = []
    i = 0
    while i < len(tokens):
        node, i = _parse_or(tokens, i)
        parts.append(node)
        if i < len(tokens) and tokens[i] == ")":
            i += 1
    pred = _join(parts, all)
    return pred if pred is not None else (lambda o: True)


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
