"""Fault suite, issue 14.7: 20 ``shopify-sync sync`` of one shop started at the same instant.

Twenty real processes (fresh interpreters, not forks: a fork of the multi-threaded test
process can inherit a lock held by one of its threads and hang) import the CLI and build the
job, say they are ready, and wait for one go signal, so they start together rather than one
import apart. Then each runs the CLI's ``sync`` against the same
warehouse and the same Dagster home. Exactly one runs (one bulk operation); the 19 others
refuse with one FAILED line that gives their own run id and names the run holding the shop;
no sync_job is left open; and the token scan finds none of the secrets used.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from shopify_sync_tests.faults.secrets_scan import scan_for_secrets

pytestmark = [pytest.mark.fault, pytest.mark.slow]

STARTS = 20
SHOPIFY_TOKEN = "shpat_fault7token5c0ffee"
API_TOKEN = "api-fault7-token-d00dfeed"
DB_PASSWORD = "Fault7DbPassw0rd"
FAILED = re.compile(r"^FAILED  sync DEMO (\S+)  run ([0-9a-f-]{36}): (.*)$")


# The child: imports and the job definition first (what takes seconds), then ready, then the
# go signal (polled every 2 ms), then the CLI's main in this interpreter.
_CHILD = """
import os, sys, time
from pathlib import Path
from shopify_sync.cli import main
from shopify_sync.config import load_settings
from shopify_sync.launch.inprocess import _job
_job(load_settings())
ready, go = Path(sys.argv[1]), Path(sys.argv[2])
ready.touch()
deadline = time.monotonic() + 300
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.002)
rc = main(sys.argv[3:])
sys.stdout.flush(); sys.stderr.flush()
os._exit(rc)
"""


def _start(tmp_path: Path, i: int, argv: list[str]) -> tuple[subprocess.Popen[bytes], str, str]:
    """One CLI process: its own interpreter, engine and connections."""
    out, err = str(tmp_path / f"out{i}"), str(tmp_path / f"err{i}")
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path / f"ready{i}"), str(tmp_path / "go"),
                                 *argv], stdout=o, stderr=e)
    return proc, out, err


def _with_password(url: str) -> str:
    # PostgreSQL here trusts loopback, so a password is accepted and ignored: the scan then
    # proves the configured one never leaks. MariaDB's root has none; SQLite takes none.
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return url
    return parsed.set(password=DB_PASSWORD).render_as_string(hide_password=False)


def test_twenty_simultaneous_starts_one_runs_the_others_refuse(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shopify_sync.config import load_settings
    from shopify_sync.emulator import EmulatorConfig, EmulatorServer
    from shopify_sync.launch.inprocess import dagster_home
    from shopify_sync.warehouse import make_engine
    from shopify_sync.warehouse.tables import sync_job

    for name in list(os.environ):
        if name.startswith(("SHOPIFY_", "DAGSTER_")):
            monkeypatch.delenv(name, raising=False)
    url = _with_password(db_url)
    day = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    # The winner's bulk operation takes 60 s: it holds the shop while all the others reach their
    # claim, even on a loaded machine (a start after the winner finished would run, rightly).
    config = EmulatorConfig(seed=5, orders_per_shop=60, days=20, completion_seconds=60.0, token=SHOPIFY_TOKEN)
    with EmulatorServer(config) as srv:
        env = {"SHOPIFY_SHOPS": "DEMO", "SHOPIFY_DEMO_STORE": srv.emulator.shop_base_url("DEMO"),
               "SHOPIFY_DEMO_TOKEN": SHOPIFY_TOKEN, "SHOPIFY_POLL_INTERVAL_SECONDS": "0.2",
               "SHOPIFY_POLL_MAX_ATTEMPTS": "1000", "SHOPIFY_SYNC_HOME": str(tmp_path / "home"),
               "SHOPIFY_SYNC_DATABASE_URL": url, "SHOPIFY_SYNC_API_TOKEN": API_TOKEN,
               "SHOPIFY_SYNC_START_DATE": (datetime.now(UTC).date() - timedelta(days=60)).isoformat(),
               "DAGSTER_HOME": str(tmp_path / "home" / "dagster_home")}
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        dagster_home(load_settings())  # the deployment exists: home and dagster.yaml in place,
        with dg.DagsterInstance.get() as instance:  # its instance storage created
            instance.get_runs()
            instance.all_asset_keys()
        make_engine(url).dispose()  # and its warehouse is migrated
        argv = ["sync", "--shop", "DEMO", "--date", day]
        procs = [_start(tmp_path, i, argv) for i in range(STARTS)]
        ready_by = time.monotonic() + 300
        while not all((tmp_path / f"ready{i}").exists() for i in range(STARTS)):
            assert all(p.poll() is None for p, _, _ in procs), [Path(e).read_text()[-2000:] for _, _, e in procs]
            assert time.monotonic() < ready_by, "the CLI processes did not get ready"
            time.sleep(0.05)
        t0 = time.monotonic()
        (tmp_path / "go").touch()
        for p, _, _ in procs:
            try:
                p.wait(timeout=400)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        elapsed = time.monotonic() - t0
        runs_submitted = len([e for e in srv.emulator.request_log if e.kind == "run_query" and e.root == "orders"])

    codes = [p.returncode for p, _, _ in procs]
    outs = [(Path(o).read_text(), Path(e).read_text()) for _, o, e in procs]
    assert sorted(codes) == [0] + [1] * (STARTS - 1), (codes, [e[-2000:] for _, e in outs if e])
    assert runs_submitted == 1  # one bulk operation: only the winner reached Shopify
    [winner_out] = [o for (o, _), c in zip(outs, codes, strict=True) if c == 0]
    winner = re.search(r"run ([0-9a-f-]{36})", winner_out).group(1)
    refusals = []
    for (_, err), code in zip(outs, codes, strict=True):
        if code == 0:
            continue
        assert "Traceback" not in err
        [line] = [ln for ln in err.splitlines() if ln.startswith("FAILED")]
        _, own, message = FAILED.match(line).groups()
        assert own != winner
        assert f"another sync of shop DEMO is running (run {winner}, DAILY_INCREMENTAL {day})" in message
        assert f"this run {own} was not started" in message
        refusals.append((own, len([ln for ln in err.splitlines() if ln.strip()])))
    assert len({own for own, _ in refusals}) == STARTS - 1

    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(sync_job)).all()
    engine.dispose()
    # The winner's orders job and its catalog job (issue 16), both completed: none open, no other run's.
    assert {(r.run_id, r.status, r.open_lane) for r in rows} == {(winner, "completed", None)}
    assert sorted(r.job_type for r in rows) == ["CATALOG", "DAILY_INCREMENTAL"]
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        statuses = sorted(r.status.value for r in instance.get_runs())
        assert statuses == ["FAILURE"] * (STARTS - 1) + ["SUCCESS"]
        hits = scan_for_secrets({"Shopify token": SHOPIFY_TOKEN, "API token": API_TOKEN, "DB password": DB_PASSWORD},
                                roots=[tmp_path / "home"], database_url=url, instance=instance)
    assert hits == []
    # Figures for docs/reliability.md (shown with -s).
    print(f"\n[fault 14.7 {sa.make_url(url).get_backend_name()}] {STARTS} starts in {elapsed:.1f} s: "
          f"1 ran, {len(refusals)} refused; stderr lines per refusal: "
          f"{sorted({n for _, n in refusals})}")
