"""What every fault scenario is judged against: the outcome of clean runs on the same dataset.

A scenario's warehouse (the three order tables, ``product``), its commerce events, its
watermark and the measurement objects of its last day must equal those of clean runs of the
same days on the same emulator dataset (same seed, same anchor). The clean outcome of a
sequence of days is computed once per test session (SQLite) and shared by every scenario
file; the server backends compare equal to it (``snapshot`` reads values, not types).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shopify_sync_tests.defs.conftest import TOKEN, Harness, make_harness
from shopify_sync_tests.faults.secrets_scan import scan_for_secrets
from shopify_sync_tests.warehouse.jsonl_builder import snapshot

D1 = datetime.now(UTC).date() - timedelta(days=1)
D = D1 - timedelta(days=1)
# One dataset for every clean and faulted run (the default anchor is the next hour), and one
# stock: the emulator moves hot variants' stock every 10 minutes of wall clock unless pinned.
ANCHOR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
API_TOKEN = "api-fault8-token-0ddba11"


@dataclass
class Outcome:
    tables: dict[str, list[tuple[Any, ...]]]
    products: list[tuple[Any, ...]]
    watermark: datetime | None
    events: list[str]
    measurements: dict[str, bytes]


def outcome(h: Harness, last_day: date = D1) -> Outcome:
    """The warehouse, events, watermark and ``last_day``'s measurement objects of ``h``."""
    from shopify_sync.storage.keys import performance_key, sales_key
    from shopify_sync.warehouse.tables import product

    engine = h.engine()
    try:
        tables = snapshot(engine)
        with engine.connect() as conn:
            products = [tuple(r) for r in conn.execute(sa.select(product).order_by(product.c.product_id))]
    finally:
        engine.dispose()
    store = h.store()
    lines = [ln for key in store.list_keys("telemetry/commerce/")
             for ln in store.get_bytes(key).decode().splitlines() if ln.strip()]
    events = sorted(json.dumps(json.loads(ln), sort_keys=True) for ln in lines)
    keys = [sales_key("DEMO", last_day), performance_key("DEMO", last_day)]
    measurements = {k: store.get_bytes(k) for k in keys if store.exists(k)}
    return Outcome(tables, products, h.watermark("DEMO"), events, measurements)


_clean: dict[tuple[date, ...], Outcome] = {}


def clean_outcome(tmp_path_factory: pytest.TempPathFactory, days: tuple[date, ...] = (D, D1)) -> Outcome:
    """Clean daily runs of ``days`` in order on a fresh SQLite warehouse (computed once per session)."""
    if days not in _clean:
        mp = pytest.MonkeyPatch()
        tmp = tmp_path_factory.mktemp("clean")
        try:
            for h in make_harness(tmp, mp, f"sqlite:///{tmp}/warehouse.db", anchor=ANCHOR, stock_clock=ANCHOR):
                for day in days:
                    assert h.daily("DEMO", day).success
                _clean[days] = outcome(h, days[-1])
        finally:
            mp.undo()
    return _clean[days]


def order_jobs(h: Harness) -> list[Any]:
    """The orders' ``sync_job`` rows, oldest first (the catalog's are settled by its own step)."""
    from shopify_sync.warehouse.tables import sync_job

    engine = h.engine()
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.select(sync_job).where(sync_job.c.job_type != "CATALOG")
                                     .order_by(sync_job.c.created_at)).all())
    finally:
        engine.dispose()


def assert_like_clean(h: Harness, clean: Outcome, last_day: date = D1) -> None:
    """Tables, products, events (each once), watermark and measurement objects equal the clean run's."""
    got = outcome(h, last_day)
    assert got.events == clean.events  # every event once: none dropped, none twice
    assert len(got.events) == len(set(got.events))
    assert got.tables == clean.tables
    assert got.products == clean.products, _first_difference(got.products, clean.products)
    assert got.watermark == clean.watermark
    assert got.measurements == clean.measurements and len(got.measurements) == 2


def _first_difference(got: list[tuple[Any, ...]], want: list[tuple[Any, ...]]) -> str:
    pairs = [(g, w) for g, w in zip(got, want, strict=False) if g != w]
    return f"{len(got)} rows vs {len(want)} clean; first difference: {pairs[0] if pairs else 'in length'}"


def assert_no_secrets(h: Harness, extra: dict[str, str] | None = None, roots: tuple[Path, ...] = ()) -> None:
    """The token scan: nothing under the scenario's directories, ``sync_job`` rows or event logs."""
    secrets = {"Shopify token": TOKEN, "API token": API_TOKEN, **(extra or {})}
    assert scan_for_secrets(secrets, roots=[h.tmp_path, *roots], database_url=h.db_url, instance=h.instance) == []
