"""One error shape for every failure: ``{"error": {"code", "message"}}`` (SPEC §8).

FastAPI answers 404/405/422 and uncaught exceptions with its own shapes; the handlers
here replace all of them so a dashboard client only ever parses one format. Messages
never carry exception text from the database driver, which may quote the URL (and its
password).
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from shopify_sync.storage import ObjectStoreError

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class ApiError(Exception):
    """An expected failure with its HTTP status, a stable machine code and a human message."""

    def __init__(self, status_code: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers = headers


def error_response(status_code: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status_code, content={"error": {"code": code, "message": message}},
                        headers=headers)


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 406: "not_acceptable", 415: "unsupported_media_type"}


def _describe_validation(errors: list[dict[str, Any]]) -> str:
    parts = []
    for err in errors[:5]:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body", "header")]
        where = ".".join(loc) or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid value')}")
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status_code, exc.code, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        if exc.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", _describe_validation(list(exc.errors())))

    @app.exception_handler(sqlalchemy.exc.OperationalError)
    async def _db_unavailable(_: Request, exc: sqlalchemy.exc.OperationalError) -> JSONResponse:
        # The driver message can contain the connection URL; only the class name is logged.
        log.warning("warehouse query failed: %s", type(exc.orig).__name__ if exc.orig else type(exc).__name__)
        return error_response(503, "warehouse_unavailable", "the warehouse database is unavailable; retry later")

    @app.exception_handler(ObjectStoreError)
    async def _store_unavailable(_: Request, exc: ObjectStoreError) -> JSONResponse:
        log.warning("object store request failed: %s", type(exc).__name__)
        return error_response(503, "object_store_unavailable", "the object store is unavailable; retry later")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        from shopify_sync.redact import scrub_secrets

        # The operator needs the traceback; it is scrubbed because driver errors can quote URLs.
        trace = "".join(traceback.format_exception(exc))
        log.error("unhandled API error on %s %s: %s", request.method, request.url.path, scrub_secrets(trace))
        return error_response(500, "internal_error", "internal error; see the API server log")
