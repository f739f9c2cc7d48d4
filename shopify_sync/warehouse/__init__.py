"""The SQL warehouse: tables, migrations, ingest, sync_job / watermark accessors."""

from shopify_sync.warehouse import jobs
from shopify_sync.warehouse.engine import ensure_schema, make_engine
from shopify_sync.warehouse.ingest import ChunkProgress, IngestError, IngestResult, OrderChange, ingest_jsonl
from shopify_sync.warehouse.types import Money, UtcDateTime

__all__ = [
    "ChunkProgress", "IngestError", "IngestResult", "Money", "OrderChange", "UtcDateTime", "ensure_schema",
    "ingest_jsonl", "jobs", "make_engine",
]
