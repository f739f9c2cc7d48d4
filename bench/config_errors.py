"""How fast, and in how many lines, the real console command fails on each configuration or
infrastructure error of issue 14 (points 1-5). Target (SPEC §7, issue 14): nonzero exit in
under 15 s with at most 3 stderr lines naming what to fix. Each case is a fresh process (the
import of Dagster included, as an operator meets it). Prints one JSON line per case and a
table; exit code 1 when a case misses the target. Needs the test servers for the MariaDB and
PostgreSQL cases (SHOPIFY_SYNC_TEST_MYSQL_URL / _POSTGRES_URL, defaults as in the tests).

    .venv/bin/python bench/config_errors.py
    .venv/bin/python bench/config_errors.py --case "unknown shop code"
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
MYSQL_URL = os.environ.get("SHOPIFY_SYNC_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
POSTGRES_URL = os.environ.get("SHOPIFY_SYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
YESTERDAY = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
SYNC = ("sync", "--date", YESTERDAY)
DB, STORE, HOME = "SHOPIFY_SYNC_DATABASE_URL", "SHOPIFY_SYNC_STORAGE_URL", "SHOPIFY_SYNC_HOME"
TARGET_SECONDS = 15.0
TARGET_LINES = 3

# case: (argv, environment on top of a valid one ("{tmp}": a scratch directory), exit code, named)
CASES: dict[str, tuple[tuple[str, ...], dict[str, str], int, str]] = {
    "wrong warehouse password (MariaDB)": (
        SYNC, {DB: make_url(MYSQL_URL).set(password="wrong-pass").render_as_string(hide_password=False)}, 1, DB),
    "unknown database (PostgreSQL)": (
        SYNC, {DB: make_url(POSTGRES_URL).set(database="ss_no_such_db").render_as_string(hide_password=False)},
        1, DB),
    "unreachable warehouse": (SYNC, {DB: "postgresql+psycopg://nobody@127.0.0.1:1/x"}, 1, DB),
    "SHOPIFY_SYNC_HOME is a file": (SYNC, {HOME: "{tmp}/a_file"}, 2, HOME),
    "object store URL is a file": (SYNC, {STORE: "file://{tmp}/a_file"}, 1, STORE),
    "object store down (S3 endpoint refuses)": (
        SYNC, {STORE: "s3://bucket/objs", "SHOPIFY_SYNC_S3_ENDPOINT_URL": "http://127.0.0.1:1",
               "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}, 1, STORE),
    "relative file:// store URL": (SYNC, {STORE: "file://relative/objs"}, 2, STORE),
    "database driver not installed": (SYNC, {DB: "mysql+mysqldb://root@127.0.0.1/test"}, 2, DB),
    "unknown shop code": (("sync", "--shop", "NOPE", "--date", YESTERDAY), {}, 2, "SHOPIFY_SHOPS"),
    "missing shop token": (SYNC, {"SHOPIFY_DA_STORE": "da-shop.myshopify.com"}, 2, "SHOPIFY_DA_TOKEN"),
    "api --port 70000": (("api", "--port", "70000"), {"SHOPIFY_SYNC_API_TOKEN": "t"}, 2, "--port"),
    "sync --date 2026-W48-1": (("sync", "--date", "2026-W48-1"), {}, 2, "--date"),
    "sync --date 20261201": (("sync", "--date", "20261201"), {}, 2, "--date"),
    "replay --run-id %": (("replay", "--run-id", "%"), {}, 1, "no archived raw file"),
}


@dataclass(frozen=True)
class Result:
    case: str
    rc: int
    seconds: float
    stderr: str

    @property
    def lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.strip()]


def run_case(case: str, workdir: Path) -> Result:
    """One case in a fresh process, with a valid configuration around the broken setting."""
    argv, extra, _, _ = CASES[case]
    (workdir / "a_file").write_text("not a directory")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOPIFY_", "DAGSTER_", "AWS_"))}
    env.update({"SHOPIFY_SHOPS": "DA", "SHOPIFY_DA_STORE": "emulator", HOME: str(workdir / "home")})
    env.update({k: v.replace("{tmp}", str(workdir)) for k, v in extra.items()})
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "shopify_sync.cli", *argv], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    return Result(case, proc.returncode, time.monotonic() - started, proc.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", choices=list(CASES), help="only these cases")
    args = parser.parse_args()
    missed = 0
    for case in args.case or list(CASES):
        with tempfile.TemporaryDirectory(prefix="ss_config_errors_") as tmp:
            result = run_case(case, Path(tmp))
        ok = (result.rc == CASES[case][2] and result.seconds < TARGET_SECONDS
              and 1 <= len(result.lines) <= TARGET_LINES and CASES[case][3] in result.stderr)
        missed += not ok
        print(json.dumps({"bench": "config_errors", "case": case, "rc": result.rc,
                          "seconds": round(result.seconds, 2), "stderr_lines": len(result.lines),
                          "within_target": ok}), flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
