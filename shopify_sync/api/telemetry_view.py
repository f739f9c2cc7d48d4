"""Read-side of the SYNC_TELEMETRY stream for the API (SPEC §6 layout).

Records live at ``telemetry/sync/date=<D>/<run_id>/<seq>-<step>.json``; a run's status
is its last record. Only the most recent days are listed, so the cost of a request
does not grow with the age of the deployment.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

from shopify_sync.api.deps import as_utc
from shopify_sync.api.schemas import ErrorInfo, IngestRun

log = logging.getLogger(__name__)

TERMINAL_STEPS = ("completed", "failed")


def parse_error(raw: Any) -> ErrorInfo | None:
    """``{type, message}`` from a telemetry dict or a ``sync_job.last_error`` text (JSON or plain)."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            typ, sep, msg = raw.partition(": ")
            if sep and typ.isidentifier():
                return ErrorInfo(type=typ, message=msg)
            return ErrorInfo(type=None, message=raw)
    if isinstance(raw, dict):
        typ, msg = raw.get("type"), raw.get("message")
        return ErrorInfo(type=str(typ) if typ is not None else None, message=str(msg) if msg is not None else None)
    return ErrorInfo(type=None, message=str(raw))


def _parse_ts(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return as_utc(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    except ValueError:
        return None


def summarise(run_id: str, records: list[dict[str, Any]]) -> IngestRun:
    """Fold one run's records (in seq order) into its current state."""
    first, last = records[0], records[-1]

    def latest(field: str) -> Any:
        for rec in reversed(records):
            if rec.get(field) is not None:
                return rec[field]
        return None

    last_step = last.get("step")
    if last_step in TERMINAL_STEPS:
        status = last_step
    elif last.get("status") == "failed":
        status = "failed"
    else:
        status = "running"
    error = None
    for rec in reversed(records):
        if rec.get("error"):
            error = parse_error(rec["error"])
            break
    object_count = latest("object_count")
    return IngestRun(
        run_id=run_id,
        shop=latest("shop"),
        job_type=latest("job_type"),
        initiator=latest("initiator"),
        status=status,
        last_step=last_step,
        started_at=_parse_ts(first.get("process_initiated_at")) or _parse_ts(first.get("at")),
        updated_at=_parse_ts(last.get("at")),
        object_count=object_count if isinstance(object_count, int) and not isinstance(object_count, bool) else None,
        error=error if status == "failed" else None,
    )


def recent_runs(store: Any, *, days: int = 7, limit: int = 50, shop: str | None = None,
                today: date | None = None) -> list[IngestRun]:
    """Runs created in the last ``days`` UTC days, one entry per (run, shop), newest first.

    A ranged run may cover several shops; each shop's records are its own sequence
    of steps, so each gets its own status.
    """
    from shopify_sync.storage import parse_sync_telemetry_key, sync_telemetry_prefix

    today = today or datetime.now(UTC).date()
    runs: list[IngestRun] = []
    # Newest day first; a run lives in the folder of the day it was created, so once a
    # whole day has been read and the limit is reached, older days cannot matter.
    for i in range(days):
        by_run: dict[str, list[tuple[int, str]]] = {}
        for key in store.list_keys(sync_telemetry_prefix(today - timedelta(days=i))):
            parsed = parse_sync_telemetry_key(key)
            if parsed is not None:
                by_run.setdefault(parsed[1], []).append((parsed[2], key))
        for run_id, keys in by_run.items():
            by_shop: dict[str | None, list[dict[str, Any]]] = {}
            for _, key in sorted(keys):
                try:
                    rec = json.loads(store.get_bytes(key))
                except (ValueError, KeyError, FileNotFoundError) as exc:
                    # A half-written or foreign object must not take the endpoint down.
                    log.warning("skipping unreadable telemetry record %s: %s", key, type(exc).__name__)
                    continue
                if isinstance(rec, dict):
                    by_shop.setdefault(rec.get("shop"), []).append(rec)
            for rec_shop, records in by_shop.items():
                if shop is None or rec_shop == shop:
                    runs.append(summarise(run_id, records))
        if len(runs) >= limit:
            break
    runs.sort(key=lambda r: r.shop or "")  # ties (one ranged run, several shops) by shop code
    runs.sort(key=lambda r: (r.started_at or r.updated_at or datetime.min.replace(tzinfo=UTC), r.run_id),
              reverse=True)
    return runs[:limit]
