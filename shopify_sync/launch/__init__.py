"""Starting sync runs: what a run is (``plan``, no Dagster import) and running one in this
process (``inprocess``, the CLI's way). The API launches through the Dagster webserver
(``shopify_sync.api.launcher``) from the same plan."""
