"""Fixtures the deployment tests share: the emulator, the warehouse database and the
environment every process of a deployment gets (docs/deploy.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from shopify_sync.emulator import EmulatorConfig, EmulatorServer
from shopify_sync_tests.conftest import fresh_postgres_database
from shopify_sync_tests.deploy.backfill import SHOPS
from shopify_sync_tests.deploy.deployment import deployment_env
from shopify_sync_tests.storage.s3_server import make_bucket, moto_endpoint  # noqa: F401


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorConfig(seed=15, orders_per_shop=40, days=5, completion_seconds=0.3)) as server:
        yield server


@pytest.fixture
def postgres_url_2(postgres_url: str) -> Iterator[str]:
    """A second fresh database on the same server (the warehouse, apart from instance storage)."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def deploy_env(tmp_path: Path, postgres_url: str, postgres_url_2: str, emulator: EmulatorServer,
               moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:  # noqa: F811
    """Instance storage and warehouse in two PostgreSQL databases, compute logs on moto S3,
    objects under ``tmp_path/objects``, the emulator's shops."""
    storage_url = sa.make_url(postgres_url).set(drivername="postgresql+psycopg2").render_as_string(False)
    for name, value in {"AWS_ACCESS_KEY_ID": "testing-key-id", "AWS_SECRET_ACCESS_KEY": "testing-secret",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    return deployment_env(storage_url=storage_url, warehouse_url=postgres_url_2, objects=tmp_path / "objects",
                          s3_endpoint=moto_endpoint, bucket=make_bucket(moto_endpoint),
                          shops={code: emulator.shop_base_url(code) for code in SHOPS}, port_home=tmp_path / "home")
