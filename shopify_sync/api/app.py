"""The staff HTTP API (SPEC §8): FastAPI app factory and ``serve``.

Routes live in ``orders``, ``analytics`` and ``ingest``; this module wires auth,
the one error shape, lazily opened backends and the OpenAPI document.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI

from shopify_sync.api import analytics, ingest, orders
from shopify_sync.api.auth import require_token
from shopify_sync.api.deps import Backends, reject_unknown_query
from shopify_sync.api.errors import ErrorResponse, install_error_handlers
from shopify_sync.api.launcher import DagsterLauncher
from shopify_sync.config import ConfigError, Settings, load_settings

API_TITLE = "shopify_sync staff API"
API_VERSION = "1.0.0"

# Documented on every protected route so clients (and schemathesis) know the error shape.
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "bad input (unknown shop, start after end, bad cursor)"},
    401: {"model": ErrorResponse, "description": "missing or wrong bearer token"},
    404: {"model": ErrorResponse, "description": "not found"},
    409: {"model": ErrorResponse, "description": "ambiguous request"},
    422: {"model": ErrorResponse, "description": "malformed parameter"},
    503: {"model": ErrorResponse, "description": "warehouse or Dagster unavailable"},
}


def create_app(settings: Settings | None = None, *, launcher: DagsterLauncher | None = None) -> FastAPI:
    """Build the API. ``settings`` default to ``load_settings()`` (the environment)."""
    settings = settings or load_settings()
    backends = Backends(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        backends.close()

    app = FastAPI(
        title=API_TITLE,
        version=API_VERSION,
        description="Orders, sales KPIs and pipeline health of the shopify_sync warehouse; "
        "launches the daily sync through Dagster. Every error is `{\"error\": {\"code\", \"message\"}}`.",
        lifespan=lifespan,
        # operationId = the handler's name: stable and readable for generated clients.
        generate_unique_id_function=lambda route: route.name,
    )
    app.state.backends = backends
    app.state.api_token = settings.api_token
    app.state.launcher = launcher or DagsterLauncher(settings.dagster_graphql_url)
    install_error_handlers(app)
    protected = [Depends(require_token), Depends(reject_unknown_query)]
    for module in (orders, analytics, ingest):
        app.include_router(module.router, dependencies=protected, responses=_ERRORS)
    return app


def serve(host: str = "127.0.0.1", port: int = 8000, settings: Settings | None = None) -> None:
    """Run the API under uvicorn; refuses to start without ``SHOPIFY_SYNC_API_TOKEN``."""
    import uvicorn

    settings = settings or load_settings()
    if not settings.api_token:
        raise ConfigError("SHOPIFY_SYNC_API_TOKEN", "not set; the staff API refuses to start without a bearer token")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=True)
