"""A backfill on the production machinery: queued runs, the daemon, the Celery executor.

Real ``dagster-webserver``, ``dagster-daemon`` and code server with PostgreSQL instance
storage (``deploy/dagster.yaml``), two Celery worker processes on the local Redis, the
Shopify emulator on loopback. A backfill of 3 days x 3 shops, one run per (shop, day),
goes through ``launch.queued`` (what ``--launch`` uses); the run records and event logs
must show shops in parallel, each shop's runs in turn and steps on both workers, and the
warehouse and measurement objects must equal a serial in-process run's. Then a worker is
SIGKILLed while it runs a step: the run fails (run monitoring) or is retried, and the
re-run through ``shopify-sync backfill --launch --wait`` converges to the same warehouse.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from shopify_sync.config import load_settings
from shopify_sync.emulator import EmulatorConfig, EmulatorServer
from shopify_sync.launch.inprocess import run_sync_job
from shopify_sync.launch.plan import Launch, backfill_launch
from shopify_sync.launch.queued import QueuedLauncher
from shopify_sync.sync import TAG_SHOP
from shopify_sync.warehouse import tables
from shopify_sync_tests.conftest import IN_CI
from shopify_sync_tests.deploy.deployment import BIN, REDIS_URL, Deployment, deployment_env
from shopify_sync_tests.storage.s3_server import make_bucket, moto_endpoint  # noqa: F401

# 2:47 on an idle machine; under a second xdist worker and a load of ~15 it passed 600 s.
pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(1200)]

SHOPS = ("DA", "DE", "NL")
# The project's table objects, not reflection: Money and UtcDateTime read back alike on
# SQLite (the serial run) and PostgreSQL (the deployment's warehouse).
TABLES = (tables.order_header, tables.order_line_item, tables.order_refund, tables.product)
VOLATILE = {"synced_at"}


def _days() -> list[date]:
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    return [yesterday - timedelta(days=2), yesterday - timedelta(days=1), yesterday]


def _launches() -> list[Launch]:
    # Fan out per (shop, range): two runs per shop, which the queue must run one at a time.
    days = _days()
    return [backfill_launch(shop, first, last) for (first, last), shop
            in itertools.product([(days[0], days[1]), (days[2], days[2])], SHOPS)]


@pytest.fixture
def redis_up() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        if IN_CI:
            pytest.fail(f"Redis at {REDIS_URL} is not reachable in CI: {exc}")
        pytest.skip(f"Redis not reachable ({exc}); set SHOPIFY_SYNC_TEST_REDIS_URL to run")


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorConfig(seed=15, orders_per_shop=40, days=5, completion_seconds=0.3)) as server:
        yield server


@pytest.fixture
def deployment(redis_up: None, tmp_path: Path, postgres_url: str, emulator: EmulatorServer, moto_endpoint: str,  # noqa: F811
               monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[Deployment]:
    warehouse_url = request.getfixturevalue("postgres_url_2")
    storage_url = sa.make_url(postgres_url).set(drivername="postgresql+psycopg2").render_as_string(False)
    for name, value in {"AWS_ACCESS_KEY_ID": "testing-key-id", "AWS_SECRET_ACCESS_KEY": "testing-secret",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    env = deployment_env(storage_url=storage_url, warehouse_url=warehouse_url, objects=tmp_path / "objects",
                         s3_endpoint=moto_endpoint, bucket=make_bucket(moto_endpoint),
                         shops={code: emulator.shop_base_url(code) for code in SHOPS}, port_home=tmp_path / "home")
    dep = Deployment(tmp_path / "deploy", env)
    env["DAGSTER_HOME"] = str(dep.home)
    env["SHOPIFY_SYNC_DAGSTER_URL"] = dep.url
    for key in [k for k in os.environ if k.startswith(("SHOPIFY_", "DAGSTER_"))]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith(("SHOPIFY_", "DAGSTER_")):
            monkeypatch.setenv(key, value)
    try:
        dep.start_all()
        dep.wait_ready()
        yield dep
    finally:
        dep.stop_all()


@pytest.fixture
def postgres_url_2(postgres_url: str) -> Iterator[str]:
    """A second fresh database on the same server (the warehouse, apart from instance storage)."""
    name = f"ss_{os.urandom(6).hex()}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _intervals(instance: dg.DagsterInstance, run_ids: list[str]) -> list[tuple[str, float, float]]:
    records = instance.get_run_records(filters=dg.RunsFilter(run_ids=run_ids))
    assert all(r.start_time and r.end_time for r in records)
    return [(r.dagster_run.tags[TAG_SHOP], r.start_time, r.end_time) for r in records]  # type: ignore[misc]


def _overlap(a: tuple[str, float, float], b: tuple[str, float, float]) -> bool:
    return a[1] < b[2] and b[1] < a[2]


def _celery_workers(instance: dg.DagsterInstance, run_ids: list[str]) -> set[str]:
    """The worker hostnames the Celery tasks of these runs reported (their engine events)."""
    hosts = set()
    for run_id in run_ids:
        for record in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT,
                                                   limit=10_000).records:
            event = record.event_log_entry.dagster_event
            metadata = event.engine_event_data.metadata if event and event.engine_event_data else {}
            if "Celery worker" in metadata:
                hosts.add(str(metadata["Celery worker"].value).split("@")[0])
    return hosts


def _snapshot(url: str, objects: Path) -> dict[str, object]:
    engine = sa.create_engine(url)
    snapshot: dict[str, object] = {}
    try:
        with engine.connect() as conn:
            for table in TABLES:
                cols = [c for c in table.c if c.name not in VOLATILE]
                rows = conn.execute(sa.select(*cols).order_by(*table.primary_key.columns)).all()
                snapshot[table.name] = [tuple(r) for r in rows]
    finally:
        engine.dispose()
    measurement = objects / "measurement"
    snapshot["objects"] = {str(p.relative_to(objects)): p.read_bytes()
                           for p in sorted(measurement.rglob("*")) if p.is_file()}
    return snapshot


def _serial_reference(env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """The same launches, one after another in this process (the quick start's path)."""
    url = f"sqlite:///{tmp_path}/serial.db"
    serial = {"SHOPIFY_SYNC_DATABASE_URL": url, "SHOPIFY_SYNC_STORAGE_URL": f"file://{tmp_path}/serial_objects"}
    with monkeypatch.context() as patch, dg.instance_for_test() as instance:
        # The resources read the environment at run time, as in every deployment.
        for name, value in serial.items():
            patch.setenv(name, value)
        settings = load_settings({**env, **serial})
        for launch in _launches():
            outcome = run_sync_job(settings, instance, tags=launch.tags, partition_key=launch.partition_key)
            assert outcome.success, outcome.error
    return _snapshot(url, tmp_path / "serial_objects")


def _kill_worker_running(dep: Deployment, instance: dg.DagsterInstance, run_id: str) -> str:
    """SIGKILL the worker process (its own pid) that took a step of ``run_id``; its name."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        hosts = _celery_workers(instance, [run_id])
        if hosts:
            name = "worker" + sorted(hosts)[0].removeprefix("w")
            os.kill(dep.procs[name].pid, signal.SIGKILL)
            dep.procs[name].wait(timeout=10)
            return name
        time.sleep(0.2)
    raise AssertionError(f"no step of run {run_id} reached a worker")


def test_backfill_on_celery_workers_matches_serial_run(deployment: Deployment, emulator: EmulatorServer,
                                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = deployment.env
    launcher = QueuedLauncher(load_settings(env), poll_seconds=0.5)
    began = time.monotonic()
    run_ids = [launcher.submit(launch) for launch in _launches()]
    outcomes = [launcher.wait(run_id, timeout=240) for run_id in run_ids]
    distributed_s = time.monotonic() - began
    assert all(o.success for o in outcomes), [o.error for o in outcomes] + [deployment.log("daemon")]

    instance = launcher.instance
    spans = _intervals(instance, run_ids)
    pairs = list(itertools.combinations(spans, 2))
    assert any(a[0] != b[0] and _overlap(a, b) for a, b in pairs), f"no two shops ran in parallel: {spans}"
    assert not [(a, b) for a, b in pairs if a[0] == b[0] and _overlap(a, b)], "two runs of one shop overlapped"
    assert _celery_workers(instance, run_ids) == {"w1", "w2"}

    began = time.monotonic()
    reference = _serial_reference(env, tmp_path, monkeypatch)
    # Figures for docs/benchmarks.md (the machine's load decides them), never asserted.
    print(f"backfill of {len(run_ids)} runs: 2 Celery workers {distributed_s:.1f} s, "
          f"serial in-process {time.monotonic() - began:.1f} s, load average {os.getloadavg()}")
    distributed = _snapshot(env["SHOPIFY_SYNC_DATABASE_URL"], tmp_path / "objects")
    assert distributed["objects"], "no measurement objects written"
    assert distributed == reference

    # A worker dies mid-step: its task is lost with it, so the run is failed by the run
    # monitoring's max runtime (a per-run tag here) and the instance's run retries re-run it.
    emulator.emulator.faults.add("slow_completion", shop="DA", seconds=20)
    killed = Launch("kill", {**backfill_launch("DA", _days()[0], _days()[-1]).tags, "dagster/max_runtime": "20"},
                    None)
    run_id = launcher.submit(killed)
    _kill_worker_running(deployment, instance, run_id)
    first = launcher.finished_run(run_id, time.monotonic() + 120)
    assert first.status in {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}, first.status

    # The operator's re-run converges to the same warehouse and measurements.
    cli = subprocess.run([str(BIN / "shopify-sync"), "backfill", "--launch", "--wait", "--shop", "DA",
                          "--start", str(_days()[0]), "--end", str(_days()[-1])],
                         env={**env}, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr + deployment.log("daemon")
    assert cli.stdout.splitlines()[-1].startswith("ok      backfill DA"), cli.stdout
    assert _snapshot(env["SHOPIFY_SYNC_DATABASE_URL"], tmp_path / "objects") == reference
