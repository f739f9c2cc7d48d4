"""The emulator, independent of the HTTP server: state plus its three request handlers.

``Emulator.handle_graphql`` and ``Emulator.handle_download`` take a parsed request and
return a ``Response``; ``server.py`` puts them on real sockets. The parts:

- ``state``: configuration, datasets (with ``update_order``), clock, faults, request log;
- ``bulk``: the bulk operation machine (statuses over time, cancel, version rules);
- ``graphql_api``: the Admin GraphQL endpoint (auth, cost, validation, dispatch);
- ``downloads``: the result-file host (pre-signed URLs, ``Range``, expiry).

What is emulated and where it comes from is in reference/shopify-bulk-api.md; the
module docstrings of ``bulk_rules``, ``jsonl`` and ``search`` say what each part reproduces.
"""

from __future__ import annotations

from shopify_sync.emulator.bulk import BulkMachine, BulkOp, UserError
from shopify_sync.emulator.downloads import ResultHost
from shopify_sync.emulator.faults import Fault, Faults
from shopify_sync.emulator.graphql_api import GraphQLEndpoint
from shopify_sync.emulator.resolvers import JsonObject, op_view
from shopify_sync.emulator.response import Response
from shopify_sync.emulator.state import EmulatorConfig, EmulatorState, RequestLogEntry

__all__ = ["Emulator", "EmulatorConfig", "Fault", "Faults", "RequestLogEntry", "Response"]


class Emulator(EmulatorState):
    """Every emulated shop: its state (inherited), bulk operations, GraphQL endpoint and result host."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        super().__init__(config)
        self.bulk = BulkMachine(self)
        self.results = ResultHost(self, self.bulk)
        self.graphql = GraphQLEndpoint(self, self.bulk, self.results)
        self.base_url = "http://127.0.0.1:0"  # set by the server

    @property
    def files_base_url(self) -> str:
        return self.results.base_url

    @files_base_url.setter
    def files_base_url(self, value: str) -> None:
        self.results.base_url = value

    def close(self) -> None:
        self.bulk.close()

    def shop_base_url(self, code: str) -> str:
        """Value for ``SHOPIFY_<CODE>_STORE``."""
        return self.base_url if code == "DEMO" else f"{self.base_url}/shops/{code}"

    # -- requests --------------------------------------------------------------------
    def handle_graphql(self, shop: str, version: str, headers: dict[str, str], body: bytes) -> Response:
        return self.graphql.handle(shop, version, headers, body)

    def handle_download(self, path: str, query: str, headers: dict[str, str]) -> Response:
        return self.results.handle_download(path, query, headers)

    # -- bulk operations, for tests and tools ------------------------------------------
    def run_query(self, shop: str, version: str, query: str, grouped: bool) -> tuple[BulkOp | None, list[UserError]]:
        return self.bulk.run_query(shop, version, query, grouped)

    def get_op(self, shop: str, num: int) -> BulkOp | None:
        return self.bulk.get_op(shop, num)

    def operations(self, shop: str | None = None) -> list[BulkOp]:
        return self.bulk.operations(shop)

    def cancel(self, shop: str, num: int) -> tuple[BulkOp | None, list[UserError]]:
        return self.bulk.cancel(shop, num)

    def op_view(self, op: BulkOp) -> JsonObject:
        """The ``BulkOperation`` object as GraphQL returns it."""
        return op_view(op, self.results)
