"""``--launch`` / ``--wait`` without a deployment: tags, location discovery, usage and
configuration errors, and following a run to its end in the ``DAGSTER_HOME`` instance.

The whole path against a real webserver, daemon and Celery workers is
``shopify_sync_tests/deploy/test_celery_deployment.py``.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from shopify_sync.cli import main
from shopify_sync.config import load_settings
from shopify_sync.launch.plan import SYNC_JOB_NAME, backfill_launch, daily_launch, replay_launch
from shopify_sync.launch.queued import K8S_CONFIG_TAG, QueuedLauncher, launch_tags, locations_with_job

DAY = date(2026, 11, 30)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.startswith(("SHOPIFY_", "DAGSTER_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHOPIFY_SYNC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("SHOPIFY_SHOPS", "DA")
    monkeypatch.setenv("SHOPIFY_DA_STORE", "emulator")
    monkeypatch.setenv("SHOPIFY_SYNC_START_DATE", "2026-01-01")
    return tmp_path


def test_a_daily_launch_carries_the_partition_tags_the_shop_limit_keys_on() -> None:
    tags = launch_tags(daily_launch("DA", DAY))
    assert tags["dagster/partition"] == "2026-11-30|DA"
    assert (tags["dagster/partition/date"], tags["dagster/partition/shop"]) == ("2026-11-30", "DA")
    assert tags["shopify_sync/shop"] == "DA"


def test_a_ranged_launch_keeps_its_range_and_gets_the_big_pod() -> None:
    launch = backfill_launch("DA", date(2026, 11, 1), DAY)
    tags = launch_tags(launch)
    assert "dagster/partition" not in tags
    assert {k: v for k, v in tags.items() if k != K8S_CONFIG_TAG} == launch.tags
    assert json.loads(tags[K8S_CONFIG_TAG])["container_config"]["resources"]["requests"]["memory"] == "1Gi"
    replay = launch_tags(replay_launch("DA", DAY, DAY, "abc"))
    assert replay["dagster/partition"] == "2026-11-30|DA"


def _workspace(*locations: tuple[str, list[str]]) -> dict[str, object]:
    entries = [{"name": name, "locationOrLoadError": {"__typename": "RepositoryLocation", "repositories": [
        {"name": "__repository__", "jobs": [{"name": job} for job in jobs]}]}} for name, jobs in locations]
    return {"data": {"workspaceOrError": {"__typename": "Workspace", "locationEntries": entries}}}


def test_the_location_serving_the_sync_job_is_found() -> None:
    payload = _workspace(("other", ["x"]), ("shopify_sync_celery", [SYNC_JOB_NAME, "__ASSET_JOB"]))
    assert locations_with_job(payload) == ["shopify_sync_celery"]
    assert locations_with_job(_workspace(("a", [SYNC_JOB_NAME]), ("b", [SYNC_JOB_NAME]))) == ["a", "b"]
    with pytest.raises(RuntimeError):
        locations_with_job({"errors": [{"message": "boom"}]})


def test_wait_without_launch_is_a_usage_error(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["sync", "--wait"])
    assert exit_.value.code == 2
    assert "--wait needs --launch" in capsys.readouterr().err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_launch_without_a_webserver_names_the_variable(env: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SHOPIFY_SYNC_DAGSTER_URL", f"http://127.0.0.1:{_closed_port()}")
    assert main(["backfill", "--launch", "--start", "2026-11-01", "--end", "2026-11-02"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "SHOPIFY_SYNC_DAGSTER_URL" in err[0] and "not reachable" in err[0], err


def _finished_run(instance: dg.DagsterInstance, status: dg.DagsterRunStatus) -> str:
    """A run that ended as a deployed one does: success, or failed by the run monitoring."""
    started = dg.DagsterRunStatus.SUCCESS if status == dg.DagsterRunStatus.SUCCESS else dg.DagsterRunStatus.STARTED
    run = instance.add_run(dg.DagsterRun(job_name=SYNC_JOB_NAME, run_id=str(uuid.uuid4()), status=started,
                                         tags={"shopify_sync/shop": "DA"}))
    if status == dg.DagsterRunStatus.FAILURE:
        instance.report_run_failed(run, "Exceeded maximum runtime of 20 seconds.")
    return run.run_id


def test_wait_reports_success_and_the_failure_line(env: Path) -> None:
    # No daemon here: a run marked for retry gets no retry run, and the wait gives up on it.
    launcher = QueuedLauncher(load_settings(), poll_seconds=0.01, retry_grace_seconds=0.5)
    done = _finished_run(launcher.instance, dg.DagsterRunStatus.SUCCESS)
    assert launcher.wait(done, timeout=5).success
    failed = launcher.wait(_finished_run(launcher.instance, dg.DagsterRunStatus.FAILURE), timeout=5)
    assert not failed.success
    assert failed.error is not None and "Exceeded maximum runtime" in failed.error


def test_wait_for_a_run_of_another_instance_names_dagster_home(env: Path) -> None:
    launcher = QueuedLauncher(load_settings(), poll_seconds=0.01)
    with pytest.raises(Exception, match="DAGSTER_HOME"):
        launcher.wait("00000000-0000-0000-0000-000000000000", timeout=5)


def test_the_location_variable_skips_discovery(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPIFY_SYNC_DAGSTER_LOCATION", "shopify_sync_celery")
    monkeypatch.setenv("SHOPIFY_SYNC_DAGSTER_URL", f"http://127.0.0.1:{_closed_port()}")
    # No webserver answers: the location comes from the variable, not from a query.
    assert QueuedLauncher(load_settings()).resolve_location() == "shopify_sync_celery"
