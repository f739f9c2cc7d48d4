"""The bundled Shopify Admin GraphQL emulator (bulk operations) for tests, demo and CLI."""

from shopify_sync.emulator.app import Emulator, EmulatorConfig, Faults, RequestLogEntry
from shopify_sync.emulator.dataset import LineItem, Order, Product, Refund, Variant
from shopify_sync.emulator.fast import JsonlStats, write_jsonl
from shopify_sync.emulator.server import EmulatorServer, demo_base_url, demo_emulator, demo_token, serve

__all__ = [
    "Emulator", "EmulatorConfig", "EmulatorServer", "Faults", "JsonlStats", "LineItem", "Order", "Product",
    "Refund", "RequestLogEntry", "Variant", "demo_base_url", "demo_emulator", "demo_token", "serve", "write_jsonl",
]
