"""The one job every entry point runs: the whole asset graph plus its checks.

The schedule, Dagster backfills, the CLI and the staff API all launch this job, so a
sync looks the same in the UI whoever started it.
"""

from __future__ import annotations

import dagster as dg

SYNC_JOB_NAME = "shopify_sync_job"


def build_sync_job(partitions_def: dg.MultiPartitionsDefinition) -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        name=SYNC_JOB_NAME,
        selection=dg.AssetSelection.groups("shopify_ingest", "shopify_metrics"),
        partitions_def=partitions_def,
        description="Fetch a shop's orders through a Shopify bulk operation, load the warehouse and "
        "recompute the sales measurements for the selected day(s).",
    )
