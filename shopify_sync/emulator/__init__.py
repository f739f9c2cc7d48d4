"""The bundled Shopify Admin GraphQL emulator (bulk operations) for tests, demo and CLI.

    with EmulatorServer(EmulatorConfig(orders_per_shop=100, completion_seconds=2)) as srv:
        store = srv.shop_base_url("DE")          # SHOPIFY_DE_STORE; token: srv.token
        srv.emulator.faults.add("http_429", times=1, retry_after=1)
        ...                                      # run the client against `store`
        expected = srv.emulator.orders("DE")     # Decimal money, UTC datetimes, int ids
        runs = srv.emulator.log_of("run_query", shop="DE")

Contract details: docs/architecture.md ("Emulator"); fidelity notes in each module.
"""

from shopify_sync.emulator.app import Emulator
from shopify_sync.emulator.dataset import LineItem, Order, Product, Refund, Variant
from shopify_sync.emulator.fast import JsonlStats, write_jsonl
from shopify_sync.emulator.faults import Faults
from shopify_sync.emulator.server import EmulatorServer, demo_base_url, demo_emulator, demo_token, serve
from shopify_sync.emulator.state import EmulatorConfig, RequestLogEntry

__all__ = [
    "Emulator", "EmulatorConfig", "EmulatorServer", "Faults", "JsonlStats", "LineItem", "Order", "Product",
    "Refund", "RequestLogEntry", "Variant", "demo_base_url", "demo_emulator", "demo_token", "serve", "write_jsonl",
]
