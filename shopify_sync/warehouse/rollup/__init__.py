"""``measurement_day_sum``: the counted lines' daily sums, kept by the ingest, read by the restatement.

``maintain`` keeps the table (chunk by chunk, or a rebuild from the lines), ``read``
gives the per-day frames the measurements are summed from, ``lines`` is what both share.
"""

from shopify_sync.warehouse.rollup.maintain import apply, lock_shop, mismatched_rows, rebuild, rebuild_days

__all__ = ["apply", "lock_shop", "mismatched_rows", "rebuild", "rebuild_days"]
