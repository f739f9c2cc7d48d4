"""The code location loads with no environment at all, fast and without I/O, and bad
configuration is one clear line (SPEC §2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from shopify_sync.config import load_settings
from shopify_sync.defs import build_definitions

ROOT = Path(__file__).resolve().parents[2]


def _load(tmp_path: Path, extra_env: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    # A clean interpreter with an empty environment: nothing leaks in from the test run.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), **extra_env}
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)


def test_definitions_load_with_an_empty_environment(tmp_path: Path) -> None:
    code = (
        "import shopify_sync.definitions as m\n"
        "d = m.defs()\n"
        "g = d.resolve_asset_graph()\n"
        "print(sorted(k.to_user_string() for k in g.get_all_asset_keys()))\n"
        "print(sorted(k.name for k in g.asset_check_keys))\n"
        "print(d.resolve_job_def('shopify_sync_job').name)\n"
        "print([s.name for s in d.schedules])\n"
    )
    proc = _load(tmp_path, {}, code)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == str(sorted(["measurement_performance", "measurement_sales", "order_header",
                                   "order_line_item", "order_refund", "product", "shopify_bulk_jsonl",
                                   "product_variant", "shopify_catalog_jsonl"]))
    assert lines[1] == str(sorted(["no_duplicate_sales_keys", "product_figures_match_line_items",
                                   "rows_match_object_count", "shop_freshness", "stored_measurements_are_current",
                                   "telemetry_completed", "watermark_not_regressed", "catalog_rows_match_object_count",
                                   "variant_has_product", "sales_sku_matches_catalog", "catalog_synced"]))
    assert lines[2:] == ["shopify_sync_job", "['shopify_sync_daily']"]
    # Loading created nothing: no database, no object folder, no Dagster home.
    assert not (tmp_path / ".shopify_sync").exists()
    assert "Warning" not in proc.stderr


def test_bad_shop_list_is_one_clear_line(tmp_path: Path) -> None:
    # Importing the entry point builds nothing (``@dg.definitions`` is lazy); Dagster's loader calls it.
    proc = _load(tmp_path, {"SHOPIFY_SHOPS": "DA,bad-code"}, "import shopify_sync.definitions as m\nm.defs()")
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last == "shopify_sync.config.ConfigError: SHOPIFY_SHOPS: shop code 'bad-code' must match [A-Z0-9_]+, at most 32 characters"
    # Raised "from None": no chained "During handling of the above exception" noise.
    assert "During handling" not in proc.stderr


def test_dg_check_defs_loads_the_project(tmp_path: Path) -> None:
    """``[tool.dg]`` points ``dg`` at the entry point: the CI load check of the Dagster docs."""
    dg_cli = Path(sys.executable).with_name("dg")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "VIRTUAL_ENV": str(Path(sys.executable).parents[1]), "DAGSTER_HOME": str(tmp_path)}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    proc = subprocess.run([str(dg_cli), "check", "defs"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "All definitions loaded successfully." in proc.stdout
    bad = subprocess.run([str(dg_cli), "check", "defs"], cwd=ROOT, env={**env, "SHOPIFY_SHOPS": "DA,bad-code"},
                         capture_output=True, text=True, timeout=180)
    assert bad.returncode != 0
    assert ("shopify_sync.config.ConfigError: SHOPIFY_SHOPS: shop code 'bad-code' must match [A-Z0-9_]+"
            in bad.stdout + bad.stderr)


def test_assets_document_themselves() -> None:
    defs = build_definitions(load_settings({}))
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description and len(node.description) > 40, key
        assert node.group_name in {"shopify_ingest", "shopify_catalog", "shopify_metrics"}, key
        assert node.kinds, key
        # One policy for every asset (none: a Dagster backfill is one run per day and shop).
        assert node.backfill_policy is None, key
    # Only the Shopify step retries (the client already retries requests).
    job = defs.resolve_job_def("shopify_sync_job")
    policies = {node.name: node.definition.retry_policy for node in job.graph.nodes}
    assert policies.pop("shopify_bulk_jsonl") is not None
    assert policies.pop("shopify_catalog_jsonl") is not None
    assert set(policies.values()) == {None}


def test_instance_config_limits_one_run_per_shop(tmp_path: Path) -> None:
    import shutil

    import dagster as dg

    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as inst:
        queue = inst.get_concurrency_config().run_queue_config
        per_shop = {lim["key"]: lim for lim in queue.tag_concurrency_limits}
        assert per_shop["dagster/partition/shop"]["limit"] == 1
        assert per_shop["dagster/partition/shop"]["value"] == {"applyLimitPerUniqueValue": True}
        assert inst.run_monitoring_enabled
        # Run retries only for crashes: step failures are the RetryPolicy's job.
        assert inst.run_retries_enabled and not inst.run_retries_retry_on_asset_or_op_failure
    workspace = (ROOT / "workspace.yaml").read_text()
    assert "module_name: shopify_sync.definitions" in workspace
