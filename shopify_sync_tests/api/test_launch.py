"""``POST /api/performance-metrics/sync`` against a real ``dagster-webserver``.

The webserver runs as a subprocess on a free loopback port with its own temporary
``DAGSTER_HOME`` (``DefaultRunCoordinator``, so runs start without a daemon) and the
project's definitions under the project's location name (in-process executor, see
``inprocess_definitions.py``); the DEMO shop is an ``EmulatorServer`` in this process.
The API launches the run through the webserver's GraphQL API and the test polls it to
completion, then reads the result back through the API.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from shopify_sync.api.app import create_app
from shopify_sync.config import load_settings
from shopify_sync.defs import build_definitions
from shopify_sync.emulator import EmulatorConfig, EmulatorServer
from shopify_sync.launch.plan import SYNC_JOB_NAME

REPO = Path(__file__).resolve().parents[2]
API_TOKEN = "launch-test-token-77"
STARTUP_TIMEOUT = 150
RUN_TIMEOUT = 180

# Same location name as the project's workspace.yaml (the launcher targets it), but the
# in-process executor: see inprocess_definitions.py.
WORKSPACE_YAML = """\
load_from:
  - python_module:
      module_name: shopify_sync_tests.api.inprocess_definitions
      location_name: shopify_sync
"""

DAGSTER_YAML = """\
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
telemetry:
  enabled: false
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    # The webserver starts a code-server child; both live in the session we created.
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)


@pytest.fixture
def webserver(tmp_path: Path) -> Iterator[dict[str, object]]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    (tmp_path / "workspace.yaml").write_text(WORKSPACE_YAML)
    port = _free_port()
    with EmulatorServer(EmulatorConfig(seed=31, orders_per_shop=30, days=10,
                                                completion_seconds=4.0)) as emulator:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOPIFY_", "DAGSTER_"))}
        app_env = {
            "SHOPIFY_SHOPS": "DEMO",
            "SHOPIFY_SYNC_HOME": str(tmp_path / "home"),
            "SHOPIFY_SYNC_DATABASE_URL": f"sqlite:///{tmp_path}/warehouse.db",
            "SHOPIFY_SYNC_STORAGE_URL": f"file://{tmp_path}/objects",
            "SHOPIFY_SYNC_START_DATE": (datetime.now(UTC).date() - timedelta(days=30)).isoformat(),
            "SHOPIFY_SYNC_DAGSTER_URL": f"http://127.0.0.1:{port}",
            "SHOPIFY_SYNC_API_TOKEN": API_TOKEN,
        }
        env.update(app_env)
        env.update({
            "DAGSTER_HOME": str(home),
            "SHOPIFY_DEMO_STORE": emulator.emulator.shop_base_url("DEMO"),
            "SHOPIFY_DEMO_TOKEN": "shpat_emulator",
            "SHOPIFY_POLL_INTERVAL_SECONDS": "0.05",
        })
        log = (tmp_path / "webserver.log").open("wb")
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster-webserver")), "-h", "127.0.0.1", "-p", str(port),
             "-w", str(tmp_path / "workspace.yaml")],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while True:
                assert proc.poll() is None, (tmp_path / "webserver.log").read_text()[-3000:]
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "dagster-webserver did not start in time"
                time.sleep(0.5)
            yield {"port": port, "emulator": emulator.emulator, "settings": load_settings(app_env),
                   "log": tmp_path / "webserver.log"}
        finally:
            _stop(proc)
            log.close()


def test_post_sync_launches_runs_that_complete(webserver: dict[str, object]) -> None:
    from dagster_graphql import DagsterGraphQLClient

    with TestClient(create_app(webserver["settings"]), raise_server_exceptions=False) as api:  # type: ignore[arg-type]
        api.headers["Authorization"] = f"Bearer {API_TOKEN}"
        # The code location loads in the background after the webserver answers.
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            resp = api.post("/api/performance-metrics/sync", params={"full_catalog": "true"})
            if resp.status_code == 202 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert resp.status_code == 202, resp.text
        body = resp.json()
        yesterday = datetime.now(UTC).date() - timedelta(days=1)
        assert body["date"] == yesterday.isoformat()
        assert [(r["shop"], r["partition"]) for r in body["runs"]] == [("DEMO", f"{yesterday}|DEMO")]
        run_id = body["runs"][0]["run_id"]
        assert body["runs"][0]["already_running"] is False
        assert body["full_catalog"] is True and body["runs"][0]["full_catalog"] is True

        # A second click while the run is in flight (the bulk operation takes 4 s) gets
        # the same run back instead of a duplicate.
        again = api.post("/api/performance-metrics/sync")
        assert again.status_code == 202, again.text
        # The run it gets back says, from its own tags, that it refreshes the whole catalog.
        assert [(r["run_id"], r["already_running"], r["full_catalog"]) for r in again.json()["runs"]] == [
            (run_id, True, True)]

        client = DagsterGraphQLClient("127.0.0.1", port_number=webserver["port"])  # type: ignore[arg-type]
        deadline = time.monotonic() + RUN_TIMEOUT
        status = None
        while time.monotonic() < deadline:
            status = client.get_run_status(run_id).value
            if status in {"SUCCESS", "FAILURE", "CANCELED"}:
                break
            time.sleep(1)
        assert status == "SUCCESS", f"run {run_id} ended {status}; " + webserver["log"].read_text()[-2000:]  # type: ignore[union-attr]

        # The run went through the sync job with the user's tags, and its data is served.
        runs = api.get("/api/ingest/runs").json()["runs"]
        mine = [r for r in runs if r["run_id"] == run_id]
        assert mine and mine[0]["status"] == "completed"
        assert (mine[0]["initiator"], mine[0]["job_type"], mine[0]["shop"]) == ("user", "DAILY_INCREMENTAL", "DEMO")
        orders = api.get("/orders", params={"limit": 500}).json()["orders"]
        assert {o["order_id"] for o in orders} == {o.id for o in webserver["emulator"].orders("DEMO")}  # type: ignore[attr-defined]
        health = {s["shop"]: s for s in api.get("/analytics/pipelines").json()["shops"]}
        assert health["DEMO"]["last_success_run_id"] == run_id
        # The run fetched the whole catalog (no window) as the request asked.
        from shopify_sync.vocab import Mode
        from shopify_sync.warehouse import jobs, make_engine

        engine = make_engine(webserver["settings"].database_url)  # type: ignore[attr-defined]
        try:
            cat = jobs.latest_job(engine, shop="DEMO", job_type=Mode.CATALOG, partition_key=str(yesterday))
        finally:
            engine.dispose()
        assert cat is not None and cat.run_id == run_id and cat.status.value == "completed"
        assert cat.window_start is None
        assert health["DEMO"]["catalog"]["last_job"]["run_id"] == run_id


def test_launcher_job_name_is_the_dagster_job() -> None:
    from shopify_sync.api.launcher import DagsterLauncher

    launcher = DagsterLauncher("http://127.0.0.1:3000")
    assert launcher.job_name == SYNC_JOB_NAME
    assert build_definitions(load_settings({})).resolve_job_def(launcher.job_name).name == SYNC_JOB_NAME


def test_launcher_tags_are_the_clis_plus_the_partitions() -> None:
    from shopify_sync.api.launcher import run_tags
    from shopify_sync.launch.plan import daily_launch

    day = datetime(2026, 3, 9, tzinfo=UTC).date()
    tags = run_tags(day, "DEMO")
    assert tags == {**daily_launch("DEMO", day).tags, "dagster/partition": "2026-03-09|DEMO",
                    "dagster/partition/date": "2026-03-09", "dagster/partition/shop": "DEMO"}
    full = run_tags(day, "DEMO", full_catalog=True)
    assert full == {**tags, "shopify_sync/full_catalog": "true"}
    assert "shopify_sync/full_catalog" not in tags


def test_the_api_does_not_import_dagster() -> None:
    """Start-up of the API (and of its launcher) stays free of Dagster's import."""
    code = "import sys, shopify_sync.api.app, shopify_sync.api.launcher; print('dagster' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "False", proc.stderr
