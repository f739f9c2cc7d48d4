"""Bearer-token auth for the staff API (``SHOPIFY_SYNC_API_TOKEN``)."""

from __future__ import annotations

import hmac

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shopify_sync.api.errors import ApiError

# auto_error=False: FastAPI's own 403 would not be our error shape, and a missing
# token is a 401 (RFC 6750), not a 403.
bearer_scheme = HTTPBearer(auto_error=False, description="SHOPIFY_SYNC_API_TOKEN as a bearer token")

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def require_token(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
) -> None:
    expected: str | None = request.app.state.api_token
    if expected is None:
        # create_app without a token is only for tests that exercise the refusal; never serve data.
        raise ApiError(503, "not_configured", "SHOPIFY_SYNC_API_TOKEN is not set on the server")
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(401, "unauthorized", "missing bearer token (Authorization: Bearer <token>)", _CHALLENGE)
    # Constant-time comparison so response timing does not leak the token prefix.
    if not hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise ApiError(401, "unauthorized", "invalid bearer token", _CHALLENGE)
