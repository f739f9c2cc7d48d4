"""Fault suite, issue 14.8: a run of day D dies in one of its steps; the next run is the sync
of day D+1. That run must first finish or close D's job (never leave it open), publish D's
pending commerce events exactly once, and end with the warehouse, the D+1 measurement
objects, the events and the watermark identical to a clean D, D+1 pair of runs.

Each step is crashed two ways: an exception (the step marks its job failed, as any failure
does) and a simulated kill (the job is left exactly as it was, in flight: nothing marks it
failed, as after SIGKILL). One scenario kills the real CLI process with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shopify_sync_tests.defs.conftest import Harness, make_harness
from shopify_sync_tests.faults.clean_run import (
    ANCHOR,
    API_TOKEN,
    D1,
    D,
    Outcome,
    assert_like_clean,
    assert_no_secrets,
    clean_outcome,
    order_jobs,
)

pytestmark = [pytest.mark.fault, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


class Crash(ValueError):
    """The injected failure (a ValueError: classified as not worth a retry, so no 30 s waits)."""


def _after(real: Callable[..., Any], calls: int = 1) -> Callable[..., Any]:
    """``real``, then a crash on its ``calls``-th call (an earlier call goes through)."""
    seen: list[int] = []

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        seen.append(1)
        if len(seen) < calls:
            return real(*args, **kwargs)
        if calls == 1:
            real(*args, **kwargs)
        raise Crash(f"injected crash after {getattr(real, '__name__', real)}")

    return wrapper


def _raise(*args: Any, **kwargs: Any) -> None:
    raise Crash("injected crash")


def _crash_points() -> dict[str, Callable[[pytest.MonkeyPatch], None]]:
    from shopify_sync import warehouse
    from shopify_sync.defs.assets import metrics
    from shopify_sync.shopify.client import ShopifyBulkClient
    from shopify_sync.warehouse import jobs
    from shopify_sync.warehouse.ingest import write

    return {
        # requested: the job exists, nothing asked of Shopify yet
        "requested": lambda m: m.setattr(ShopifyBulkClient, "run", _raise),
        # polling: the bulk operation is submitted and its id stored
        "polling": lambda m: m.setattr(jobs, "set_operation", _after(jobs.set_operation)),
        # downloading: the file is archived, the job not yet marked downloaded
        "downloading": lambda m: m.setattr(jobs, "mark_downloaded", _raise),
        # upserting: two chunks committed (rows and change records), the third dies
        "upserting": lambda m: m.setattr(write, "record_chunk", _after(write.record_chunk, calls=3)),
        # upserting, end: events written and the job marked loaded, its change records not deleted
        "events": lambda m: m.setattr(warehouse, "delete_job_changes", _raise),
        # transforming: the order tables are in, the product refresh dies
        "transforming": lambda m: m.setattr(metrics, "refresh_products", _raise),
        # completed: the watermark advanced, the job not yet closed
        "completed": lambda m: m.setattr(jobs, "complete_job", _raise),
    }


def _assert_settled_like_a_clean_run(h: Harness, next_run_id: str, clean: Outcome) -> Any:
    rows = order_jobs(h)
    assert all(r.open_lane is None for r in rows) and all(r.status in ("completed", "failed") for r in rows)
    old, new = rows[0], rows[-1]
    assert old.partition_key == str(D) and new.partition_key == str(D1) and new.status == "completed"
    # Finished (its load was complete) or closed by the next day's run, never left open.
    assert old.status == "completed" or old.last_error.startswith(f"closed by run {next_run_id}")
    assert_like_clean(h, clean)
    assert_no_secrets(h)
    return old


def _crash_then_next_day(h: Harness, monkeypatch: pytest.MonkeyPatch, point: str, kill: bool) -> tuple[Any, Any]:
    from shopify_sync.warehouse import jobs

    with monkeypatch.context() as m:
        _crash_points()[point](m)
        if kill:  # as after SIGKILL: nothing gets to mark the job failed
            m.setattr(jobs, "fail_job", lambda *a, **k: None)
        first = h.daily("DEMO", D)
    assert not first.success
    [left] = order_jobs(h)
    assert left.open_lane == jobs.LANE  # the dead run's job still holds the shop
    second = h.daily("DEMO", D1)
    assert second.success
    return left, second


@pytest.mark.parametrize("kill", [False, True], ids=["exception", "kill"])
@pytest.mark.parametrize("point", list(_crash_points()))
def test_a_crash_in_any_step_of_day_d_is_settled_by_the_sync_of_day_d1(
    point: str, kill: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    clean = clean_outcome(tmp_path_factory)
    for h in make_harness(tmp_path, monkeypatch, f"sqlite:///{tmp_path}/warehouse.db", anchor=ANCHOR, stock_clock=ANCHOR,
                          extra_env={"SHOPIFY_SYNC_API_TOKEN": API_TOKEN}):
        left, second = _crash_then_next_day(h, monkeypatch, point, kill)
        old = _assert_settled_like_a_clean_run(h, second.run_id, clean)
        # Killed after its load was complete (job ``loaded``): finished, its watermark advanced.
        if kill and point in ("events", "transforming", "completed"):
            assert left.status == "loaded", left.status
        # The rule: a job whose load was complete is finished, any other is closed. An exception in
        # the last step may leave the job loaded (the catalog step runs after the orders' finish).
        assert old.status == ("completed" if left.status == "loaded" else "failed"), (
            left.status, old.status, old.last_error)


@pytest.mark.parametrize("backend", ["mariadb", "postgres"])
@pytest.mark.parametrize("point", ["upserting", "events"])
def test_the_next_day_settles_a_crashed_job_on_the_server_backends(
    backend: str, point: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest,
) -> None:
    clean = clean_outcome(tmp_path_factory)
    url = request.getfixturevalue({"mariadb": "mysql_url", "postgres": "postgres_url"}[backend])
    for h in make_harness(tmp_path, monkeypatch, url, anchor=ANCHOR, stock_clock=ANCHOR, extra_env={"SHOPIFY_SYNC_API_TOKEN": API_TOKEN}):
        _, second = _crash_then_next_day(h, monkeypatch, point, kill=True)
        _assert_settled_like_a_clean_run(h, second.run_id, clean)


def test_sigkill_while_polling_day_d_then_the_cli_syncs_day_d1(tmp_path: Path) -> None:
    """The real thing: ``shopify-sync sync --date D`` killed with SIGKILL while it polls; then
    ``shopify-sync sync --date D+1`` closes D's job and completes, one bulk operation each."""
    from shopify_sync.emulator import EmulatorConfig, EmulatorServer

    with EmulatorServer(EmulatorConfig(seed=5, orders_per_shop=60, days=20, completion_seconds=600.0)) as srv:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOPIFY_", "DAGSTER_"))}
        env.update({"SHOPIFY_SHOPS": "DEMO", "SHOPIFY_DEMO_STORE": srv.emulator.shop_base_url("DEMO"),
                    "SHOPIFY_DEMO_TOKEN": srv.token, "SHOPIFY_POLL_INTERVAL_SECONDS": "0.05",
                    "SHOPIFY_POLL_MAX_ATTEMPTS": "20000", "SHOPIFY_SYNC_HOME": str(tmp_path / "home"),
                    "SHOPIFY_SYNC_START_DATE": (D - timedelta(days=30)).isoformat()})
        cli = [sys.executable, "-m", "shopify_sync.cli", "sync", "--shop", "DEMO", "--date"]
        first = subprocess.Popen([*cli, D.isoformat()], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any(e.kind == "poll" for e in srv.emulator.request_log):
            time.sleep(0.05)
        time.sleep(0.5)
        assert first.poll() is None, first.communicate(timeout=5)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        db = sa.create_engine(f"sqlite:///{tmp_path}/home/warehouse.db")
        with db.connect() as conn:
            [(status, lane)] = conn.execute(sa.text("SELECT status, open_lane FROM sync_job WHERE job_type <> 'CATALOG'")).all()
        assert status == "polling" and lane == "sync"
        srv.emulator.advance(600)  # Shopify's job finishes while nobody watches
        started = time.monotonic()
        second = subprocess.Popen([*cli, D1.isoformat()], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        while second.poll() is None and time.monotonic() - started < 300:
            srv.emulator.advance(60)  # the next day's own bulk operation takes 600 s of Shopify time
            time.sleep(0.2)
        _, err = second.communicate(timeout=30)
        assert second.returncode == 0, err[-3000:]
        assert len([e for e in srv.emulator.request_log if e.kind == "run_query" and e.root == "orders"]) == 2  # one per day
        with db.connect() as conn:
            rows = conn.execute(sa.text("SELECT partition_key, status, open_lane, last_error FROM sync_job "
                                        "WHERE job_type <> 'CATALOG' ORDER BY created_at")).all()
        db.dispose()
    assert [(r[0], r[1], r[2]) for r in rows] == [(str(D), "failed", None), (str(D1), "completed", None)]
    assert rows[0][3].startswith("closed by run ")
    print(f"\n[fault 14.8 SIGKILL polling] next-day sync rc 0 in {time.monotonic() - started:.1f} s")


def _days() -> tuple[date, date]:  # for docs/reliability.md
    return D, D1
