"""A real pipeline harness: the emulator over loopback HTTP, a real database, a local
object store and an isolated Dagster instance; runs go through the real sync job."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest
import sqlalchemy as sa

from shopify_sync.config import Settings, load_settings
from shopify_sync.defs import build_definitions
from shopify_sync.launch.plan import SYNC_JOB_NAME, backfill_launch, daily_launch

TOKEN = "shpat_emulator"


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("SHOPIFY_", "DAGSTER_")):
            monkeypatch.delenv(name, raising=False)


@dataclass
class Harness:
    server: Any
    instance: dg.DagsterInstance
    tmp_path: Path
    db_url: str
    shops: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def emulator(self) -> Any:
        return self.server.emulator

    def settings(self) -> Settings:
        return load_settings()

    def job(self) -> dg.JobDefinition:
        return build_definitions(self.settings()).resolve_job_def(SYNC_JOB_NAME)

    def daily(self, shop: str, day: date, **tags: str) -> dg.ExecuteInProcessResult:
        _, t, pkey = daily_launch(shop, day)
        return self.job().execute_in_process(instance=self.instance, partition_key=pkey, tags={**t, **tags},
                                             raise_on_error=False)

    def backfill(self, shop: str, start: date, end: date) -> dg.ExecuteInProcessResult:
        _, t, _ = backfill_launch(shop, start, end)
        return self.job().execute_in_process(instance=self.instance, tags=t, raise_on_error=False)

    def engine(self) -> sa.Engine:
        from shopify_sync.warehouse import make_engine

        return make_engine(self.db_url)

    def store(self) -> Any:
        from shopify_sync.storage import open_store

        return open_store(self.env["SHOPIFY_SYNC_STORAGE_URL"],
                          endpoint_url=self.env.get("SHOPIFY_SYNC_S3_ENDPOINT_URL") or None)

    def parquet(self, key: str) -> pl.DataFrame:
        return pl.read_parquet(io.BytesIO(self.store().get_bytes(key)))

    def watermark(self, shop: str) -> datetime | None:
        from shopify_sync.warehouse.tables import sync_watermark as w

        eng = self.engine()
        try:
            with eng.connect() as conn:
                value = conn.execute(sa.select(w.c.watermark_at).where(w.c.shop == shop)).scalar()
        finally:
            eng.dispose()
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value

    def run_queries(self, shop: str | None = None, root: str = "orders") -> list[Any]:
        """The bulk query submissions of ``shop`` (the orders' by default; the catalog's: ``productVariants``)."""
        return [e for e in self.emulator.request_log if e.kind == "run_query" and (shop is None or e.shop == shop)
                and e.root == root]


def make_harness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str, shops: tuple[str, ...] = ("DEMO",),
    extra_env: dict[str, str] | None = None, **emulator_kwargs: Any,
) -> Iterator[Harness]:
    from shopify_sync.emulator import EmulatorConfig, EmulatorServer

    _clean_env(monkeypatch)
    config = EmulatorConfig(**{"seed": 11, "orders_per_shop": 90, "days": 30, **emulator_kwargs})
    with EmulatorServer(config) as server, dg.instance_for_test() as instance:
        env = {
            "SHOPIFY_SHOPS": ",".join(shops),
            "SHOPIFY_SYNC_HOME": str(tmp_path / "home"),
            "SHOPIFY_SYNC_DATABASE_URL": db_url,
            "SHOPIFY_SYNC_STORAGE_URL": f"file://{tmp_path}/objects",
            "SHOPIFY_SYNC_START_DATE": (datetime.now(UTC).date() - timedelta(days=90)).isoformat(),
            "SHOPIFY_POLL_INTERVAL_SECONDS": "0.05",
            "SHOPIFY_POLL_MAX_ATTEMPTS": "400",
            "SHOPIFY_SYNC_CHUNK_ROWS": "37",  # small chunks: many commits even on a small dataset
            **(extra_env or {}),
        }
        for code in shops:
            env[f"SHOPIFY_{code}_STORE"] = server.emulator.shop_base_url(code)
            env[f"SHOPIFY_{code}_TOKEN"] = TOKEN
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        yield Harness(server, instance, tmp_path, db_url, shops, env)


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> Iterator[Harness]:
    yield from make_harness(tmp_path, monkeypatch, sqlite_url)


@pytest.fixture
def two_shop_harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> Iterator[Harness]:
    yield from make_harness(tmp_path, monkeypatch, sqlite_url, shops=("DA", "DE"), orders_per_shop=40)


def yesterday() -> date:
    return datetime.now(UTC).date() - timedelta(days=1)
