"""``shopify-sync``: the operator's command line (SPEC §7).

Every data command runs the same Dagster job as the schedule and the UI, in this
process, against the ``DAGSTER_HOME`` instance (default
``$SHOPIFY_SYNC_HOME/dagster_home``), so its runs show in the UI. Exit code 0 only
on success; otherwise one clear line on stderr, no traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from shopify_sync.config import ConfigError, Settings, load_settings
from shopify_sync.errors import summarize_error

if TYPE_CHECKING:
    import dagster as dg


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 1."""


def _parse_date(raw: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {raw!r}") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="shopify-sync", description="Shopify orders → warehouse → sales metrics, via Dagster.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("sync", help="daily incremental sync (watermark window) for one day, every shop by default")
    s.add_argument("--shop", action="append", default=[], metavar="CODE", help="shop code (repeatable); default: all")
    s.add_argument("--date", type=_parse_date, default=None, metavar="D",
                   help="partition day (YYYY-MM-DD, UTC); default: the day just ended")

    b = sub.add_parser("backfill", help="orders created in [start, end] (inclusive), every shop by default")
    b.add_argument("--start", type=_parse_date, required=True, metavar="D")
    b.add_argument("--end", type=_parse_date, required=True, metavar="D")
    b.add_argument("--shop", action="append", default=[], metavar="CODE")

    r = sub.add_parser("replay", help="re-parse the raw JSONL archived by a past run, without Shopify")
    r.add_argument("--run-id", required=True, metavar="ID")

    sub.add_parser("status", help="per shop: watermark and last runs")

    e = sub.add_parser("emulator", help="serve the bundled Shopify emulator (prints its base URL)")
    e.add_argument("--host", default="127.0.0.1")
    e.add_argument("--port", type=int, default=0, help="0 = any free port")
    e.add_argument("--token", default=None, help="access token the emulator accepts")
    e.add_argument("--orders", type=int, default=None, help="orders per shop")
    e.add_argument("--seed", type=int, default=None)

    a = sub.add_parser("api", help="serve the staff HTTP API")
    a.add_argument("--host", default="127.0.0.1")
    a.add_argument("--port", type=int, default=8000)

    d = sub.add_parser("db", help="warehouse schema")
    dsub = d.add_subparsers(dest="db_command", required=True, metavar="SUBCOMMAND")
    dsub.add_parser("upgrade", help="apply migrations up to head")
    return p


def dagster_home(settings: Settings) -> Path:
    """``DAGSTER_HOME`` if set, else ``$SHOPIFY_SYNC_HOME/dagster_home`` (created)."""
    raw = os.environ.get("DAGSTER_HOME", "").strip()
    home = Path(raw).expanduser().absolute() if raw else settings.home / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        # The project's instance config (per-shop run limit, run monitoring) when running
        # from a checkout; otherwise at least keep Dagster's usage telemetry off.
        shipped = Path(__file__).resolve().parents[1] / "dagster.yaml"
        config.write_text(shipped.read_text() if shipped.is_file() else "telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _instance(settings: Settings) -> dg.DagsterInstance:
    import dagster as dg

    dagster_home(settings)
    return dg.DagsterInstance.get()


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


def _run_all(settings: Settings, launches: list[tuple[str, dict[str, str], str | None]]) -> int:
    """Run each (label, tags, partition_key) one after another; report each; 0 only if all passed."""
    from shopify_sync.defs.runner import run_sync_job

    instance = _instance(settings)
    failures = 0
    for label, tags, pkey in launches:
        outcome = run_sync_job(settings, instance, tags=tags, partition_key=pkey)
        if outcome.success:
            print(f"ok      {label}  run {outcome.run_id}")
        else:
            failures += 1
            print(f"FAILED  {label}  run {outcome.run_id}: {outcome.error}", file=sys.stderr)
    return 0 if failures == 0 else 1


def cmd_sync(settings: Settings, args: argparse.Namespace) -> int:
    from shopify_sync.defs.runner import daily_launch

    day = args.date or (datetime.now(UTC).date() - timedelta(days=1))
    _check_day(settings, day, "--date")
    return _run_all(settings, [daily_launch(code, day) for code in _shops(settings, args.shop)])


def cmd_backfill(settings: Settings, args: argparse.Namespace) -> int:
    from shopify_sync.defs.runner import backfill_launch

    if args.end < args.start:
        raise CliError(f"--end {args.end} is before --start {args.start}")
    _check_day(settings, args.start, "--start")
    _check_day(settings, args.end, "--end")
    return _run_all(settings, [backfill_launch(code, args.start, args.end) for code in _shops(settings, args.shop)])


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    from shopify_sync.defs.runner import replay_launches

    launches = replay_launches(settings, args.run_id)
    if not launches:
        raise CliError(f"no archived raw file for run {args.run_id!r} (see `shopify-sync status` for run ids)")
    return _run_all(settings, launches)


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    from shopify_sync.defs.runner import status_table

    print(status_table(settings, _instance(settings)))
    return 0


def cmd_emulator(settings: Settings, args: argparse.Namespace) -> int:
    try:
        from shopify_sync.emulator import serve
    except ImportError as exc:
        raise CliError(f"the bundled emulator is not available: {exc}") from None
    kwargs: dict[str, object] = {"host": args.host, "port": args.port}
    for name in ("token", "orders", "seed"):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    serve(**kwargs)
    return 0


def cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    try:
        from shopify_sync.api.app import serve
    except ImportError as exc:
        raise CliError(f"the staff API is not available: {exc}") from None
    serve(args.host, args.port)
    return 0


def cmd_db(settings: Settings, args: argparse.Namespace) -> int:
    from shopify_sync.warehouse import ensure_schema, make_engine

    engine = make_engine(settings.database_url)
    try:
        ensure_schema(engine)
    finally:
        engine.dispose()
    print(f"warehouse schema is at head ({engine.url.render_as_string(hide_password=True)})")
    return 0


_COMMANDS = {
    "sync": cmd_sync,
    "backfill": cmd_backfill,
    "replay": cmd_replay,
    "status": cmd_status,
    "emulator": cmd_emulator,
    "api": cmd_api,
    "db": cmd_db,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        return _COMMANDS[args.command](settings, args)
    except (ConfigError, CliError) as exc:
        print(f"shopify-sync: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    except KeyboardInterrupt:
        print("shopify-sync: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the operator gets one line, never a traceback
        print(f"shopify-sync: error: {summarize_error(exc).one_line()}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
