"""``ObjectStoreResource``: the object store as a Dagster resource."""

from __future__ import annotations

import dagster as dg
from pydantic import PrivateAttr

from shopify_sync.storage.object_store import ObjectStore, open_store


class ObjectStoreResource(dg.ConfigurableResource):
    """Where raw archives, measurements and telemetry live (``SHOPIFY_SYNC_STORAGE_URL``).

    ``url`` is ``file:///abs/path`` or ``s3://bucket/prefix``; ``s3_endpoint_url`` points
    at R2 / MinIO. S3 credentials are read by boto3 from the standard AWS variables
    when first needed, so they never appear in the resource config or run metadata.
    """

    url: str
    s3_endpoint_url: str | None = None

    _store: ObjectStore | None = PrivateAttr(default=None)

    def get_store(self) -> ObjectStore:
        # One store (and one boto3 client) per resource instance: clients are
        # expensive to build and safe to share across threads.
        if self._store is None:
            self._store = open_store(self.url, endpoint_url=self.s3_endpoint_url)
        return self._store
