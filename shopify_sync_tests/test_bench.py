"""The benchmark scripts still run end to end (tiny sizes; their figures are not judged here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]


def test_ingest_bench_runs_and_prints_its_json_lines(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ingest.py"), "--line-items", "3000", "--backends", "sqlite",
         "--chunk-rows", "500", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (line,) = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert line["bench"] == "ingest" and line["backend"] == "sqlite"
    assert line["rows"] > 3000 and line["rows_per_s"] > 0 and line["baseline_rows_per_s"] > 0
    assert line["peak_rss_mb"] > 0 and line["client_cpu_s"] > 0
    assert all(line[p][k] > 0 for p in ("pace_before", "pace_after") for k in ("python_s", "pyarrow_s"))
    assert "WARNING" not in proc.stdout  # both phases stored every row of the file
    assert list(tmp_path.iterdir()) == []  # the generated file and databases are removed


@pytest.mark.mariadb
def test_mariadb_floor_bench_runs_and_leaves_no_database(mysql_url: str) -> None:
    import shutil

    import sqlalchemy as sa

    if shutil.which("pgrep") is None or subprocess.run(["pgrep", "-x", "mariadbd"], capture_output=True).returncode:
        pytest.skip("the MariaDB server does not run on this machine: its CPU cannot be read")
    admin_url = sa.make_url(mysql_url).set(database="test").render_as_string(hide_password=False)
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "mariadb_floor.py"), "--rows", "2000"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "SHOPIFY_SYNC_TEST_MYSQL_URL": admin_url})
    assert proc.returncode == 0, proc.stderr[-2000:]
    rounds = [ln for ln in proc.stdout.splitlines() if "µs/row" in ln]
    assert len(rounds) == 4 and all("2,000 line items" in ln for ln in rounds)
    engine = sa.create_engine(admin_url)
    with engine.connect() as conn:
        left = [n for (n,) in conn.exec_driver_sql("SHOW DATABASES") if n.startswith("ss_floor_")]
    engine.dispose()
    assert left == []


def test_a_private_mariadb_has_the_buffer_pool_asked_for_and_goes_away() -> None:
    from shopify_sync_tests.faults.private_servers import PrivateMariaDB

    if PrivateMariaDB.missing():
        pytest.skip(f"bench/e2e.py --mariadb-buffer-pool cannot start a server here ({PrivateMariaDB.missing()})")
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from mariadb_server import private_mariadb, server_settings
    finally:
        sys.path.remove(str(ROOT / "bench"))
    with private_mariadb("48M") as server:
        assert "innodb_buffer_pool_size 48 MB" in server_settings(server.url())
        engine = sa.create_engine(server.url())
        with engine.connect() as conn:  # the shared server's durable commits: only the pool differs
            assert conn.exec_driver_sql("SELECT @@innodb_flush_log_at_trx_commit").scalar_one() == 1
        engine.dispose()
    assert not server.dir.exists()
    import socket
    with socket.socket() as s:  # stopped: nothing listens on its port any more
        assert s.connect_ex(("127.0.0.1", server.port)) != 0
