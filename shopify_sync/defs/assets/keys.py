"""The asset graph's names, decided once (assets, checks and the job refer to these)."""

from __future__ import annotations

import dagster as dg

INGEST_GROUP = "shopify_ingest"
METRICS_GROUP = "shopify_metrics"
CATALOG_GROUP = "shopify_catalog"
OWNERS = ["team:data"]

RAW_KEY = dg.AssetKey("shopify_bulk_jsonl")
ORDER_HEADER = dg.AssetKey("order_header")
ORDER_LINE_ITEM = dg.AssetKey("order_line_item")
ORDER_REFUND = dg.AssetKey("order_refund")
ORDER_TABLES = (ORDER_HEADER, ORDER_LINE_ITEM, ORDER_REFUND)
PRODUCT = dg.AssetKey("product")
SALES = dg.AssetKey("measurement_sales")
PERFORMANCE = dg.AssetKey("measurement_performance")
CATALOG_RAW_KEY = dg.AssetKey("shopify_catalog_jsonl")
PRODUCT_VARIANT = dg.AssetKey("product_variant")

WATERMARK_CHECK = "watermark_not_regressed"

# The client already retries individual requests (429, 5xx, THROTTLED) and resubmits
# FAILED operations a bounded number of times; this step-level policy only covers
# what escapes it (poll budget exhausted, a dropped connection mid-download). A
# retried attempt re-polls the stored operation id, so it never pays for a new job.
# What a retry cannot help (configuration, an unusable warehouse or store, a rejected
# token) never reaches it: ``defs.run_context.asset_step`` fails those without retries.
SHOPIFY_RETRY = dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
