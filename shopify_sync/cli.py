"""``shopify-sync``: the operator's command line (SPEC §7).

Every data command runs the same Dagster job as the schedule and the UI, in this
process, against the ``DAGSTER_HOME`` instance (default
``$SHOPIFY_SYNC_HOME/dagster_home``), so its runs show in the UI. Exit code 0 only
on success; otherwise one clear line on stderr, no traceback. The commands are in
``shopify_sync.commands``; this module is the parser.
"""

from __future__ import annotations

import argparse
import atexit
import os
import re
import sys
import threading
from collections.abc import Sequence
from datetime import date
from typing import NoReturn

_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


class _Parser(argparse.ArgumentParser):
    """A usage error is one line on stderr and exit code 2, like a configuration error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parse_date(raw: str) -> date:
    # Strict: Python's fromisoformat also takes 20261201 and 2026-W48-1, which the help does not promise.
    try:
        if _ISO_DAY.fullmatch(raw):
            return date.fromisoformat(raw)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {raw!r}")


def _parse_port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {raw!r}") from None
    if not 0 <= port <= 65535:
        # The socket layer would silently take it modulo 65536.
        raise argparse.ArgumentTypeError(f"port must be 0..65535, got {port}")
    return port


def _add_launch_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--launch", action="store_true",
                   help="queue the runs on the deployed instance (webserver at SHOPIFY_SYNC_DAGSTER_URL, "
                        "daemon and run launcher) instead of running them in this process")
    p.add_argument("--wait", action="store_true",
                   help="with --launch: follow the runs to the end; exit code and outcome lines as in-process")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="shopify-sync", description="Shopify orders → warehouse → sales metrics, via Dagster.")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="on failure, also show Dagster's log records and the stack trace")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("sync", help="daily incremental sync (watermark window) for one day, every shop by default")
    s.add_argument("--shop", action="append", default=[], metavar="CODE", help="shop code (repeatable); default: all")
    s.add_argument("--date", type=_parse_date, default=None, metavar="D",
                   help="partition day (YYYY-MM-DD, UTC); default: the day just ended")
    s.add_argument("--full-catalog", action="store_true",
                   help="refetch every product variant (not only those changed since the catalog watermark) and "
                   "mark the variants Shopify no longer has as deleted")

    b = sub.add_parser("backfill", help="orders created in [start, end] (inclusive), every shop by default")
    b.add_argument("--start", type=_parse_date, required=True, metavar="D")
    b.add_argument("--end", type=_parse_date, required=True, metavar="D")
    b.add_argument("--shop", action="append", default=[], metavar="CODE")

    r = sub.add_parser("replay", help="re-parse the raw JSONL archived by a past run, without Shopify")
    r.add_argument("--run-id", required=True, metavar="ID")

    for command in (s, b, r):
        _add_launch_options(command)

    sub.add_parser("status", help="per shop: watermark and last runs")

    e = sub.add_parser("emulator", help="serve the bundled Shopify emulator (prints its base URL)")
    e.add_argument("--host", default="127.0.0.1")
    e.add_argument("--port", type=_parse_port, default=0, help="0 = any free port")
    e.add_argument("--token", default=None, help="access token the emulator accepts")
    e.add_argument("--orders", type=int, default=None, help="orders per shop")
    e.add_argument("--seed", type=int, default=None)

    a = sub.add_parser("api", help="serve the staff HTTP API")
    a.add_argument("--host", default="127.0.0.1")
    a.add_argument("--port", type=_parse_port, default=8000)

    d = sub.add_parser("db", help="warehouse schema")
    dsub = d.add_subparsers(dest="db_command", required=True, metavar="SUBCOMMAND")
    dsub.add_parser("upgrade", help="apply migrations up to head")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "wait", False) and not args.launch:
        parser.error("--wait needs --launch (an in-process run always runs to the end)")
    # The one lazy import: the commands need Dagster, SQLAlchemy and FastAPI, whose import
    # `--help` and a usage error should not wait for (docs/benchmarks.md).
    from shopify_sync import commands

    return commands.run(args)


def entry() -> NoReturn:
    """The ``shopify-sync`` command: ``main``, then a quick exit.

    A normal exit frees every module and object the run loaded (Dagster, polars,
    SQLAlchemy) one by one: 0.7-0.9 s after the outcome is printed, a tenth of a daily
    sync (docs/benchmarks.md, session 15). What an exit must do still happens, in the
    interpreter's order: other threads are joined, atexit handlers run (logging's flush,
    temporary files), and the output is flushed. An exception leaves the normal way.
    """
    code = main()
    # Private, but what the interpreter itself calls on exit; elsewhere, the normal exit.
    join_threads = getattr(threading, "_shutdown", None)
    run_atexit = getattr(atexit, "_run_exitfuncs", None)
    if join_threads is None or run_atexit is None:
        sys.exit(code)
    join_threads()
    run_atexit()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing left to save
            pass
    os._exit(code)


if __name__ == "__main__":
    entry()
