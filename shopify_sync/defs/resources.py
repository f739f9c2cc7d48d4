"""Resource wiring: one Shopify, one warehouse, one object store for every asset.

Each field comes from a ``dg.EnvVar`` when its variable is set (resolved at launch,
so it never lands in the job snapshot) and otherwise from the SPEC default computed
by ``shopify_sync.config`` (no environment needed to load the definitions). Building
these does no I/O: engines, clients and the embedded emulator start on first use.
Shop tokens are never resource config: ``ShopifyBulkResource`` reads them from the
environment when it builds a client.

``SHOPIFY_<CODE>_STORE=emulator`` is wired here, not in ``shopify/`` (which knows no
emulator): ``ShopifyResource`` points such shops at the process-wide demo emulator.
"""

from __future__ import annotations

import os
from typing import TypeVar

import dagster as dg

from shopify_sync.config import Settings, ShopConfig
from shopify_sync.shopify.resource import ShopifyBulkResource
from shopify_sync.storage.resource import ObjectStoreResource
from shopify_sync.warehouse.resource import WarehouseResource

__all__ = ["ObjectStoreResource", "ShopifyBulkResource", "ShopifyResource", "WarehouseResource", "build_resources"]

_Value = TypeVar("_Value", str, str | None)


class ShopifyResource(ShopifyBulkResource):
    """``ShopifyBulkResource`` that also serves ``SHOPIFY_<CODE>_STORE=emulator`` shops."""

    def endpoint(self, shop: ShopConfig) -> tuple[str, str]:
        if not shop.is_emulator:
            return super().endpoint(shop)
        # Imported here: the emulator pulls in graphql-core, which loading the definitions
        # otherwise never imports; only a run with an emulator shop pays for it.
        from shopify_sync.emulator import demo_emulator

        server = demo_emulator()  # started on first use
        # An explicit token for an emulator shop wins, so tests can exercise a wrong one.
        return server.shop_base_url(shop.code), shop.token or server.token


def _env_or(name: str, default: _Value, environ: dict[str, str] | None = None) -> _Value | str:
    """``dg.EnvVar(name)`` (a ``str``, resolved at launch) when ``name`` is set, else ``default``."""
    env = os.environ if environ is None else environ
    return dg.EnvVar(name) if env.get(name, "").strip() else default


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    return {
        "shopify": ShopifyResource(),
        "warehouse": WarehouseResource(
            database_url=_env_or("SHOPIFY_SYNC_DATABASE_URL", settings.database_url),
            chunk_rows=settings.chunk_rows,
        ),
        "object_store": ObjectStoreResource(
            url=_env_or("SHOPIFY_SYNC_STORAGE_URL", settings.storage_url),
            s3_endpoint_url=_env_or("SHOPIFY_SYNC_S3_ENDPOINT_URL", settings.s3_endpoint_url),
        ),
    }
