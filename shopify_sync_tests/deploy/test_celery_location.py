"""The Celery code location serves the project's definitions unchanged, with the Celery
executor; its load time (import plus ``Definitions``) is printed beside the quick start's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_PROBE = """
import json, sys, time
t0 = time.perf_counter()
import dagster  # noqa: F401 - dagster's own import cost, apart
t1 = time.perf_counter()
if sys.argv[1] == "celery":
    from dagster._core.code_pointer import load_python_file
    module = load_python_file(sys.argv[2], None)
else:
    import shopify_sync.definitions as module
defs = module.defs()
t2 = time.perf_counter()
graph = defs.resolve_asset_graph()
job = defs.resolve_job_def("shopify_sync_job")
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t0, "executor": job.executor_def.name,
                  "assets": sorted(k.to_user_string() for k in graph.get_all_asset_keys()),
                  "checks": sorted(k.name for k in graph.asset_check_keys)}))
"""


def _load(kind: str, tmp_path: Path) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOPIFY_", "DAGSTER_"))}
    env.update({"SHOPIFY_SYNC_HOME": str(tmp_path / "home"), "DAGSTER_CELERY_BROKER_URL": "redis://127.0.0.1:1/0",
                "DAGSTER_CELERY_BACKEND_URL": "redis://127.0.0.1:1/0"})
    proc = subprocess.run([sys.executable, "-c", _PROBE, kind, str(REPO / "deploy" / "celery_location.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_celery_location_is_the_project_with_the_celery_executor(tmp_path: Path) -> None:
    base, celery = _load("base", tmp_path), _load("celery", tmp_path)
    assert celery["executor"] == "celery"
    assert base["executor"] != "celery"
    assert (celery["assets"], celery["checks"]) == (base["assets"], base["checks"])
    # A figure for docs/benchmarks.md, never a pass/fail criterion (a shared CI machine's pace varies).
    for name, probe in (("shopify_sync.definitions", base), ("deploy/celery_location.py", celery)):
        print(f"definition load time {name}: {probe['load_s']:.2f} s (dagster import {probe['import_s']:.2f} s)")
