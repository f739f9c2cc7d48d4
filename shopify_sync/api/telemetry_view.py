"""The API's view of SYNC_TELEMETRY: ``telemetry``'s run summaries in the API's schema.

Only the most recent days are listed, so the cost of a request does not grow with
the age of the deployment; what a run's status is, is decided in ``telemetry.summary``.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

from shopify_sync.api.schemas import ErrorInfo, IngestRun
from shopify_sync.errors import ErrorSummary
from shopify_sync.storage import ObjectStore
from shopify_sync.telemetry import RunSummary, run_summaries
from shopify_sync.timeutil import utcnow


def parse_error(raw: str | None) -> ErrorInfo | None:
    """``{type, message}`` from a ``sync_job.last_error`` text (``Type: message``, or JSON)."""
    if raw is None or raw == "":
        return None
    try:
        parsed: object = json.loads(raw)
    except ValueError:
        typ, sep, msg = raw.partition(": ")
        if sep and typ.isidentifier():
            return ErrorInfo(type=typ, message=msg)
        return ErrorInfo(type=None, message=raw)
    if isinstance(parsed, dict):
        kind, text = parsed.get("type"), parsed.get("message")
        return ErrorInfo(type=str(kind) if kind is not None else None, message=str(text) if text is not None else None)
    return ErrorInfo(type=None, message=str(parsed))


def _error_info(error: ErrorSummary | None) -> ErrorInfo | None:
    if error is None:
        return None
    return ErrorInfo(type=error.type or None, message=error.message or None)


def ingest_run(summary: RunSummary) -> IngestRun:
    """One (run, shop) summary as ``/api/ingest/runs`` shows it."""
    return IngestRun(
        run_id=summary.run_id,
        shop=summary.shop,
        job_type=summary.job_type,
        initiator=summary.initiator,
        status=summary.state.value,
        last_step=summary.step,
        started_at=summary.started_at,
        updated_at=summary.updated_at,
        object_count=summary.object_count,
        error=_error_info(summary.error),
    )


def recent_runs(store: ObjectStore, *, days: int = 7, limit: int = 50, shop: str | None = None,
                today: date | None = None) -> list[IngestRun]:
    """Runs created in the last ``days`` UTC days, one entry per (run, shop), newest first.

    A ranged run may cover several shops; each shop's records are its own sequence
    of steps, so each gets its own status.
    """
    today = today or utcnow().date()
    summaries = run_summaries(store, limit, since=today - timedelta(days=days - 1), until=today, shop=shop,
                              per_shop=True)
    return [ingest_run(s) for s in summaries]
