"""The asset graph of SPEC §1, built for one partitions definition.

    shopify_bulk_jsonl ─▶ order_header / order_line_item / order_refund ─▶ product
    shopify_catalog_jsonl ─▶ product_variant ─────────────────────────────┘
                                                              └─▶ measurement_sales ─▶ measurement_performance

The bodies are module-level functions by domain (``ingest``, ``metrics``; names in
``keys``); the builders apply ``dg.asset`` / ``dg.multi_asset`` here because the
partitions (day × configured shops) are only known once the settings are. Every
asset has the same backfill policy (``defs.partitions.BACKFILL_POLICY``), and every
body also runs a whole range of days in one run (the CLI's month per run).
"""

from __future__ import annotations

import dagster as dg

from shopify_sync.defs.assets.catalog import build_catalog_assets
from shopify_sync.defs.assets.ingest import build_ingest_assets
from shopify_sync.defs.assets.metrics import build_metric_assets
from shopify_sync.defs.partitions import BACKFILL_POLICY


def build_assets(partitions_def: dg.MultiPartitionsDefinition) -> list[dg.AssetsDefinition]:
    return [*build_ingest_assets(partitions_def, BACKFILL_POLICY),
            *build_catalog_assets(partitions_def, BACKFILL_POLICY),
            *build_metric_assets(partitions_def, BACKFILL_POLICY)]
