"""Telemetry streams in the object store (SPEC §6).

- ``records``: SYNC_TELEMETRY, one JSON object per step record of a run (the writer);
- ``readers``: the records of a run, or of every run since a day;
- ``summary``: a run's state from its records, decided once (API, checks, CLI);
- ``commerce``: COMMERCE_TELEMETRY, one JSON line per order event of a run.
"""

from shopify_sync.telemetry.commerce import COMMERCE_EVENTS, read_commerce_events, write_commerce_events
from shopify_sync.telemetry.readers import list_sync_records, read_sync_records
from shopify_sync.telemetry.records import RECORD_FIELDS, RecordFields, SyncRecord, SyncTelemetry, error_info
from shopify_sync.telemetry.summary import (
    RunState,
    RunSummary,
    has_completed,
    run_state,
    run_summaries,
    summarise_run,
)

__all__ = [
    "COMMERCE_EVENTS",
    "RECORD_FIELDS",
    "RecordFields",
    "RunState",
    "RunSummary",
    "SyncRecord",
    "SyncTelemetry",
    "error_info",
    "has_completed",
    "list_sync_records",
    "read_commerce_events",
    "read_sync_records",
    "run_state",
    "run_summaries",
    "summarise_run",
    "write_commerce_events",
]
