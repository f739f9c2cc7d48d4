"""Configuration and infrastructure failures (issue 14, points 1, 2 and 4).

A wrong warehouse or store fails the run at once, without going through the step retry
policy, with at most three stderr lines naming the variable to fix; the run still writes
its ``failed`` telemetry record when the store is usable; no traceback without ``--verbose``.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy.engine import make_url

from shopify_sync.cli import main
from shopify_sync_tests.conftest import POSTGRES_URL


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.startswith(("SHOPIFY_", "DAGSTER_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHOPIFY_SYNC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", "")  # the CLI exports it; monkeypatch restores it
    monkeypatch.setenv("SHOPIFY_SHOPS", "DA")
    monkeypatch.setenv("SHOPIFY_DA_STORE", "emulator")
    (tmp_path / "a_file").write_text("not a directory")
    return tmp_path


def _yesterday() -> str:
    return (datetime.now(UTC).date() - timedelta(days=1)).isoformat()


def _failed_sync(tmp_path: Path, capsys: pytest.CaptureFixture[str], variable: str) -> str:
    """Run ``sync``: it fails with <= 3 stderr lines naming ``variable``, with no retry. Its run id."""
    assert main(["sync", "--date", _yesterday()]) == 1
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert 1 <= len(lines) <= 3, err
    assert "Traceback" not in err and "Stack Trace" not in err and "max_retries" not in err
    [line] = [ln for ln in lines if ln.startswith("FAILED")]
    assert variable in line and "shopify_bulk_jsonl" in line, line
    run_id = re.search(r"run ([0-9a-f-]{36})", line)
    assert run_id is not None
    with dg.DagsterInstance.from_config(str(tmp_path / "home" / "dagster_home")) as instance:
        retries = instance.get_records_for_run(run_id.group(1), of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY)
        assert list(retries.records) == []
    return run_id.group(1)


def _telemetry(tmp_path: Path, run_id: str) -> list[dict[str, object]]:
    root = tmp_path / "home" / "objects" / "telemetry" / "sync"
    return [json.loads(p.read_text()) for p in sorted(root.glob(f"*/{run_id}/**/*")) if p.is_file()]


@pytest.mark.parametrize("which", ["postgres_no_such_database", "postgres_refused", "sqlite_under_a_file"])
def test_a_wrong_warehouse_fails_at_once_naming_its_variable(env: Path, monkeypatch, capsys, which: str) -> None:
    url = {
        "postgres_no_such_database": make_url(POSTGRES_URL).set(database="shopify_sync_no_such_db")
        .render_as_string(hide_password=False),
        "postgres_refused": "postgresql+psycopg://nobody@127.0.0.1:1/x",
        "sqlite_under_a_file": f"sqlite:///{env}/a_file/warehouse.db",
    }[which]
    monkeypatch.setenv("SHOPIFY_SYNC_DATABASE_URL", url)
    run_id = _failed_sync(env, capsys, "SHOPIFY_SYNC_DATABASE_URL")

    # The run failed before any step record: it still writes its own `failed` record (SPEC §6).
    [record] = _telemetry(env, run_id)
    assert record["step"] == "failed" and record["status"] == "failed" and record["shop"] == "DA"
    error = record["error"]
    assert isinstance(error, dict) and str(error["message"]).startswith("SHOPIFY_SYNC_DATABASE_URL: ")


def test_a_store_pointing_at_a_file_fails_at_once_naming_its_variable(env: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SHOPIFY_SYNC_STORAGE_URL", f"file://{env}/a_file")
    _failed_sync(env, capsys, "SHOPIFY_SYNC_STORAGE_URL")


def test_a_home_that_is_a_file_is_one_line_naming_it(env: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SHOPIFY_SYNC_HOME", str(env / "a_file"))
    assert main(["sync", "--date", _yesterday()]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("shopify-sync: error: SHOPIFY_SYNC_HOME: ")


@pytest.mark.parametrize("command", [["status"], ["db", "upgrade"]])
def test_status_and_db_upgrade_name_the_warehouse_variable(env: Path, monkeypatch, capsys, command) -> None:
    monkeypatch.setenv("SHOPIFY_SYNC_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/x")
    assert main(command) == 1
    err = capsys.readouterr().err
    [line] = err.strip().splitlines()
    assert line.startswith("shopify-sync: error: SHOPIFY_SYNC_DATABASE_URL: ") and "Traceback" not in err

    # The default warehouse under an unusable home names the home.
    monkeypatch.delenv("SHOPIFY_SYNC_DATABASE_URL")
    monkeypatch.setenv("DAGSTER_HOME", str(env / "dh"))
    monkeypatch.setenv("SHOPIFY_SYNC_HOME", str(env / "a_file"))
    assert main(command) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("shopify-sync: error: SHOPIFY_SYNC_HOME: ")


def test_verbose_shows_the_traceback(env: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SHOPIFY_SYNC_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/x")
    assert main(["--verbose", "db", "upgrade"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("shopify-sync: error: SHOPIFY_SYNC_")


def test_the_failure_line_is_the_root_cause_not_max_retries() -> None:
    from dagster._core.execution.plan.objects import StepFailureData
    from dagster._utils.error import SerializableErrorInfo

    from shopify_sync.launch.inprocess import step_error_line

    root = SerializableErrorInfo("httpx.ConnectError: [Errno 111] Connection refused\nmore\n", [], "ConnectError")
    wrapped = SerializableErrorInfo("Error occurred while executing op\n", [], "DagsterExecutionStepExecutionError",
                                    cause=root)
    exhausted = SerializableErrorInfo("Exceeded max_retries of 2\n", [], "RetryRequested", cause=wrapped)
    line = step_error_line(StepFailureData(error=exhausted, user_failure_data=None))
    assert line == "ConnectError: [Errno 111] Connection refused"
