"""Bulk JSONL → ``order_header`` / ``order_line_item`` / ``order_refund``: chunked, resumable, idempotent.

One module per concern, in the order a chunk goes through them:

- ``read``: the file in chunks of whole lines, parsed by pyarrow in a prefetch thread;
- ``mapping``: pure polars, the three tables' frames and every validation;
- ``decide``: the stored versions, which orders apply, the change records;
- ``write``: the chunk's transaction and its retries (``upsert``: the per-backend writers);
- ``change_store``: the change records in ``sync_job_changes``, committed with their chunk;
- ``run``: ``ingest_jsonl``, the loop over them.

Orders with no stored row yet (a first load: all of them) are written with the
backend's plain bulk insert, the rest with guarded upserts ("never older"), so an older
file changes nothing and a concurrent writer cannot regress a row either.
"""

from shopify_sync.warehouse.ingest.change_store import (
    delete_job_changes,
    iter_job_change_frames,
    iter_job_changes,
    restart_job_ingest,
)
from shopify_sync.warehouse.ingest.model import ChunkProgress, IngestError, IngestResult, OrderChange
from shopify_sync.warehouse.ingest.read import JSONL_SCHEMA
from shopify_sync.warehouse.ingest.run import ingest_jsonl

__all__ = [
    "ChunkProgress", "IngestError", "IngestResult", "JSONL_SCHEMA", "OrderChange", "delete_job_changes",
    "ingest_jsonl", "iter_job_change_frames", "iter_job_changes", "restart_job_ingest",
]
