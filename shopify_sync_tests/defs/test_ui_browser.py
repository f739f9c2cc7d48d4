"""The operator's console: the real Dagster UI in headless Chromium, on the embedded defaults.

``dagster-webserver`` and ``dagster-daemon`` run on loopback over a fresh ``DAGSTER_HOME``
(the repository's ``dagster.yaml``) and a fresh ``SHOPIFY_SYNC_HOME``: the DEMO shop on
the bundled emulator, SQLite warehouse, local object store; only the bulk poll interval is
shortened. The test opens the asset graph, materializes one (date x shop) partition from
the launch dialog, waits for the run to succeed, reads the asset checks as passed and
opens the backfill dialog for a date range. Screenshots go to ``docs/screenshots/dagster-*.png``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from shopify_sync_tests.browser import REPO, browser_page, chromium_path, free_port, shot

BIN = Path(sys.executable).parent
IN_PROCESS = "execution: {config: {in_process: {}}}"
RUN_TIMEOUT_S = 420  # two shared cores: a run's step subprocesses each import Dagster


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOPIFY_", "DAGSTER_"))}
    env.update({
        "DAGSTER_HOME": str(tmp / "dagster_home"),
        "SHOPIFY_SYNC_HOME": str(tmp / "shopify_sync_home"),
        # The emulator finishes a bulk operation at once; 16 s between polls would only wait.
        "SHOPIFY_POLL_INTERVAL_SECONDS": "0.5",
    })
    return env


def _gql(base: str, query: str, **variables: str) -> dict[str, Any]:
    resp = httpx.post(f"{base}/graphql", json={"query": query, "variables": variables}, timeout=30)
    resp.raise_for_status()
    data: dict[str, Any] = resp.json()["data"]
    return data


def _wait_loaded(base: str, procs: list[subprocess.Popen[bytes]], log: Path) -> None:
    deadline = time.monotonic() + 180
    query = ("{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
             "locationOrLoadError { __typename ... on PythonError { message } } } } } }")
    while time.monotonic() < deadline:
        for proc in procs:
            assert proc.poll() is None, f"a Dagster process exited:\n{log.read_text()[-3000:]}"
        try:
            entries = _gql(base, query)["workspaceOrError"]["locationEntries"]
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                failed = [e["locationOrLoadError"] for e in entries
                          if e["locationOrLoadError"]["__typename"] == "PythonError"]
                assert not failed, f"the code location failed to load: {failed}\n{log.read_text()[-3000:]}"
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the code location did not load:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    chromium_path()  # skip before paying for the servers
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    tmp = tmp_path_factory.mktemp("dagster_ui")
    env = _env(tmp)
    Path(env["DAGSTER_HOME"]).mkdir()
    shutil.copy(REPO / "dagster.yaml", Path(env["DAGSTER_HOME"]) / "dagster.yaml")
    port = free_port()
    log = tmp / "dagster.log"
    procs: list[subprocess.Popen[bytes]] = []
    base = f"http://127.0.0.1:{port}"

    def start(*cmd: str) -> None:
        with log.open("ab") as out:
            # Own session: teardown stops each server with its code-server children.
            procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True))

    try:
        start(str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml")
        _wait_loaded(base, procs, log)
        # The daemon only once the webserver has created the instance's storage: two
        # processes migrating a fresh SQLite instance at once leave two alembic heads.
        start(str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml")
        yield base
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def _dismiss_first_run_modals(page: Any) -> None:
    # Dagster greets a new instance with a community/newsletter modal; "Skip" records it as seen.
    for name in ("Skip", "Dismiss", "Got it"):
        button = page.get_by_role("button", name=name, exact=True)
        if button.count() and button.first.is_visible():
            button.first.click()


def _open_launch_dialog(page: Any, base: str, dates: str, shop: str) -> Any:
    page.goto(f"{base}/asset-groups")
    page.get_by_role("button", name="Materialize all…").wait_for(timeout=60_000)
    page.wait_for_timeout(800)  # the modal appears a moment after the page
    _dismiss_first_run_modals(page)
    page.get_by_role("button", name="Materialize all…").click()
    dialog = page.get_by_role("dialog")
    dates_input = dialog.get_by_placeholder("ex: 2026-01-01", exact=False)
    dates_input.wait_for(timeout=60_000)
    dates_input.fill(dates)
    dates_input.press("Enter")
    dialog.get_by_text("Select a partition or create one").click()
    page.get_by_text(shop, exact=True).first.click()
    dialog.get_by_text("Launch runs to materialize").click()  # closes the shop list
    return dialog


def _run_in_one_process(page: Any) -> None:
    """Run config ``execution: in_process`` through the dialog's config editor.

    Dagster's default executor starts a process per step; on a busy two-core box each
    costs seconds of Dagster import, so the test runs the same steps in one process."""
    dialog = page.get_by_role("dialog").first
    dialog.get_by_text("Config", exact=True).click()
    dialog.get_by_role("button", name="Add config").click()
    # The editor (the last visible CodeMirror; the other shows the schema) has a header over
    # its first line for pointer events: focus it directly.
    editor = page.locator(".CodeMirror >> visible=true").last
    editor.evaluate("e => e.CodeMirror.focus()")
    # insert_text: no key events, so the editor's bracket auto-closing does not double them.
    page.keyboard.insert_text(IN_PROCESS)
    assert editor.evaluate("e => e.CodeMirror.getValue()") == IN_PROCESS
    page.get_by_text("No errors").wait_for()
    page.get_by_role("button", name="Save config").click()


def _run_status(base: str, run_id: str) -> str:
    data = _gql(base, "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", id=run_id)
    return str(data["runOrError"]["status"])


def test_dagster_ui_in_chromium(dagster_ui: str) -> None:
    base = dagster_ui
    day = (datetime.now(UTC) - timedelta(days=1)).date()
    errors: list[str] = []
    t0 = time.monotonic()

    def step(name: str) -> None:
        shot(page, name)
        # Step times, printed with -s: where a slow run spent its time.
        print(f"{name}: {time.monotonic() - t0:.1f} s")

    with browser_page(errors) as page:
        page.goto(f"{base}/asset-groups")
        page.get_by_role("button", name="Materialize all…").wait_for(timeout=60_000)
        page.wait_for_timeout(800)
        step("dagster-0-first-run-modal")
        _dismiss_first_run_modals(page)
        for group in ("shopify_ingest", "shopify_metrics"):
            # A collapsed group opens on double click, showing its assets and their edges.
            page.locator(f"text={group} >> visible=true").last.dblclick()
        for asset in ("shopify_bulk_jsonl", "order_header", "order_line_item", "order_refund", "product",
                      "measurement_sales"):
            page.get_by_text(asset, exact=True).first.wait_for()
        step("dagster-1-asset-graph")

        # One (date x shop) partition: yesterday x DEMO, the schedule's run for today.
        dialog = _open_launch_dialog(page, base, day.isoformat(), "DEMO")
        assert dialog.get_by_text("1 partition", exact=True).is_visible()
        step("dagster-2-materialize-one-partition")
        _run_in_one_process(page)
        dialog.get_by_role("button", name="Launch 1 run").click()
        toast = page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}"))
        toast.wait_for(timeout=30_000)
        short_id = toast.inner_text().split()[-1]
        runs = _gql(base, "{ runsOrError(limit: 5) { ... on Runs { results { runId runConfigYaml "
                          "tags { key value } } } } }")
        run = next(r for r in runs["runsOrError"]["results"] if r["runId"].startswith(short_id))
        tags = {t["key"]: t["value"] for t in run["tags"]}
        assert tags["dagster/partition"] == f"{day.isoformat()}|DEMO"
        assert "in_process" in run["runConfigYaml"]

        deadline = time.monotonic() + RUN_TIMEOUT_S
        while (status := _run_status(base, run["runId"])) not in {"SUCCESS", "FAILURE", "CANCELED"}:
            assert time.monotonic() < deadline, f"run {run['runId']} still {status} after {RUN_TIMEOUT_S} s"
            time.sleep(1)
        page.goto(f"{base}/runs/{run['runId']}")
        page.get_by_text("Success", exact=True).first.wait_for(timeout=30_000)
        step("dagster-3-run-succeeded")
        assert status == "SUCCESS"
        # The run's first step named it: job type, initiator and shop, for the runs list.
        runs = _gql(base, "{ runsOrError(limit: 5) { ... on Runs { results { runId tags { key value } } } } }")
        tags = {t["key"]: t["value"] for r in runs["runsOrError"]["results"] if r["runId"] == run["runId"]
                for t in r["tags"]}
        assert {k: tags.get(k) for k in ("shopify_sync/mode", "shopify_sync/initiator", "shopify_sync/shop")} == {
            "shopify_sync/mode": "DAILY_INCREMENTAL", "shopify_sync/initiator": "user", "shopify_sync/shop": "DEMO"}

        # The acceptance criteria: every check of the last asset passed for this run.
        page.goto(f"{base}/assets/measurement_performance?view=checks")
        checks = ("telemetry_completed", "shop_freshness", "watermark_not_regressed", "stored_measurements_are_current",
                  "catalog_synced")
        # Long names are drawn middle-truncated (the full text sits in a hidden measuring node).
        page.get_by_text(f"Checks ({len(checks)})", exact=True).first.wait_for(timeout=30_000)
        for check in checks:
            page.get_by_text(check, exact=True).first.wait_for(state="attached", timeout=30_000)
        page.get_by_text("Passed").first.wait_for(timeout=30_000)
        # The list beside shows each check's latest result.
        assert page.get_by_text("Succeeded", exact=True).count() == len(checks)
        assert page.get_by_text("Failed", exact=True).count() == 0
        step("dagster-4-asset-checks-passed")

        # A backfill over a week for DEMO: the dialog offers a backfill, we do not launch it.
        first = day - timedelta(days=6)
        dialog = _open_launch_dialog(page, base, f"[{first.isoformat()}...{day.isoformat()}]", "DEMO")
        assert dialog.get_by_text("7 partitions", exact=True).is_visible()
        assert dialog.get_by_role("button", name="Launch backfill").is_enabled()
        # One backfill policy for every asset (issue 17): the dialog has no mixed-policy warning.
        assert dialog.get_by_text("varying backfill policies").count() == 0
        page.get_by_placeholder("Filter partitions").wait_for(state="hidden")
        step("dagster-5-backfill-dialog")
        dialog.get_by_role("button", name="Cancel", exact=True).click()
