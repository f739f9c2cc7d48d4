"""Fixtures for the bulk client tests: a real emulator over loopback HTTP per test.

``sleeper`` replaces the client's ``time.sleep``: it records every wait the client
asked for and advances the emulator's clock by that much instead of sleeping, so
bulk jobs "take" minutes while the tests take milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from shopify_sync.emulator import EmulatorConfig, EmulatorServer
from shopify_sync.shopify.client import ClientOptions, ShopifyBulkClient
from shopify_sync.shopify.queries import orders_query

TOKEN = "shpat_TOPSECRET_0123456789abcdef"


class Sleeper:
    def __init__(self, server: EmulatorServer | None = None) -> None:
        self.server = server
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.server is not None:
            self.server.emulator.advance(seconds)


class SentDocuments:
    """httpx request hook: keeps every GraphQL document the client actually put on the wire."""

    def __init__(self) -> None:
        self.documents: list[str] = []
        self.headers: list[dict[str, str]] = []

    def __call__(self, request: httpx.Request) -> None:
        self.headers.append(dict(request.headers))
        if request.method == "POST":
            self.documents.append(json.loads(request.content)["query"])


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(orders_per_shop=20, token=TOKEN)


@pytest.fixture
def server(emulator_config: EmulatorConfig) -> Iterator[EmulatorServer]:
    with EmulatorServer(emulator_config) as srv:
        yield srv
    srv.emulator.close()


@pytest.fixture
def sleeper(server: EmulatorServer) -> Sleeper:
    return Sleeper(server)


@pytest.fixture
def sent() -> SentDocuments:
    return SentDocuments()


@pytest.fixture
def make_client(server: EmulatorServer, sleeper: Sleeper, sent: SentDocuments) -> Iterator[Any]:
    clients: list[ShopifyBulkClient] = []

    def make(version: str = "2026-10", *, shop: str = "DEMO", token: str = TOKEN, **kwargs: Any) -> ShopifyBulkClient:
        """A client on the emulator; ``kwargs`` are ``ClientOptions`` fields."""
        kwargs.setdefault("poll_interval_seconds", 1.0)
        kwargs.setdefault("poll_max_attempts", 20)
        kwargs.setdefault("sleep", sleeper)
        http = httpx.Client(timeout=30, event_hooks={"request": [sent]})
        client = ShopifyBulkClient(server.shop_base_url(shop), token, version, ClientOptions(http=http, **kwargs))
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()
        c._http.close()


def window_query() -> str:
    # A fixed start (the emulator's orders are all after it): the same text on every call,
    # which the lost-response adoption tests rely on.
    return orders_query("updated_at", datetime(2020, 1, 1, tzinfo=UTC))


def empty_window_query() -> str:
    return orders_query("created_at", datetime(1990, 1, 1, tzinfo=UTC), datetime(1990, 1, 2, tzinfo=UTC))
