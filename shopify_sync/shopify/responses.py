"""What one GraphQL answer means: the ``data``, a typed error, or a retry decision.

``classify_response`` reads the HTTP status, the body's top-level ``errors`` and the
throttle status; ``classify_transport_error`` handles a request that got no answer.
A ``Retry`` says how long to wait (``None``: the caller's exponential backoff) and
whether Shopify may have executed the request anyway (a lost response), in which case
the caller checks before sending a mutation again.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from shopify_sync.shopify.errors import (
    AUTH_ERRORS,
    AccessDenied,
    ShopifyGraphQLError,
    ShopifyRequestError,
)
from shopify_sync.shopify.operation import JsonObject

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504, 520, 522, 524, 530, 540})

Redact = Callable[[str], str]


@dataclass(frozen=True)
class Retry:
    """A transient failure: send the request again after ``wait`` seconds."""

    problem: str  # for the log line and the final error
    wait: float | None = None  # None: exponential backoff
    maybe_executed: bool = True  # False when the request surely did not run (no connection, 429, THROTTLED)
    status_code: int | None = None


@dataclass(frozen=True)
class Request:
    """What errors say about the request: its purpose, and where it went."""

    what: str  # "bulkOperationRunQuery", "status of gid://...", ...
    base_url: str
    endpoint: str
    shop_code: str | None  # only for messages naming the variable to fix (SHOPIFY_DE_TOKEN)


def classify_transport_error(exc: httpx.TransportError, redact: Redact) -> Retry:
    return Retry(f"transport error ({type(exc).__name__}: {redact(str(exc))[:200]})",
                 maybe_executed=not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout))


def classify_response(response: httpx.Response, request: Request, redact: Redact, now: float) -> JsonObject | Retry:
    """``data`` of a successful answer, or a ``Retry``; raises the typed error of a final failure."""
    status = response.status_code
    if status in AUTH_ERRORS:
        raise AUTH_ERRORS[status](request.base_url, error_detail(response, redact), shop_code=request.shop_code)
    if status in RETRYABLE_STATUS:
        wait = retry_after(response, now) if status in (429, 503) else None
        return Retry(f"HTTP {status}", wait, maybe_executed=status != 429, status_code=status)
    if status != 200:
        detail = error_detail(response, redact)
        code = request.shop_code or "<CODE>"
        hint = f" (check SHOPIFY_{code}_STORE and SHOPIFY_API_VERSION)" if status == 404 else ""
        raise ShopifyRequestError(
            f"{request.what}: Shopify answered HTTP {status} from {request.endpoint}{hint}"
            + (f": {detail}" if detail else ""), status_code=status)
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return Retry("response body is not a JSON object", status_code=status)
    return _classify_body(body, request, redact)


def _classify_body(body: JsonObject, request: Request, redact: Redact) -> JsonObject | Retry:
    errors = body.get("errors") or []
    if isinstance(errors, str):
        errors = [{"message": errors}]
    if not errors:
        data = body.get("data")
        if not isinstance(data, dict):
            raise ShopifyRequestError(f"{request.what}: response has neither data nor errors")
        return data
    listed = list(errors) if isinstance(errors, list | dict) else [errors]
    codes = [_obj(_obj(e).get("extensions")).get("code") if isinstance(e, dict) else None for e in listed]
    messages = [redact(str(e.get("message") if isinstance(e, dict) else e)) for e in listed]
    if "THROTTLED" in codes or any(m.lower() == "throttled" for m in messages):
        return Retry("THROTTLED (query cost bucket empty)", throttle_wait(body), maybe_executed=False,
                     status_code=200)
    if "ACCESS_DENIED" in codes:
        raise AccessDenied(detail="; ".join(messages))
    if "INTERNAL_SERVER_ERROR" in codes:
        return Retry("GraphQL INTERNAL_SERVER_ERROR", status_code=200)
    raise ShopifyGraphQLError(messages, [c if isinstance(c, str) or c is None else str(c) for c in codes])


def _obj(value: object) -> JsonObject:
    return value if isinstance(value, dict) else {}


def _number(value: object) -> float:
    """A JSON number (or numeric string); ``ValueError`` for anything else."""
    if not value:
        return 0.0
    if isinstance(value, str | int | float):
        return float(value)
    raise ValueError(f"not a number: {value!r}")


def throttle_wait(body: JsonObject) -> float:
    """Seconds until the leaky bucket holds the request's cost again (§5.2)."""
    cost = _obj(_obj(body.get("extensions")).get("cost"))
    status = _obj(cost.get("throttleStatus"))
    try:
        requested = _number(cost.get("requestedQueryCost"))
        available = _number(status.get("currentlyAvailable"))
        restore = _number(status.get("restoreRate"))
    except ValueError:
        return 1.0
    if restore <= 0:
        return 1.0
    return float(max(1, math.ceil((requested - available) / restore)))


def retry_after(response: httpx.Response, now: float) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), if the response has a usable one."""
    raw = response.headers.get("Retry-After")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def error_detail(response: httpx.Response, redact: Redact) -> str:
    """The error text of a failed answer, short and without the token."""
    try:
        body = response.json()
    except ValueError:
        return redact(response.text[:200]).strip()
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, str):
            return redact(errors)[:300]
        if isinstance(errors, list):
            msgs = [str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors]
            return redact("; ".join(msgs))[:300]
    return redact(str(body))[:200]
