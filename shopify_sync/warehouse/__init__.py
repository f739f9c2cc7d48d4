"""The SQL warehouse: tables, migrations, ingest, sync_job / watermark accessors."""

from shopify_sync.warehouse import jobs
from shopify_sync.warehouse.engine import ensure_schema, make_engine
from shopify_sync.warehouse.ingest import (
    ChunkProgress,
    IngestError,
    IngestResult,
    OrderChange,
    delete_job_changes,
    ingest_jsonl,
    iter_job_change_frames,
    iter_job_changes,
    restart_job_ingest,
)
from shopify_sync.warehouse.types import Money, UtcDateTime

__all__ = [
    "ChunkProgress", "IngestError", "IngestResult", "Money", "OrderChange", "UtcDateTime", "delete_job_changes",
    "ensure_schema", "ingest_jsonl", "iter_job_change_frames", "iter_job_changes", "jobs", "make_engine", "restart_job_ingest",
]
