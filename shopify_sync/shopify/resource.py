"""``ShopifyBulkResource``: the Dagster resource that hands out one bulk client per shop.

Only non-secret knobs are resource config (visible in the UI). Store URLs and access
tokens are read from ``SHOPIFY_<CODE>_STORE`` / ``SHOPIFY_<CODE>_TOKEN`` through
``load_settings()`` when a run asks for a client, so a token is never part of a job
snapshot, the UI or run metadata.

A field left at ``None`` is resolved the same way at run time, from
``SHOPIFY_API_VERSION`` / ``SHOPIFY_POLL_INTERVAL_SECONDS`` / ``SHOPIFY_POLL_MAX_ATTEMPTS``
(validated, with errors naming the variable). That matters for the interval: Dagster
can bind ``dg.EnvVar`` only to ``str`` fields (``dg.EnvVar.int`` to ``int`` ones), never
to a ``float``.

Where a shop's store is (``endpoint``) is the one thing a subclass may change: this
package knows no emulator, so ``SHOPIFY_<CODE>_STORE=emulator`` is served by the
subclass in ``shopify_sync.defs.resources``. A subclass, not an attribute: Dagster
rebuilds a resource from its config fields at run time, keeping only its class.
"""

from __future__ import annotations

from dataclasses import replace

import dagster as dg
from pydantic import Field

from shopify_sync.config import ConfigError, ShopConfig, load_settings
from shopify_sync.shopify.client import ShopifyBulkClient
from shopify_sync.shopify.options import ClientOptions, LogLike

# The setting behind each constructor argument, by the start of its ValueError message.
_VARIABLES = {"api_version": "SHOPIFY_API_VERSION", "poll_interval": "SHOPIFY_POLL_INTERVAL_SECONDS",
              "poll_max": "SHOPIFY_POLL_MAX_ATTEMPTS", "token": "SHOPIFY_{code}_TOKEN",
              "base_url": "SHOPIFY_{code}_STORE"}


class ShopifyBulkResource(dg.ConfigurableResource):
    """Bulk-query access to the configured Shopify stores (SPEC §2)."""

    api_version: str | None = Field(
        default=None, description="Admin API version path segment; default: SHOPIFY_API_VERSION")
    poll_interval_seconds: float | None = Field(
        default=None, description="seconds between bulk status polls; default: SHOPIFY_POLL_INTERVAL_SECONDS")
    poll_max_attempts: int | None = Field(
        default=None, description="polls before the operation is cancelled; default: SHOPIFY_POLL_MAX_ATTEMPTS")

    def endpoint(self, shop: ShopConfig) -> tuple[str, str]:
        """Base URL and token of ``shop``'s store."""
        if shop.is_emulator:
            raise ConfigError(f"SHOPIFY_{shop.code}_STORE",
                              "'emulator' needs the bundled emulator, which this resource does not start; "
                              "use the resource of shopify_sync.defs.resources")
        return shop.base_url(), shop.token or ""

    def client_for(self, shop_code: str, log: LogLike | None = None,
                   options: ClientOptions | None = None) -> ShopifyBulkClient:
        """A new client for ``shop_code`` (caller closes it, e.g. ``with resource.client_for(...)``).

        ``options`` sets the client's other limits (e.g. a backfill's longer
        ``in_progress_max_wait``); the poll interval and attempts are this resource's.
        """
        settings = load_settings()
        shop = settings.shop(shop_code)
        api_version = self.api_version or settings.api_version
        interval = self.poll_interval_seconds if self.poll_interval_seconds is not None \
            else settings.poll_interval_seconds
        attempts = self.poll_max_attempts if self.poll_max_attempts is not None else settings.poll_max_attempts
        base_url, token = self.endpoint(shop)
        try:
            polling = replace(options or ClientOptions(), poll_interval_seconds=interval, poll_max_attempts=attempts)
            return ShopifyBulkClient(base_url, token, api_version, polling, log=log, shop_code=shop_code)
        except ValueError as exc:
            name = next((v for k, v in _VARIABLES.items() if str(exc).startswith(k)), "ShopifyBulkResource")
            raise ConfigError(name.format(code=shop_code), str(exc)) from None
