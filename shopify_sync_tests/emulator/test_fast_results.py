"""The fast render of the sync's orders query equals the generic render, byte for byte."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shopify_sync.emulator import EmulatorConfig, bulk, results
from shopify_sync.emulator.bulk import BulkMachine
from shopify_sync.emulator.fast_results import render_orders
from shopify_sync.emulator.results import render_result
from shopify_sync.emulator.state import EmulatorState
from shopify_sync.shopify.queries import orders_query

ANCHOR = datetime(2026, 3, 1, tzinfo=UTC)


def _state(orders: int = 120) -> EmulatorState:
    state = EmulatorState(EmulatorConfig(seed=3, orders_per_shop=orders, days=10, anchor=ANCHOR, ungrouped_page=7))
    # Changed orders take the generic projector inside the fast path: a refund, a
    # cancellation and a status change, all after the anchor.
    orders_now = state.orders("FR")
    first = orders_now[5]
    state.update_order("FR", first.id, refund={first.line_items[0].id: 1}, at=ANCHOR + timedelta(hours=2))
    state.update_order("FR", orders_now[len(orders_now) // 3].id, cancel=True, at=ANCHOR + timedelta(hours=1))
    state.update_order("FR", orders_now[-3].id, financial_status="PARTIALLY_REFUNDED", at=ANCHOR + timedelta(hours=3))
    return state


@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize(("field", "start", "end"), [
    ("updated_at", ANCHOR - timedelta(days=4), None),
    ("created_at", ANCHOR - timedelta(days=6), ANCHOR - timedelta(days=2)),
    ("updated_at", ANCHOR - timedelta(days=30), ANCHOR + timedelta(days=30)),
])
def test_sync_query_renders_the_same_bytes(tmp_path: Path, grouped: bool, field: str, start: datetime,
                                           end: datetime | None) -> None:
    state = _state()
    query = orders_query(field, start, end)  # type: ignore[arg-type]
    generic = render_result(state, "FR", query, grouped, tmp_path / "generic.jsonl")
    counts = render_orders(state, "FR", query, grouped, tmp_path / "fast.jsonl")
    assert counts == (generic.object_count, generic.root_count) and generic.root_count > 10
    assert (tmp_path / "fast.jsonl").read_bytes() == (tmp_path / "generic.jsonl").read_bytes()


def test_other_queries_are_left_to_the_generic_renderer(tmp_path: Path) -> None:
    state = _state(20)
    narrowed = orders_query("updated_at", ANCHOR).replace("displayFinancialStatus\n", "")
    searched = orders_query("updated_at", ANCHOR).replace("updated_at:>=", "financial_status:paid updated_at:>=")
    for query in (narrowed, searched, "{ products { edges { node { id } } } }"):
        assert render_orders(state, "FR", query, False, tmp_path / "x.jsonl") is None


def test_big_datasets_take_the_fast_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    query = orders_query("created_at", ANCHOR - timedelta(days=5))
    generic = render_result(_state(60), "FR", query, False, tmp_path / "generic.jsonl")
    calls: list[str] = []

    def spy(*args: object) -> tuple[int, int] | None:
        calls.append("fast")
        return render_orders(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(EmulatorState, "MATERIALISE_UP_TO", 10)
    monkeypatch.setattr(results, "render_orders", spy)
    served = render_result(_state(60), "FR", query, False, tmp_path / "served.jsonl")
    assert calls == ["fast"]
    assert (served.object_count, served.root_count) == (generic.object_count, generic.root_count)
    assert (tmp_path / "served.jsonl").read_bytes() == (tmp_path / "generic.jsonl").read_bytes()


def test_a_repeated_query_is_rendered_once_until_an_order_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    state = _state(30)
    state.reset_orders("FR")
    machine = BulkMachine(state)
    rendered: list[str] = []

    def counting(*args: object) -> results.ResultFile:
        rendered.append("render")
        return render_result(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(bulk, "render_result", counting)
    query = orders_query("updated_at", ANCHOR - timedelta(days=20))
    try:
        files = []
        for step in ("first", "same", "changed", "reset"):
            if step == "changed":
                state.update_order("FR", state.orders("FR")[0].id, test=True)
            if step == "reset":
                state.reset_orders("FR")
            op, errors = machine.run_query("FR", "2026-01", query, False)
            assert op is not None and not errors
            done = machine.get_op("FR", op.num)
            assert done is not None and done.status == "COMPLETED" and done.result is not None
            assert done.result.path is not None
            files.append(done.result.path.read_bytes())
        # The second run reused the first's bytes, and so did the one after the reset.
        assert rendered == ["render", "render"]
        assert files[0] == files[1] == files[3] != files[2]
    finally:
        machine.close()
