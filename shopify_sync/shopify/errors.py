"""Typed errors of the Shopify bulk client.

Every error says what happened in words an operator can act on, names the bulk
operation id and Shopify's ``errorCode`` where there is one, and never carries the
access token (messages are built by the client from response fields, never from
request headers). ``retryable`` tells an orchestrator whether running the same step
again later can help (it is advice; the client has already done its own bounded
retries before raising).
"""

from __future__ import annotations

from collections.abc import Sequence


class ShopifyError(Exception):
    """Base of every error raised by ``shopify_sync.shopify``."""

    retryable: bool = False


# --- request level ------------------------------------------------------------------


class ShopifyRequestError(ShopifyError):
    """A GraphQL request failed after the client's bounded retries (transport, 5xx, 429, ...)."""

    retryable = True

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        self.status_code = status_code
        super().__init__(message)


class ShopifyGraphQLError(ShopifyError):
    """Shopify answered with top-level GraphQL ``errors`` that retrying cannot fix."""

    def __init__(self, messages: Sequence[str], codes: Sequence[str | None] = ()) -> None:
        self.messages = list(messages)
        self.codes = list(codes)
        padded = self.codes + [None] * (len(self.messages) - len(self.codes))
        shown = "; ".join(f"{m} [{c}]" if c else m for m, c in zip(self.messages, padded, strict=False))
        super().__init__(f"Shopify GraphQL error: {shown}")


class ShopifyAuthError(ShopifyError):
    """401/402/403/423: the credentials or the shop itself are the problem; never retried."""

    status_code: int = 0
    reason: str = "request refused"

    def __init__(self, shop_url: str, detail: str | None = None, *, shop_code: str | None = None) -> None:
        self.shop_url = shop_url
        self.shop_code = shop_code
        reason = self.reason.replace("<CODE>", shop_code) if shop_code else self.reason
        text = f"Shopify refused the request to {shop_url} with HTTP {self.status_code}: {reason}"
        if detail:
            text += f" ({detail})"
        super().__init__(text)


class InvalidToken(ShopifyAuthError):
    status_code = 401
    reason = ("the access token is invalid, revoked or missing; check SHOPIFY_<CODE>_TOKEN "
              "(an offline Admin API token for this store)")


class ShopFrozen(ShopifyAuthError):
    status_code = 402
    reason = "the shop is frozen (unpaid plan or unavailable shop); the store owner must reactivate it"


class PermissionDenied(ShopifyAuthError):
    status_code = 403
    reason = ("the app lacks permission for this request; check the app's access scopes "
              "(read_orders, and read_all_orders for orders older than 60 days)")


class ShopLocked(ShopifyAuthError):
    status_code = 423
    reason = "the shop is locked by Shopify; contact Shopify support"


AUTH_ERRORS: dict[int, type[ShopifyAuthError]] = {
    cls.status_code: cls for cls in (InvalidToken, ShopFrozen, PermissionDenied, ShopLocked)
}


class AccessDenied(ShopifyError):
    """ACCESS_DENIED, as a FAILED bulk operation's errorCode or as a GraphQL error: missing scope."""

    error_code = "ACCESS_DENIED"

    def __init__(self, operation_id: str | None = None, *, detail: str | None = None,
                 partial_data_url: str | None = None) -> None:
        self.operation_id = operation_id
        self.partial_data_url = partial_data_url
        where = f"bulk operation {operation_id} failed" if operation_id else "Shopify refused the request"
        text = (f"{where} with ACCESS_DENIED: the app is missing an access scope. The orders query needs "
                "read_orders, and read_all_orders for orders older than 60 days; the catalog query "
                "(productVariants) needs read_products. To see which field is "
                "denied, run the same query as a normal (non-bulk) GraphQL query with this token.")
        if detail:
            text += f" Shopify said: {detail}"
        super().__init__(text)


# --- submit -------------------------------------------------------------------------


class BulkSubmitRejected(ShopifyError):
    """``bulkOperationRunQuery`` returned userErrors (and no operation)."""

    def __init__(self, messages: Sequence[str], codes: Sequence[str | None] = (), *,
                 hint: str | None = None) -> None:
        self.messages = list(messages)
        self.codes = list(codes)
        known = sorted({c for c in self.codes if c})
        text = "Shopify rejected the bulk query"
        if known:
            text += f" ({', '.join(known)})"
        text += ": " + " | ".join(self.messages)
        if hint:
            text += f". {hint}"
        super().__init__(text)


class BulkQueryInvalid(BulkSubmitRejected):
    """userErrors with code INVALID (or no code, before 2025-01): the query itself is wrong."""


class OperationInProgressTimeout(ShopifyError):
    """Another bulk query kept blocking ours (OPERATION_IN_PROGRESS) past the wait budget."""

    retryable = True

    def __init__(self, blocking_ids: Sequence[str], waited_seconds: float, attempts: int) -> None:
        self.blocking_ids = list(blocking_ids)
        self.waited_seconds = waited_seconds
        self.attempts = attempts
        blockers = ", ".join(self.blocking_ids) or "(ids not reported)"
        super().__init__(
            f"OPERATION_IN_PROGRESS: another bulk query for this app and shop was still running after "
            f"waiting {waited_seconds:.0f}s over {attempts} attempts; blocking operation(s): {blockers}. "
            "Wait for it to finish or cancel it (bulkOperationCancel), then run again."
        )


# --- operation lifecycle -------------------------------------------------------------


class BulkOperationError(ShopifyError):
    """A bulk operation ended in a state other than COMPLETED."""

    def __init__(self, message: str, operation_id: str) -> None:
        self.operation_id = operation_id
        super().__init__(message)


class BulkOperationFailed(BulkOperationError):
    """Status FAILED with Shopify's ``errorCode`` (INTERNAL_SERVER_ERROR, TIMEOUT, ...)."""

    _ADVICE = {
        "INTERNAL_SERVER_ERROR": "Shopify reports this as possibly intermittent; submitting the query again may succeed",
        "TIMEOUT": "the query timed out inside Shopify; a smaller date window or fewer fields may succeed",
    }

    def __init__(self, error_code: str | None, operation_id: str, partial_data_url: str | None = None, *,
                 resubmits: int = 0) -> None:
        self.error_code = error_code
        self.partial_data_url = partial_data_url
        self.resubmits = resubmits
        self.retryable = error_code in self._ADVICE
        text = f"bulk operation {operation_id} FAILED with errorCode {error_code or 'null'}"
        if resubmits:
            text += f" (after {resubmits} resubmission{'s' if resubmits != 1 else ''})"
        advice = self._ADVICE.get(error_code or "")
        if advice:
            text += f": {advice}"
        if partial_data_url:
            text += "; partial data is available (partialDataUrl)"
        super().__init__(text, operation_id)


class BulkOperationCanceled(BulkOperationError):
    def __init__(self, operation_id: str) -> None:
        super().__init__(
            f"bulk operation {operation_id} was CANCELED (by an operator, another process, or Shopify "
            "stopping a stalled job); run again to resubmit", operation_id)


class BulkOperationExpired(BulkOperationError):
    def __init__(self, operation_id: str) -> None:
        super().__init__(
            f"bulk operation {operation_id} is EXPIRED: its result URL is gone (results are kept 7 days); "
            "the query must be submitted again", operation_id)


class BulkOperationNotFound(BulkOperationError):
    def __init__(self, operation_id: str) -> None:
        super().__init__(f"Shopify does not know bulk operation {operation_id} (deleted, or another shop/app)",
                         operation_id)


class PollBudgetExhausted(BulkOperationError):
    """Still not finished after ``poll_max_attempts`` polls; the operation has been cancelled."""

    retryable = True

    def __init__(self, operation_id: str, attempts: int, interval_seconds: float, last_status: str,
                 cancel_sent: bool) -> None:
        self.attempts = attempts
        self.interval_seconds = interval_seconds
        self.last_status = last_status
        self.cancel_sent = cancel_sent
        cancelled = "a cancel was sent" if cancel_sent else "cancelling it failed, it may still be running"
        super().__init__(
            f"bulk operation {operation_id} was still {last_status} after {attempts} polls every "
            f"{interval_seconds:g}s (SHOPIFY_POLL_MAX_ATTEMPTS x SHOPIFY_POLL_INTERVAL_SECONDS); {cancelled}. "
            "Raise the poll budget or shrink the window.", operation_id)


class ObjectCountMismatch(BulkOperationError):
    """The downloaded file does not hold the ``objectCount`` lines Shopify reported: not loaded.

    Not retried by the step: the same operation's file would say the same. Its id is
    forgotten with the failed job, so the next run submits the query anew.
    """

    def __init__(self, operation_id: str, object_count: int, lines: int) -> None:
        self.object_count, self.lines = object_count, lines
        super().__init__(
            f"bulk operation {operation_id} reported objectCount {object_count} but its result file holds "
            f"{lines} lines: the file is incomplete or inconsistent and was not loaded; run again to submit "
            "the query anew", operation_id)


# --- download ------------------------------------------------------------------------


class DownloadError(ShopifyError):
    """The result file could not be downloaded intact after the client's retries."""

    retryable = True

    def __init__(self, message: str, *, operation_id: str | None = None) -> None:
        self.operation_id = operation_id
        super().__init__(message)


class ResultUrlExpired(DownloadError):
    """The pre-signed result URL is past its expiry (Shopify keeps results 7 days)."""

    retryable = False

    def __init__(self, detail: str, *, operation_id: str | None = None) -> None:
        op = f" of bulk operation {operation_id}" if operation_id else ""
        super().__init__(
            f"the result URL{op} has expired ({detail}); Shopify keeps bulk results for 7 days, so the "
            "query must be submitted again (or replay the archived JSONL)", operation_id=operation_id)
