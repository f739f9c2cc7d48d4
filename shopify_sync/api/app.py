"""The staff HTTP API (SPEC §8): FastAPI app factory and ``serve``.

Routes live in ``orders``, ``analytics`` and ``ingest``; this module wires auth,
the one error shape, lazily opened backends and the OpenAPI document.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from fastapi import Depends, FastAPI

from shopify_sync.api import analytics, ingest, orders, series
from shopify_sync.api.auth import require_token
from shopify_sync.api.dashboard import install_dashboard
from shopify_sync.api.deps import Backends, reject_unknown_query
from shopify_sync.api.errors import ErrorResponse, install_error_handlers
from shopify_sync.api.launcher import DagsterLauncher
from shopify_sync.config import ConfigError, Settings, load_settings
from shopify_sync.redact import REDACTED, scrub_secrets

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
    for module in (orders, analytics, series, ingest):
        app.include_router(module.router, dependencies=protected, responses=_ERRORS)
    # The page and its assets hold no data, so they are public; the data they show is not.
    install_dashboard(app)
    return app


def serve(host: str = "127.0.0.1", port: int = 8000, settings: Settings | None = None) -> None:
    """Run the API under uvicorn; refuses to start without ``SHOPIFY_SYNC_API_TOKEN``."""
    import uvicorn

    settings = settings or load_settings()
    if not settings.api_token:
        raise ConfigError("SHOPIFY_SYNC_API_TOKEN", "not set; the staff API refuses to start without a bearer token")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=True,
                log_config=access_log_config(uvicorn.config.LOGGING_CONFIG))


# The API's own query parameters: their values are logged; any other parameter's value is
# not (a `?token=…` someone pasted into a URL must not land in the access log).
_LOGGED_PARAMS = frozenset({"shop", "start", "end", "limit", "days", "cursor"})
_PARAM_NAME = re.compile(r"[A-Za-z_-]{1,40}")


def scrub_request_target(target: str) -> str:
    """A request's path and query as the access log may show them."""
    parts = urlsplit(target)
    path = scrub_secrets(parts.path)
    if not parts.query:
        return path
    query = "&".join(_logged_param(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True))
    return f"{path}?{scrub_secrets(query)}"


def _logged_param(key: str, value: str) -> str:
    if key in _LOGGED_PARAMS:
        return f"{key}={quote(value, safe='')}"
    # A name like `token` or `X-Amz-Signature` is kept; a value pasted without a name is not.
    return f"{key}={REDACTED}" if _PARAM_NAME.fullmatch(key) else REDACTED


class AccessLogScrubber(logging.Filter):
    """On uvicorn's access handler: rewrites the request target (``args[2]``) of each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (*args[:2], scrub_request_target(args[2]), *args[3:])
        return True


def access_log_config(base: dict[str, Any]) -> dict[str, Any]:
    """uvicorn's logging config (``base``) with ``AccessLogScrubber`` on its access handler."""
    config = copy.deepcopy(base)
    config.setdefault("filters", {})["scrub_query"] = {"()": AccessLogScrubber}
    config["handlers"]["access"].setdefault("filters", []).append("scrub_query")
    return config
