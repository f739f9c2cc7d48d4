"""Object store (SPEC §6): local folder or S3-compatible bucket, and the key layout."""

from shopify_sync.storage.keys import (
    InvalidKeyError,
    commerce_telemetry_key,
    measurement_days,
    measurement_prefix,
    parse_sync_telemetry_key,
    performance_key,
    raw_key,
    sales_key,
    sync_telemetry_key,
    sync_telemetry_prefix,
    validate_key,
)
from shopify_sync.storage.object_store import (
    LocalObjectStore,
    ObjectNotFoundError,
    ObjectStore,
    ObjectStoreError,
    S3ObjectStore,
    open_store,
)


def __getattr__(name: str) -> object:
    # Lazy: importing dagster costs seconds, and the API / CLI only need the store.
    if name == "ObjectStoreResource":
        from shopify_sync.storage.resource import ObjectStoreResource

        return ObjectStoreResource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "InvalidKeyError",
    "LocalObjectStore",
    "ObjectNotFoundError",
    "ObjectStore",
    "ObjectStoreError",
    "ObjectStoreResource",
    "S3ObjectStore",
    "commerce_telemetry_key",
    "measurement_days",
    "measurement_prefix",
    "open_store",
    "parse_sync_telemetry_key",
    "performance_key",
    "raw_key",
    "sales_key",
    "sync_telemetry_key",
    "sync_telemetry_prefix",
    "validate_key",
]
