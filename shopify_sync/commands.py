"""The ``shopify-sync`` commands (SPEC §7), behind the parser of ``shopify_sync.cli``.

``sync``, ``backfill`` and ``replay`` run the sync job in this process
(``launch.inprocess``), one run per shop, and report each; ``status`` reads the
warehouse and the instance; ``emulator`` and ``api`` serve; ``db`` migrates.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import TypedDict

from shopify_sync.config import ConfigError, Settings, load_settings
from shopify_sync.errors import summarize_error
from shopify_sync.failures import classify, failure_line, warehouse_setting
from shopify_sync.launch.inprocess import InProcessLauncher, replay_launches
from shopify_sync.launch.plan import Launch, backfill_launch, daily_launch, month_ranges
from shopify_sync.launch.progress import BackfillProgress, Piece
from shopify_sync.warehouse import make_engine


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 1."""


def _shops(settings: Settings, requested: list[str]) -> list[str]:
    for code in requested:
        settings.shop(code)  # raises ConfigError naming SHOPIFY_SHOPS for an unknown code
    return list(dict.fromkeys(requested)) or list(settings.shop_codes)


def _check_day(settings: Settings, day: date, what: str) -> None:
    first = date.fromisoformat(settings.start_date)
    today = datetime.now(UTC).date()
    if day < first:
        raise CliError(f"{what} {day} is before SHOPIFY_SYNC_START_DATE ({first}); no partition exists for it")
    if day > today:
        raise CliError(f"{what} {day} is in the future (today is {today} UTC)")
    if day == today:
        # Daily partitions exist once their day has ended (the schedule syncs "yesterday").
        raise CliError(f"{what} {day} is today (UTC): its partition opens at midnight UTC; "
                       f"the latest day you can sync is {today - timedelta(days=1)}")


def _run_all(settings: Settings, launches: list[Launch], verbose: bool = False,
             args: argparse.Namespace | None = None) -> int:
    """Run each launch one after another; report each; 0 only if all passed. With
    ``--launch``, queue them on the deployed instance instead (``launch.queued``)."""
    if args is not None and getattr(args, "launch", False):
        from shopify_sync.launch.queued import run_queued

        return run_queued(settings, launches, wait=args.wait)
    launcher = InProcessLauncher(settings, verbose=verbose)
    failures = 0
    for launch in launches:
        outcome = launcher.run(launch)
        if outcome.success:
            # A failed non-blocking check (a contained catalog failure) leaves the run a success:
            # say it on the same line, so an operator reading only the CLI still sees it.
            warning = f"  WARNING {'; '.join(outcome.warnings)}" if outcome.warnings else ""
            print(f"ok      {launch.label}  run {outcome.run_id}{warning}")
        else:
            failures += 1
            print(f"FAILED  {launch.label}  run {outcome.run_id}: {outcome.error}", file=sys.stderr)
    return 0 if failures == 0 else 1


def cmd_sync(settings: Settings, args: argparse.Namespace) -> int:
    day = args.date or (datetime.now(UTC).date() - timedelta(days=1))
    _check_day(settings, day, "--date")
    full = bool(getattr(args, "full_catalog", False))
    return _run_all(settings, [daily_launch(code, day, full_catalog=full) for code in _shops(settings, args.shop)],
                    args.verbose, args)


def cmd_backfill(settings: Settings, args: argparse.Namespace) -> int:
    if args.end < args.start:
        raise CliError(f"--end {args.end} is before --start {args.start}")
    _check_day(settings, args.start, "--start")
    _check_day(settings, args.end, "--end")
    shops = _shops(settings, args.shop)
    if getattr(args, "launch", False):
        # Bounded runs on a deployed instance too; its per-shop run limit keeps a shop's months in turn.
        return _run_all(settings, [backfill_launch(code, first, last) for code in shops
                                   for first, last in month_ranges(args.start, args.end)], args.verbose, args)
    return _run_backfill(settings, shops, args.start, args.end, args.verbose)


def _run_backfill(settings: Settings, shops: list[str], start: date, end: date, verbose: bool = False) -> int:
    """A month per run (a range of up to 31 days in one), shop after shop, a line per run; a
    shop stops at its first failed run (a re-run resumes there: the unfinished sync_job of
    that month is continued)."""
    by_shop = {shop: [Piece(shop, first, last) for first, last in month_ranges(start, end)] for shop in shops}
    progress = BackfillProgress([piece for pieces in by_shop.values() for piece in pieces], sys.stdout)
    progress.plan(start, end, shops)  # before Dagster builds anything: the first line comes at once
    launcher = InProcessLauncher(settings, verbose=verbose)
    failed: list[str] = []
    for shop, pieces in by_shop.items():
        for index, piece in enumerate(pieces):
            launch = backfill_launch(shop, piece.first, piece.last)
            began = time.monotonic()
            outcome = launcher.run(launch)
            progress.run_ended(piece, launch.label, outcome.run_id, outcome.rows if outcome.success else None,
                               time.monotonic() - began)
            if not outcome.success:
                progress.skipped(pieces[index + 1:])
                failed.append(f"FAILED  {launch.label}  run {outcome.run_id}: {outcome.error} (re-run: "
                              f"shopify-sync backfill --shop {shop} --start {piece.first} --end {end})")
                break
    print(progress.summary(len(failed)), flush=True)
    for line in failed:
        print(line, file=sys.stderr)
    return 0 if not failed else 1


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    launches = replay_launches(settings, args.run_id)
    if not launches:
        raise CliError(f"no archived raw file for run {args.run_id!r} (see `shopify-sync status` for run ids)")
    return _run_all(settings, launches, args.verbose, args)


def _naming_setting(exc: Exception) -> CliError:
    """A warehouse or store failure as one line naming the variable to fix."""
    return CliError(failure_line(exc, classify(exc).setting or warehouse_setting()))


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    launcher = InProcessLauncher(settings)
    try:
        table = launcher.status()
    except Exception as exc:
        raise _naming_setting(exc) from exc
    print(table)
    return 0


class _EmulatorOptions(TypedDict, total=False):
    token: str
    orders: int
    seed: int


def cmd_emulator(settings: Settings, args: argparse.Namespace) -> int:
    # Only what was given: the emulator's own defaults apply to the rest.
    options = _EmulatorOptions()
    if args.token is not None:
        options["token"] = args.token
    if args.orders is not None:
        options["orders"] = args.orders
    if args.seed is not None:
        options["seed"] = args.seed
    # Imported here: every other command would pay for loading the emulator (0.15 s).
    from shopify_sync.emulator import serve as serve_emulator

    serve_emulator(host=args.host, port=args.port, **options)
    return 0


def cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    # Lazy: FastAPI, uvicorn and the analytics views cost about a second of import that
    # every sync and backfill would pay before it can fail fast (issue 14, SPEC §7).
    from shopify_sync.api.app import serve as serve_api

    serve_api(args.host, args.port)
    return 0


def cmd_db(settings: Settings, args: argparse.Namespace) -> int:
    try:
        engine = make_engine(settings.database_url)  # migrates to head
    except Exception as exc:
        raise _naming_setting(exc) from exc
    engine.dispose()
    print(f"warehouse schema is at head ({engine.url.render_as_string(hide_password=True)})")
    return 0


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "sync": cmd_sync,
    "backfill": cmd_backfill,
    "replay": cmd_replay,
    "status": cmd_status,
    "emulator": cmd_emulator,
    "api": cmd_api,
    "db": cmd_db,
}


def run(args: argparse.Namespace) -> int:
    """Run the parsed command; its exit code. Errors are one line on stderr."""
    try:
        settings = load_settings()
        return COMMANDS[args.command](settings, args)
    except (ConfigError, CliError) as exc:
        _print_traceback(args)
        print(f"shopify-sync: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    except KeyboardInterrupt:
        print("shopify-sync: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the operator gets one line (a traceback only with --verbose)
        _print_traceback(args)
        print(f"shopify-sync: error: {summarize_error(exc).one_line()}", file=sys.stderr)
        return 1


def _print_traceback(args: argparse.Namespace) -> None:
    if getattr(args, "verbose", False):
        traceback.print_exc(file=sys.stderr)
