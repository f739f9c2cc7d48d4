"""What the staff API shows of the product catalog: freshness per shop, and a line's current variant."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from shopify_sync.api import telemetry_view
from shopify_sync.api.schemas import CatalogFreshness, CatalogJob, LineItem
from shopify_sync.vocab import Mode
from shopify_sync.warehouse import catalog, jobs


def freshness(engine: sa.Engine, shops: Sequence[str], now: datetime) -> dict[str, CatalogFreshness]:
    states = catalog.states(engine, shops)
    counts = catalog.variant_counts(engine, shops)
    unfinished = Counter(j.shop for j in jobs.open_jobs(engine, shops) if j.job_type is Mode.CATALOG)
    out = {}
    for shop in shops:
        st, (variants, deleted) = states[shop], counts[shop]
        out[shop] = CatalogFreshness(
            shop=shop, watermark_at=st.watermark_at, full_refresh_at=st.full_refresh_at, synced_at=st.updated_at,
            lag_seconds=max(0.0, round((now - st.updated_at).total_seconds(), 3)) if st.updated_at else None,
            variants=variants, deleted_variants=deleted,
            last_job=_job(jobs.latest_job_of_shop(engine, shop, catalog=True)), open_jobs=unfinished[shop])
    return out


def _job(job: jobs.SyncJob | None) -> CatalogJob | None:
    if job is None:
        return None
    return CatalogJob(run_id=job.run_id, partition_key=job.partition_key, status=job.status.value,
                      full_refresh=job.window_start is None, updated_at=job.updated_at,
                      error=telemetry_view.parse_error(job.last_error))


def with_catalog(engine: sa.Engine, shop: str, lines: list[LineItem]) -> list[LineItem]:
    """The lines with their variant's current SKU, stock and deletion flag from the catalog."""
    known = catalog.variants(engine, shop, [li.variant_id for li in lines if li.variant_id is not None])
    out = []
    for li in lines:
        v = known.get(li.variant_id) if li.variant_id is not None else None
        if v is None:
            out.append(li)
        else:
            out.append(li.model_copy(update={"catalog_sku": v.sku, "inventory_quantity": v.inventory_quantity,
                                             "variant_deleted": v.deleted}))
    return out
