"""The orders ``query:`` filter and ``sortKey``/``reverse``, checked against the dataset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shopify_sync.emulator import EmulatorConfig, EmulatorServer
from shopify_sync.emulator.search import SearchSyntaxError, compile_query, parse_time
from shopify_sync.shopify.queries import orders_query
from shopify_sync_tests.emulator.helpers import Api

ANCHOR = datetime(2026, 11, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def server():
    with EmulatorServer(EmulatorConfig(anchor=ANCHOR, orders_per_shop=150)) as srv:
        yield srv


@pytest.fixture
def api(server):
    client = Api(server, shop="DE")
    yield client
    client.close()


def root_ids(api: Api, inner: str) -> list[int]:
    _, lines, _ = api.result_lines(inner)
    return [int(x["id"].rsplit("/", 1)[1]) for x in lines if "__parentId" not in x]


def q(search: str, extra: str = "") -> str:
    escaped = search.replace('"', '\\"')
    return f'{{ orders(query: "{escaped}"{extra}) {{ edges {{ node {{ id updatedAt createdAt }} }} }} }}'


def test_project_window_query_selects_exactly_the_half_open_range(api, server):
    start, end = ANCHOR - timedelta(days=20), ANCHOR - timedelta(days=10)
    got = root_ids(api, orders_query("updated_at", start, end))
    orders = server.emulator.orders("DE")
    expected = sorted((o for o in orders if start <= o.updated_at < end), key=lambda o: (o.updated_at, o.id))
    assert got == [o.id for o in expected]
    assert 0 < len(got) < len(orders)


@pytest.mark.parametrize(("op", "check"), [
    (":>=", lambda ts, b: ts >= b), (":>", lambda ts, b: ts > b), (":<", lambda ts, b: ts < b),
    (":<=", lambda ts, b: ts <= b),
])
def test_comparators_on_created_at(api, server, op, check):
    orders = server.emulator.orders("DE")
    bound = sorted(o.created_at for o in orders)[70]  # an exact order timestamp: tests equality edges
    got = set(root_ids(api, q(f"created_at{op}'{bound.strftime('%Y-%m-%dT%H:%M:%SZ')}'")))
    assert got == {o.id for o in orders if check(o.created_at, bound)}


def test_exact_match_and_implicit_and(api, server):
    orders = server.emulator.orders("DE")
    o = orders[40]
    ts = o.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert root_ids(api, q(f"created_at:'{ts}'")) == [o.id]
    start = (ANCHOR - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (ANCHOR - timedelta(days=25)).strftime("%Y-%m-%dT%H:%M:%SZ")
    implicit = set(root_ids(api, q(f"updated_at:>='{start}' updated_at:<'{end}'")))
    explicit = set(root_ids(api, q(f"updated_at:>='{start}' AND updated_at:<'{end}'")))
    assert implicit == explicit == {
        o.id for o in orders if parse_time(start) <= o.updated_at < parse_time(end)}
    assert implicit


def test_unknown_filter_fields_are_ignored(api, server):
    everything = {o.id for o in server.emulator.orders("DE")}
    assert set(root_ids(api, q("no_such_field:42"))) == everything
    start = (ANCHOR - timedelta(days=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert set(root_ids(api, q(f"no_such_field:42 AND created_at:>='{start}'"))) == {
        o.id for o in server.emulator.orders("DE") if o.created_at >= parse_time(start)}


@pytest.mark.parametrize(("sort_key", "attr"), [
    ("UPDATED_AT", "updated_at"), ("CREATED_AT", "created_at"), ("PROCESSED_AT", "processed_at"), ("ID", "id")])
@pytest.mark.parametrize("reverse", [False, True])
def test_sort_key_and_reverse(api, server, sort_key, attr, reverse):
    extra = f", sortKey: {sort_key}" + (", reverse: true" if reverse else "")
    got = root_ids(api, q("", extra))
    expected = sorted(server.emulator.orders("DE"), key=lambda o: (getattr(o, attr), o.id), reverse=reverse)
    assert got == [o.id for o in expected]


def test_default_sort_is_processed_at(api, server):
    got = root_ids(api, "{ orders { edges { node { id } } } }")
    assert got == [o.id for o in sorted(server.emulator.orders("DE"), key=lambda o: (o.processed_at, o.id))]


def test_compile_query_units():
    assert parse_time("2026-01-02") == datetime(2026, 1, 2, tzinfo=UTC)
    assert parse_time("2026-01-02T03:04:05+02:00") == datetime(2026, 1, 2, 1, 4, 5, tzinfo=UTC)
    with pytest.raises(SearchSyntaxError):
        parse_time("yesterday-ish")
    assert compile_query("created_at:>'yesterday-ish'")(object()) is True  # type: ignore[arg-type]
    assert compile_query("")(object()) is True  # type: ignore[arg-type]


def _grouping_case(server):
    orders = server.emulator.orders("DE")
    by_status: dict[str, int] = {}
    for o in orders:
        by_status[o.display_financial_status] = by_status.get(o.display_financial_status, 0) + 1
    x, y = sorted(by_status, key=lambda s: -by_status[s])[:2]
    bound = sorted(o.created_at for o in orders)[len(orders) // 2]
    ts = bound.strftime("%Y-%m-%dT%H:%M:%SZ")
    a = lambda o: o.display_financial_status == x  # noqa: E731
    b = lambda o: o.display_financial_status == y  # noqa: E731
    c = lambda o: o.created_at >= parse_time(ts)  # noqa: E731
    return orders, f"financial_status:{x}", f"financial_status:{y}", f"created_at:>='{ts}'", a, b, c


def test_parentheses_group_and_or_binds_looser_than_and(server):
    orders, qa, qb, qc, a, b, c = _grouping_case(server)

    def ids(query: str) -> set[int]:
        match = compile_query(query)
        return {o.id for o in orders if match(o)}

    grouped = {o.id for o in orders if (a(o) or b(o)) and c(o)}
    ungrouped = {o.id for o in orders if a(o) or (b(o) and c(o))}
    assert grouped != ungrouped  # the dataset tells the two readings apart
    assert ids(f"({qa} OR {qb}) AND {qc}") == ids(f"({qa} OR {qb}) {qc}") == grouped
    assert ids(f"{qa} OR {qb} AND {qc}") == ids(f"{qa} OR ({qb} AND {qc})") == ungrouped
    assert ids(f"(({qa} OR {qb})) AND ({qc})") == grouped
    neither = {o.id for o in orders if not (a(o) or b(o))}
    assert ids(f"-({qa} OR {qb})") == ids(f"NOT ({qa} OR {qb})") == ids(f"NOT({qa} OR {qb})") == neither
    assert ids(f"-{qa} -{qb}") == neither
    # An ignored term drops out of its group instead of widening it to everything.
    assert ids(f"({qa} OR no_such_field:1) AND {qc}") == {o.id for o in orders if a(o) and c(o)}
    # Unbalanced: a missing ")" closes at the end; a stray ")" is skipped.
    assert ids(f"({qa} OR {qb}") == {o.id for o in orders if a(o) or b(o)}
    assert ids(f"{qa} OR {qb}) {qc}") == grouped
    # Operators with nothing to apply to are skipped rather than failing the request.
    assert ids(f"NOT AND {qa}") == ids(f"{qa} NOT") == ids(f"OR {qa} AND") == {o.id for o in orders if a(o)}


def test_grouped_query_over_http(api, server):
    orders, qa, qb, qc, a, b, c = _grouping_case(server)
    got = set(root_ids(api, q(f"({qa} OR {qb}) AND {qc}")))
    assert got == {o.id for o in orders if (a(o) or b(o)) and c(o)}
    assert got
