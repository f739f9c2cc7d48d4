"""The one job every entry point runs: the whole asset graph plus its checks.

The schedule, Dagster backfills, the CLI and the staff API all launch this job (by the
name in ``launch.plan``), so a sync looks the same in the UI whoever started it.
"""

from __future__ import annotations

import dagster as dg

from shopify_sync.defs.assets.keys import CATALOG_GROUP, INGEST_GROUP, METRICS_GROUP
from shopify_sync.launch.plan import SYNC_JOB_NAME


def build_sync_job(partitions_def: dg.MultiPartitionsDefinition) -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        name=SYNC_JOB_NAME,
        selection=dg.AssetSelection.groups(INGEST_GROUP, CATALOG_GROUP, METRICS_GROUP),
        partitions_def=partitions_def,
        description="Fetch a shop's orders through a Shopify bulk operation, load the warehouse and "
        "recompute the sales measurements for the selected day(s).",
    )
