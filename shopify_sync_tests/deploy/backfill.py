"""The backfill every deployment test runs, and how its outcome is judged.

3 days x 3 shops, fanned out per (shop, range): two runs per shop, which the queue must
run one at a time while shops run in parallel. The result (warehouse tables and
measurement objects) is compared with the same launches run one after another in process,
the quick start's path. The Celery and the Docker deployment tests share it.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from shopify_sync.config import load_settings
from shopify_sync.launch.inprocess import run_sync_job
from shopify_sync.launch.plan import Launch, backfill_launch
from shopify_sync.sync import TAG_SHOP
from shopify_sync.warehouse import tables

SHOPS = ("DA", "DE", "NL")
# The project's table objects, not reflection: Money and UtcDateTime read back alike on
# SQLite (the serial run) and PostgreSQL (the deployment's warehouse).
TABLES = (tables.order_header, tables.order_line_item, tables.order_refund, tables.product)
VOLATILE = {"synced_at"}

Span = tuple[str, float, float]


def days() -> list[date]:
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    return [yesterday - timedelta(days=2), yesterday - timedelta(days=1), yesterday]


def launches() -> list[Launch]:
    first, second, third = days()
    return [backfill_launch(shop, start, end) for (start, end), shop
            in itertools.product([(first, second), (third, third)], SHOPS)]


def spans(instance: dg.DagsterInstance, run_ids: list[str]) -> list[Span]:
    """Each run's shop and its start and end time, from the run records."""
    records = instance.get_run_records(filters=dg.RunsFilter(run_ids=run_ids))
    assert all(r.start_time and r.end_time for r in records)
    return [(r.dagster_run.tags[TAG_SHOP], r.start_time, r.end_time) for r in records]  # type: ignore[misc]


def overlap(a: Span, b: Span) -> bool:
    return a[1] < b[2] and b[1] < a[2]


def assert_shops_in_parallel_each_shop_in_turn(runs: list[Span]) -> None:
    pairs = list(itertools.combinations(runs, 2))
    assert any(a[0] != b[0] and overlap(a, b) for a, b in pairs), f"no two shops ran in parallel: {runs}"
    assert not [(a, b) for a, b in pairs if a[0] == b[0] and overlap(a, b)], "two runs of one shop overlapped"


def snapshot(url: str, objects: Path) -> dict[str, object]:
    """The warehouse's synced tables and the measurement objects under ``objects``."""
    engine = sa.create_engine(url)
    result: dict[str, object] = {}
    try:
        with engine.connect() as conn:
            for table in TABLES:
                cols = [c for c in table.c if c.name not in VOLATILE]
                rows = conn.execute(sa.select(*cols).order_by(*table.primary_key.columns)).all()
                result[table.name] = [tuple(r) for r in rows]
    finally:
        engine.dispose()
    measurement = objects / "measurement"
    result["objects"] = {str(p.relative_to(objects)): p.read_bytes()
                         for p in sorted(measurement.rglob("*")) if p.is_file()}
    return result


def serial_reference(env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """The same launches, one after another in this process (the quick start's path)."""
    url = f"sqlite:///{tmp_path}/serial.db"
    serial = {"SHOPIFY_SYNC_DATABASE_URL": url, "SHOPIFY_SYNC_STORAGE_URL": f"file://{tmp_path}/serial_objects"}
    with monkeypatch.context() as patch, dg.instance_for_test() as instance:
        # The resources read the environment at run time, as in every deployment.
        for name, value in serial.items():
            patch.setenv(name, value)
        settings = load_settings({**env, **serial})
        for launch in launches():
            outcome = run_sync_job(settings, instance, tags=launch.tags, partition_key=launch.partition_key)
            assert outcome.success, outcome.error
    return snapshot(url, tmp_path / "serial_objects")
