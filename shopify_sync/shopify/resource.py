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
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field

from shopify_sync.config import ConfigError, load_settings
from shopify_sync.shopify.client import LogLike, ShopifyBulkClient


def _emulator_endpoint(shop_code: str) -> tuple[str, str]:
    """Base URL and token of ``shop_code`` on the process-wide demo emulator (started on first use)."""
    # Imported here: the emulator is only loaded (and started) when a shop is configured to use it.
    from shopify_sync.emulator import demo_base_url, demo_token

    return demo_base_url(shop_code), demo_token()


class ShopifyBulkResource(dg.ConfigurableResource):
    """Bulk-query access to the configured Shopify stores (SPEC §2)."""

    api_version: str | None = Field(
        default=None, description="Admin API version path segment; default: SHOPIFY_API_VERSION")
    poll_interval_seconds: float | None = Field(
        default=None, description="seconds between bulk status polls; default: SHOPIFY_POLL_INTERVAL_SECONDS")
    poll_max_attempts: int | None = Field(
        default=None, description="polls before the operation is cancelled; default: SHOPIFY_POLL_MAX_ATTEMPTS")

    def client_for(self, shop_code: str, log: LogLike | None = None, **client_options: Any) -> ShopifyBulkClient:
        """A new client for ``shop_code`` (caller closes it, e.g. ``with resource.client_for(...)``).

        ``client_options`` go to ``ShopifyBulkClient`` (e.g. a backfill's longer
        ``in_progress_max_wait``).
        """
        settings = load_settings()
        shop = settings.shop(shop_code)
        api_version = self.api_version or settings.api_version
        interval = self.poll_interval_seconds if self.poll_interval_seconds is not None \
            else settings.poll_interval_seconds
        attempts = self.poll_max_attempts if self.poll_max_attempts is not None else settings.poll_max_attempts
        if shop.is_emulator:
            base_url, emulator_token = _emulator_endpoint(shop_code)
            # An explicit token for an emulator shop wins, so tests can exercise a wrong one.
            token = shop.token or emulator_token
        else:
            base_url, token = shop.base_url(), shop.token or ""
        try:
            return ShopifyBulkClient(base_url, token, api_version, interval, attempts, log=log,
                                     shop_code=shop_code, **client_options)
        except ValueError as exc:
            variable = {"api_version": "SHOPIFY_API_VERSION", "poll_interval": "SHOPIFY_POLL_INTERVAL_SECONDS",
                        "poll_max": "SHOPIFY_POLL_MAX_ATTEMPTS", "token": f"SHOPIFY_{shop_code}_TOKEN",
                        "base_url": f"SHOPIFY_{shop_code}_STORE"}
            name = next((v for k, v in variable.items() if str(exc).startswith(k)), "ShopifyBulkResource")
            raise ConfigError(name, str(exc)) from None
