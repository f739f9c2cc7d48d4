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

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from shopify_sync.config import load_settings
from shopify_sync.emulator import EmulatorServer
from shopify_sync.launch.plan import Launch, backfill_launch
from shopify_sync.launch.queued import QueuedLauncher
from shopify_sync_tests.conftest import IN_CI
from shopify_sync_tests.deploy.backfill import (
    assert_shops_in_parallel_each_shop_in_turn,
    days,
    launches,
    serial_reference,
    snapshot,
    spans,
)
from shopify_sync_tests.deploy.deployment import BIN, REDIS_URL, Deployment

# 2:47 on an idle machine; under a second xdist worker and a load of ~15 it passed 600 s.
pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(1200)]


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
def deployment(redis_up: None, tmp_path: Path, deploy_env: dict[str, str],
               monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    dep = Deployment(tmp_path / "deploy", deploy_env)
    with dep.running(monkeypatch):
        yield dep


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
    run_ids = [launcher.submit(launch) for launch in launches()]
    outcomes = [launcher.wait(run_id, timeout=240) for run_id in run_ids]
    distributed_s = time.monotonic() - began
    assert all(o.success for o in outcomes), [o.error for o in outcomes] + [deployment.log("daemon")]

    instance = launcher.instance
    assert_shops_in_parallel_each_shop_in_turn(spans(instance, run_ids))
    assert _celery_workers(instance, run_ids) == {"w1", "w2"}

    began = time.monotonic()
    reference = serial_reference(env, tmp_path, monkeypatch)
    # Figures for docs/benchmarks.md (the machine's load decides them), never asserted.
    print(f"backfill of {len(run_ids)} runs: 2 Celery workers {distributed_s:.1f} s, "
          f"serial in-process {time.monotonic() - began:.1f} s, load average {os.getloadavg()}")
    distributed = snapshot(env["SHOPIFY_SYNC_DATABASE_URL"], tmp_path / "objects")
    assert distributed["objects"], "no measurement objects written"
    assert distributed == reference

    # A worker dies mid-step: its task is lost with it, so the run is failed by the run
    # monitoring's max runtime (a per-run tag here) and the instance's run retries re-run it.
    emulator.emulator.faults.add("slow_completion", shop="DA", seconds=20)
    killed = Launch("kill", {**backfill_launch("DA", days()[0], days()[-1]).tags, "dagster/max_runtime": "20"},
                    None)
    run_id = launcher.submit(killed)
    _kill_worker_running(deployment, instance, run_id)
    first = launcher.finished_run(run_id, time.monotonic() + 120)
    assert first.status in {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}, first.status

    # The operator's re-run converges to the same warehouse and measurements.
    cli = subprocess.run([str(BIN / "shopify-sync"), "backfill", "--launch", "--wait", "--shop", "DA",
                          "--start", str(days()[0]), "--end", str(days()[-1])],
                         env={**env}, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr + deployment.log("daemon")
    assert cli.stdout.splitlines()[-1].startswith("ok      backfill DA"), cli.stdout
    assert snapshot(env["SHOPIFY_SYNC_DATABASE_URL"], tmp_path / "objects") == reference
