"""The product catalog in the warehouse: ``product_variant``, ``product``'s catalog columns, ``catalog_state``.

    mapping (a JSONL line → rows) ─▶ run.ingest_catalog (chunked, resumable) ─▶ store (guarded upserts)
    reads: SKUs and stock for the measurements, the staff API and the checks

``catalog_state`` (the catalog's watermark per shop) is only read and written here;
the job ledger rows of catalog jobs (``sync_job``, job type CATALOG) go through ``warehouse.jobs``.
"""

from shopify_sync.warehouse.catalog.mapping import ProductRow, VariantRow, parse_line
from shopify_sync.warehouse.catalog.reads import (
    CatalogVariant,
    sku_owners,
    variant_counts,
    variant_skus,
    variants,
    variants_without_product,
)
from shopify_sync.warehouse.catalog.run import CatalogIngestResult, ingest_catalog
from shopify_sync.warehouse.catalog.store import (
    CatalogState,
    advance_state,
    catalog_title,
    get_state,
    mark_deleted,
    product_titles,
    refresh_product_stock,
    states,
)

__all__ = [
    "CatalogIngestResult", "CatalogState", "CatalogVariant", "ProductRow", "VariantRow", "advance_state", "catalog_title",
    "get_state", "ingest_catalog", "mark_deleted", "parse_line", "product_titles", "refresh_product_stock", "sku_owners", "states",
    "variant_counts", "variant_skus", "variants", "variants_without_product",
]
