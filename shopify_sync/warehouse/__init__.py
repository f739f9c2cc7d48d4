"""The SQL warehouse: tables, migrations, ingest, sync_job / watermark accessors."""

from shopify_sync.warehouse.engine import ensure_schema, make_engine
from shopify_sync.warehouse.types import Money, UtcDateTime

__all__ = ["Money", "UtcDateTime", "ensure_schema", "make_engine"]
