"""Warehouses filled by a real sync, for the API tests.

Each backend (SQLite, MariaDB, PostgreSQL) gets one fresh database, filled once per
session by the real Dagster sync job run in-process against the bundled emulator over
loopback HTTP (two shops, two currencies). The API is then built on explicit settings,
so nothing of the sync's environment leaks into other tests.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from shopify_sync.config import Settings, load_settings
from shopify_sync_tests.conftest import MYSQL_URL, POSTGRES_URL, _require

API_TOKEN = "api-test-token-5f3a9c"
SHOP_TOKEN = "shpat_emulator"
SHOPS = ("DEMO", "DA")  # EUR and DKK


_JOB: dict[str, Any] = {}


@dataclass
class Synced:
    settings: Settings
    orders: dict[str, list[Any]]  # the emulator's dataset per shop, as synced
    run_ids: dict[str, str]
    day: Any

    def client(self) -> TestClient:
        from shopify_sync.api.app import create_app

        client = TestClient(create_app(self.settings), raise_server_exceptions=False)
        client.headers["Authorization"] = f"Bearer {API_TOKEN}"
        return client


def _sync(tmp: Path, db_url: str) -> Synced:
    from shopify_sync.defs import build_definitions
    from shopify_sync.emulator import EmulatorConfig, EmulatorServer
    from shopify_sync.launch.inprocess import first_failure
    from shopify_sync.launch.plan import SYNC_JOB_NAME, daily_launch

    base_env = {
        "SHOPIFY_SHOPS": ",".join(SHOPS),
        "SHOPIFY_SYNC_HOME": str(tmp / "home"),
        "SHOPIFY_SYNC_DATABASE_URL": db_url,
        "SHOPIFY_SYNC_STORAGE_URL": f"file://{tmp}/objects",
        "SHOPIFY_SYNC_START_DATE": (datetime.now(UTC).date() - timedelta(days=60)).isoformat(),
        "SHOPIFY_SYNC_API_TOKEN": API_TOKEN,
    }
    day = datetime.now(UTC).date() - timedelta(days=1)
    run_ids: dict[str, str] = {}
    with EmulatorServer(EmulatorConfig(seed=23, orders_per_shop=30, days=20)) as server, \
            dg.instance_for_test() as instance, pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith(("SHOPIFY_", "DAGSTER_")):
                mp.delenv(name)
        env = {**base_env, "SHOPIFY_POLL_INTERVAL_SECONDS": "0.05"}
        for code in SHOPS:
            env[f"SHOPIFY_{code}_STORE"] = server.emulator.shop_base_url(code)
            env[f"SHOPIFY_{code}_TOKEN"] = SHOP_TOKEN
        for k, v in env.items():
            mp.setenv(k, v)
        if "job" not in _JOB:
            # Built once: resources resolve their env vars at launch, so the same job
            # serves every backend (loading the definitions is seconds on a busy box).
            _JOB["job"] = build_definitions(load_settings()).resolve_job_def(SYNC_JOB_NAME)
        job = _JOB["job"]
        for shop in SHOPS:
            _, tags, pkey = daily_launch(shop, day)
            result = job.execute_in_process(instance=instance, partition_key=pkey, tags=tags, raise_on_error=False)
            assert result.success, first_failure(result)
            run_ids[shop] = result.run_id
        orders = {shop: server.emulator.orders(shop) for shop in SHOPS}
    # The API only sees explicit settings: the sync's environment is gone by now.
    settings = load_settings({**base_env, "SHOPIFY_DA_STORE": "emulator"})
    return Synced(settings=settings, orders=orders, run_ids=run_ids, day=day)


def _server_db(admin_url: str, kind: str) -> Iterator[str]:
    _require(admin_url, kind)
    name = f"ss_api_{uuid.uuid4().hex[:10]}"
    if kind == "MariaDB":
        admin = sa.create_engine(admin_url)
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        drop = f"DROP DATABASE IF EXISTS `{name}`"
    else:
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    try:
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with (admin.begin() if kind == "MariaDB" else admin.connect()) as conn:
            conn.execute(sa.text(drop))
        admin.dispose()


@pytest.fixture(scope="session")
def synced_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Synced:
    tmp = tmp_path_factory.mktemp("api_sqlite")
    return _sync(tmp, f"sqlite:///{tmp}/warehouse.db")


@pytest.fixture(scope="session")
def synced_mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synced]:
    for url in _server_db(MYSQL_URL, "MariaDB"):
        yield _sync(tmp_path_factory.mktemp("api_mariadb"), url)


@pytest.fixture(scope="session")
def synced_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synced]:
    for url in _server_db(POSTGRES_URL, "PostgreSQL"):
        yield _sync(tmp_path_factory.mktemp("api_postgres"), url)


@pytest.fixture(params=["sqlite", "mariadb", "postgres"])
def synced(request: pytest.FixtureRequest) -> Synced:
    return request.getfixturevalue(f"synced_{request.param}")
