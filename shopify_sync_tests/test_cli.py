"""``shopify-sync`` (SPEC §7): exit codes, one-line errors, and crash → resume.

The crash test runs the real console command in a subprocess against the emulator
over loopback HTTP, kills it with SIGKILL while it polls Shopify, and runs the same
command again: it must continue the same sync_job and re-poll the same bulk
operation (the emulator saw exactly one ``bulkOperationRunQuery``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from shopify_sync.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.startswith(("SHOPIFY_", "DAGSTER_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHOPIFY_SYNC_HOME", str(tmp_path / "home"))
    # The CLI exports DAGSTER_HOME into os.environ; registering it with monkeypatch makes
    # sure it is removed again and cannot leak into other tests.
    monkeypatch.setenv("DAGSTER_HOME", "")
    return tmp_path


def _one_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def test_bad_configuration_is_one_line_and_nonzero(clean_env, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SHOPIFY_SHOPS", "DA")
    assert main(["sync"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line == "shopify-sync: error: SHOPIFY_DA_STORE: not set (shop DA is listed in SHOPIFY_SHOPS)"


def test_unknown_shop_and_bad_dates(clean_env, capsys) -> None:
    assert main(["sync", "--shop", "NOPE"]) == 2
    assert "unknown shop code 'NOPE'" in _one_line(capsys.readouterr().err)

    future = (datetime.now(UTC).date() + timedelta(days=3)).isoformat()
    assert main(["sync", "--date", future]) == 1
    assert "is in the future" in _one_line(capsys.readouterr().err)

    today = datetime.now(UTC).date().isoformat()
    assert main(["sync", "--date", today]) == 1
    assert "is today (UTC)" in _one_line(capsys.readouterr().err)

    assert main(["backfill", "--start", "2026-03-05", "--end", "2026-03-01"]) == 1
    assert "is before --start" in _one_line(capsys.readouterr().err)

    assert main(["backfill", "--start", "2020-01-01", "--end", "2020-01-02"]) == 1
    assert "SHOPIFY_SYNC_START_DATE" in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize("argv", [
    ["sync", "--date", "2026-W48-1"],  # both taken by Python 3.11's date.fromisoformat
    ["sync", "--date", "20261201"],
    ["backfill", "--start", "2026-03-01", "--end", "2026-3-5"],
    ["api", "--port", "70000"],  # would listen on 70000 % 65536
    ["emulator", "--port", "-1"],
])
def test_bad_flags_are_one_line_usage_errors(clean_env, capsys, argv) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    line = _one_line(capsys.readouterr().err)
    flag = next(a for a in argv if a.startswith("--") and a != "--start")
    assert line.startswith(f"shopify-sync {argv[0]}: error: argument {flag}: "), line


def test_bad_storage_url_and_missing_driver_are_one_line(clean_env, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SHOPIFY_SYNC_STORAGE_URL", "file://relative/objs")
    assert main(["status"]) == 2
    assert _one_line(capsys.readouterr().err).startswith("shopify-sync: error: SHOPIFY_SYNC_STORAGE_URL: ")
    monkeypatch.delenv("SHOPIFY_SYNC_STORAGE_URL")
    monkeypatch.setenv("SHOPIFY_SYNC_DATABASE_URL", "mysql+nodriver://u:pw@127.0.0.1:1/d")
    assert main(["db", "upgrade"]) == 2
    assert _one_line(capsys.readouterr().err).startswith("shopify-sync: error: SHOPIFY_SYNC_DATABASE_URL: ")


def test_replay_of_an_unknown_run(clean_env, capsys) -> None:
    assert main(["replay", "--run-id", "does-not-exist"]) == 1
    assert "no archived raw file for run 'does-not-exist'" in _one_line(capsys.readouterr().err)


def test_db_upgrade_and_status_on_an_empty_warehouse(clean_env, capsys) -> None:
    assert main(["db", "upgrade"]) == 0
    assert "schema is at head" in capsys.readouterr().out
    assert (clean_env / "home" / "warehouse.db").exists()
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "DEMO" in out and "never synced" in out
    assert (clean_env / "home" / "dagster_home").is_dir()  # DAGSTER_HOME default, created


_QUICK_EXIT = """
import atexit, sys, threading, time
from pathlib import Path
from shopify_sync import cli

out = Path(sys.argv[1])
def late_thread():
    time.sleep(0.3)
    (out / "thread").write_text("joined")
threading.Thread(target=late_thread).start()
atexit.register(lambda: (out / "atexit").write_text("ran"))
cli.main = lambda: (print("ok      the outcome line"), print("a warning", file=sys.stderr), 3)[-1]
cli.entry()
"""


def test_the_command_exits_with_mains_code_after_what_an_exit_must_do(tmp_path: Path) -> None:
    # entry() skips the interpreter's teardown (os._exit): the piped, buffered output, a
    # running thread's work and the atexit handlers must survive it, and the code is main's.
    done = subprocess.run([sys.executable, "-c", _QUICK_EXIT, str(tmp_path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 3
    assert done.stdout == "ok      the outcome line\n"
    assert done.stderr == "a warning\n"
    assert (tmp_path / "thread").read_text() == "joined"
    assert (tmp_path / "atexit").read_text() == "ran"


def test_the_console_script_and_python_m_run_entry() -> None:
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["shopify-sync"] == "shopify_sync.cli:entry"
    done = subprocess.run([sys.executable, "-m", "shopify_sync.cli", "replay"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 2 and "error" in done.stderr


def _exited_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


def test_status_shows_a_run_of_a_killed_process_as_abandoned(clean_env, capsys) -> None:
    import socket

    import dagster as dg

    from shopify_sync.launch.plan import SYNC_JOB_NAME
    from shopify_sync.launch.status import TAG_HOST, TAG_PID
    from shopify_sync.sync import TAG_SHOP
    from shopify_sync.vocab import JobStatus
    from shopify_sync.warehouse import jobs, make_engine

    assert main(["status"]) == 0  # creates the warehouse and DAGSTER_HOME
    capsys.readouterr()
    dead = _exited_pid()
    host = socket.gethostname()
    with dg.DagsterInstance.from_config(str(clean_env / "home" / "dagster_home")) as inst:
        for run_id, pid in (("killed-run", dead), ("live-run", os.getpid())):
            inst.add_run(dg.DagsterRun(job_name=SYNC_JOB_NAME, run_id=run_id, status=dg.DagsterRunStatus.STARTED,
                                       tags={TAG_SHOP: "DEMO", TAG_PID: str(pid), TAG_HOST: host}))
    engine = make_engine(f"sqlite:///{clean_env}/home/warehouse.db")
    try:
        jobs.create_job(engine, shop="DEMO", job_type="DAILY_INCREMENTAL", partition_key="2026-11-22",
                        run_id="killed-run", initiator="user", status=JobStatus.POLLING)
        # The run's catalog job, created after the orders' (its operation starts beside theirs):
        # shown on its own line, never as the shop's last (orders) job.
        jobs.create_job(engine, shop="DEMO", job_type="CATALOG", partition_key="2026-11-22",
                        run_id="killed-run", initiator="user", status=JobStatus.FAILED)
        jobs.fail_job(engine, jobs.latest_job_of_shop(engine, "DEMO", catalog=True).job_id,  # type: ignore[union-attr]
                      "ShopifyError: catalog operation FAILED")
    finally:
        engine.dispose()

    assert main(["status"]) == 0
    out = capsys.readouterr().out
    runs = {line.split()[0]: line for line in out.split("last Dagster runs:")[1].strip().splitlines()}
    assert re.search(rf"ABANDONED \(process {dead} gone, started \d+s ago\)", runs["killed-run"])
    assert "STARTED" in runs["live-run"] and "ABANDONED" not in runs["live-run"]
    orders_table, catalog_table = out.split("last Dagster runs:")[0].split("product catalog:")
    (job_line,) = [ln for ln in orders_table.splitlines() if ln.startswith("DEMO")]
    assert re.search(rf"polling ABANDONED \(run process {dead} gone, updated \d+s ago\)", job_line)
    assert "DAILY_INCREMENTAL 2026-11-22" in job_line and "CATALOG" not in job_line
    (catalog_line,) = [ln for ln in catalog_table.splitlines() if ln.startswith("DEMO")]
    assert "CATALOG 2026-11-22 (full)" in catalog_line
    assert "failed (ShopifyError: catalog operation FAILED)" in catalog_line and "killed-run" in catalog_line
    # Showing it changes nothing: the next sync's start fails the run (fail_orphaned_runs).
    with dg.DagsterInstance.from_config(str(clean_env / "home" / "dagster_home")) as inst:
        killed = inst.get_run_by_id("killed-run")
        assert killed is not None and killed.status is dg.DagsterRunStatus.STARTED
        inst.report_run_failed(killed, "process gone")  # what the next sync's start does
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"  killed-run  FAILURE ", out)
    (job_line,) = [ln for ln in out.split("product catalog:")[0].splitlines() if ln.startswith("DEMO")]
    assert re.search(r"polling ABANDONED \(run ended FAILURE, updated \d+s ago\)", job_line)


def test_a_started_run_older_than_the_max_runtime_is_abandoned() -> None:
    import dagster as dg

    from shopify_sync.launch.status import abandoned_reason, age, max_runtime

    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    limit = max_runtime(None)
    assert limit == timedelta(hours=4)
    run = dg.DagsterRun(job_name="sync", run_id="old", status=dg.DagsterRunStatus.STARTED)
    assert abandoned_reason(run, now - timedelta(hours=5), now, limit) == "over the 4h max runtime"
    assert abandoned_reason(run, now - timedelta(hours=3), now, limit) is None
    finished = dg.DagsterRun(job_name="sync", run_id="done", status=dg.DagsterRunStatus.SUCCESS)
    assert abandoned_reason(finished, now - timedelta(hours=5), now, limit) is None
    assert [age(s) for s in (5, 600, 3 * 3600, 3 * 86400)] == ["5s", "10min", "3h", "3d"]


def _cli(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "shopify_sync.cli", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _job(db: sa.Engine):
    from shopify_sync.warehouse.tables import sync_job

    with db.connect() as conn:
        # The orders' job (a daily run also has its catalog's, job type CATALOG).
        return conn.execute(sa.select(sync_job).where(sync_job.c.job_type != "CATALOG")).all()


@pytest.mark.slow
def test_sigkill_while_polling_then_rerun_resumes_the_same_operation(tmp_path: Path) -> None:
    from shopify_sync.emulator import EmulatorConfig, EmulatorServer

    day = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    with EmulatorServer(EmulatorConfig(seed=5, orders_per_shop=60, days=20, completion_seconds=600.0)) as srv:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOPIFY_", "DAGSTER_"))}
        env.update({
            "SHOPIFY_SHOPS": "DEMO",
            "SHOPIFY_DEMO_STORE": srv.emulator.shop_base_url("DEMO"),
            "SHOPIFY_DEMO_TOKEN": srv.token,
            "SHOPIFY_POLL_INTERVAL_SECONDS": "0.05",
            "SHOPIFY_POLL_MAX_ATTEMPTS": "2000",
            "SHOPIFY_SYNC_HOME": str(tmp_path / "home"),
            "SHOPIFY_SYNC_START_DATE": (datetime.now(UTC).date() - timedelta(days=60)).isoformat(),
        })
        db = sa.create_engine(f"sqlite:///{tmp_path}/home/warehouse.db")

        first = _cli(env, "sync", "--shop", "DEMO", "--date", day)
        deadline = time.monotonic() + 90
        op_id = None
        while time.monotonic() < deadline and first.poll() is None:
            polls = [e for e in srv.emulator.request_log if e.kind == "poll"]
            if polls and (tmp_path / "home" / "warehouse.db").exists():
                jobs = _job(db)
                if jobs and jobs[0].bulk_operation_id:
                    op_id = jobs[0].bulk_operation_id
                    break
            time.sleep(0.05)
        assert op_id is not None, first.communicate(timeout=5)
        # At most one run per shop: a concurrent sync of the same shop is refused.
        concurrent = _cli(env, "sync", "--shop", "DEMO", "--date", day)
        _, cerr = concurrent.communicate(timeout=120)
        assert concurrent.returncode == 1 and "another sync of shop DEMO is running" in cerr
        # The refusal is its own run, refused by the warehouse, naming the run that holds the shop.
        [refusal] = [ln for ln in cerr.splitlines() if ln.startswith("FAILED")]
        refused_id = re.search(r"  run ([0-9a-f-]{36}): ", refusal).group(1)
        assert f"this run {refused_id} was not started" in refusal and f"(run {refused_id}," not in refusal
        assert first.poll() is None, "the first sync must still be polling"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        assert first.returncode == -signal.SIGKILL

        [job] = _job(db)
        assert job.status != "completed" and job.bulk_operation_id == op_id and job.archive_key is None
        # Let Shopify's job finish while nobody watches (the emulator's clock jumps ahead).
        srv.emulator.advance(600)

        second = _cli(env, "sync", "--shop", "DEMO", "--date", day)
        out, err = second.communicate(timeout=180)
        assert second.returncode == 0, err[-3000:]
        assert "ok" in out

    runs = [e for e in srv.emulator.request_log if e.kind == "run_query" and e.root == "orders"]
    assert len(runs) == 1  # the rerun did not submit a second bulk operation
    # The catalog's operation (started beside the orders') was re-polled too, not resubmitted.
    catalog_runs = [e.operation_id for e in srv.emulator.request_log
                    if e.kind == "run_query" and e.root == "productVariants"]
    assert len(catalog_runs) == 1
    polled = {e.operation_id for e in srv.emulator.request_log if e.kind == "poll" and e.operation_id}
    assert polled == {op_id, *catalog_runs}
    [job] = _job(db)  # the same job continued, not a new one
    assert job.status == "completed" and job.bulk_operation_id == op_id
    assert job.lines_committed == job.object_count > 0
    db.dispose()

    # Both runs are in the DAGSTER_HOME instance (the UI shows them).
    import dagster as dg

    with dg.DagsterInstance.from_config(str(tmp_path / "home" / "dagster_home")) as inst:
        runs = inst.get_runs()
        assert len(runs) == 3  # the killed run, the refused one, the rerun
        # The killed run is marked failed by the rerun (its process is gone), not left "started",
        # and its telemetry ends with the "failed" record it could not write itself.
        assert sorted(r.status.value for r in runs) == ["FAILURE", "FAILURE", "SUCCESS"]
        killed = next(r for r in runs if r.status.value == "FAILURE" and r.run_id != refused_id)
        from shopify_sync.storage import open_store
        from shopify_sync.telemetry import read_sync_records

        records = read_sync_records(open_store(f"file://{tmp_path}/home/objects"), killed.run_id)
        assert records[-1]["step"] == "failed" and records[-1]["error"]["type"] == "ProcessDied"


def test_a_failed_sync_exits_nonzero_with_one_line_naming_the_cause(tmp_path: Path, monkeypatch, capsys,
                                                                    sqlite_url: str) -> None:
    from shopify_sync_tests.defs.conftest import make_harness

    for h in make_harness(tmp_path, monkeypatch, sqlite_url):
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))
        h.emulator.faults.add("bulk_failed", times=1, error_code="ACCESS_DENIED")
        day = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
        assert main(["sync", "--date", day]) == 1
        err = capsys.readouterr().err
        [line] = [ln for ln in err.splitlines() if ln.startswith("FAILED")]
        assert f"sync DEMO {day}" in line and "shopify_bulk_jsonl" in line and "ACCESS_DENIED" in line
        assert "shpat_" not in err
        assert h.watermark("DEMO") is None
        from shopify_sync.warehouse.tables import sync_job

        eng = h.engine()
        with eng.connect() as conn:
            status, last_error = conn.execute(sa.select(sync_job.c.status, sync_job.c.last_error)
                                              .where(sync_job.c.job_type != "CATALOG")).one()
        eng.dispose()
        assert status == "failed" and "ACCESS_DENIED" in last_error

        # Scopes fixed: the same command continues the job with a new bulk operation and succeeds.
        assert main(["sync", "--date", day]) == 0
        assert len(h.run_queries("DEMO")) == 2
        assert h.watermark("DEMO") is not None


def test_emulator_command_prints_its_base_url_and_serves(tmp_path: Path) -> None:
    import httpx

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOPIFY_", "DAGSTER_"))}
    proc = _cli(env, "emulator", "--port", "0", "--token", "shpat_cli_test", "--orders", "5", "--seed", "3")
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:")
        query = {"query": "{ currentBulkOperation { id status } }"}
        ok = httpx.post(f"{base}/admin/api/2026-10/graphql.json", json=query,
                        headers={"X-Shopify-Access-Token": "shpat_cli_test"}, timeout=10)
        assert ok.status_code == 200 and "errors" not in ok.json()
        denied = httpx.post(f"{base}/admin/api/2026-10/graphql.json", json=query,
                            headers={"X-Shopify-Access-Token": "wrong"}, timeout=10)
        assert denied.status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
