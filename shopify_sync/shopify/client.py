"""Shopify Admin GraphQL Bulk Operations client: submit → poll → download → cancel.

Facts this relies on are in ``shared/reference/shopify-bulk-api.md`` (section numbers
below refer to it). Design choices:

- The inner query travels as a GraphQL variable, so no escaping of the orders search
  string into a block string is needed, and ``groupObjects`` is never sent: since
  2026-01 it defaults to ``false`` (faster, less timeout-prone) and the warehouse
  resolves children by ``__parentId`` (§3.3).
- ``submit`` returns as soon as Shopify has accepted the operation, so the caller can
  persist its id before polling; ``run(resume_operation_id=...)`` re-polls it after
  a crash instead of starting a new job.
- Every wait goes through the injected ``sleep`` and every wait loop is bounded, so a
  run can never hang forever and tests can run the slow paths instantly.
- The access token is sent only to the GraphQL endpoint, as a per-request header. The
  result file lives on another host behind a pre-signed URL and is fetched by a
  separate HTTP client that never had the token.
"""

from __future__ import annotations

import email.utils
import logging
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlparse

import httpx

from shopify_sync.shopify.errors import (
    AUTH_ERRORS,
    AccessDenied,
    BulkOperationCanceled,
    BulkOperationExpired,
    BulkOperationFailed,
    BulkOperationNotFound,
    BulkQueryInvalid,
    BulkSubmitRejected,
    DownloadError,
    OperationInProgressTimeout,
    PollBudgetExhausted,
    ResultUrlExpired,
    ShopifyError,
    ShopifyGraphQLError,
    ShopifyRequestError,
)


class LogLike(Protocol):
    """A ``logging.Logger`` or Dagster's ``context.log``."""

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...
    def info(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...
    def warning(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...
    def error(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...


TERMINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "CANCELED", "EXPIRED"})
# Shopify's advice for these is "submit the query again" (§2.3); everything else needs a human.
RESUBMITTABLE_ERROR_CODES = frozenset({"INTERNAL_SERVER_ERROR", "TIMEOUT"})
# Before 2025-01 userErrors have no `code`; connectors detect the conflict by this text (§1.2).
IN_PROGRESS_MESSAGE = "already in progress"
_BULK_GID = re.compile(r"gid://shopify/BulkOperation/\d+")
_VERSION = re.compile(r"^\d{4}-\d{2}$")
_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504, 520, 522, 524, 530, 540})

_OPERATION_FIELDS = """fragment BulkOperationFields on BulkOperation {
  id
  status
  errorCode
  createdAt
  completedAt
  objectCount
  rootObjectCount
  fileSize
  url
  partialDataUrl
}"""


def _run_query_mutation(with_code: bool) -> str:
    # `code` exists on BulkOperationUserError from 2025-01; selecting it earlier is a validation error.
    codes = " code" if with_code else ""
    return f"""mutation ShopifySyncBulkRunQuery($query: String!) {{
  bulkOperationRunQuery(query: $query) {{
    bulkOperation {{ ...BulkOperationFields }}
    userErrors {{ field message{codes} }}
  }}
}}
{_OPERATION_FIELDS}
"""


def _get_query(by_bulk_operation: bool) -> str:
    if by_bulk_operation:
        return f"""query ShopifySyncBulkOperation($id: ID!) {{
  bulkOperation(id: $id) {{ ...BulkOperationFields }}
}}
{_OPERATION_FIELDS}
"""
    return f"""query ShopifySyncBulkOperation($id: ID!) {{
  node(id: $id) {{ ...BulkOperationFields }}
}}
{_OPERATION_FIELDS}
"""


def _recent_query(by_bulk_operations: bool) -> str:
    # Used only after a submit whose outcome is unknown, to find the operation it may have created.
    if by_bulk_operations:
        return f"""query ShopifySyncRecentBulkOperations {{
  bulkOperations(first: 10) {{ nodes {{ ...BulkOperationFields type query }} }}
}}
{_OPERATION_FIELDS}
"""
    return f"""query ShopifySyncRecentBulkOperations {{
  currentBulkOperation(type: QUERY) {{ ...BulkOperationFields type query }}
}}
{_OPERATION_FIELDS}
"""


CANCEL_MUTATION = f"""mutation ShopifySyncBulkCancel($id: ID!) {{
  bulkOperationCancel(id: $id) {{
    bulkOperation {{ ...BulkOperationFields }}
    userErrors {{ field message }}
  }}
}}
{_OPERATION_FIELDS}
"""


def version_at_least(api_version: str, minimum: str) -> bool:
    """``unstable`` is newer than every dated version."""
    if api_version == "unstable":
        return True
    return api_version >= minimum


def documents_for(api_version: str) -> dict[str, str]:
    """Every GraphQL document the client sends for ``api_version`` (for schema validation)."""
    return {
        "run_query": _run_query_mutation(version_at_least(api_version, "2025-01")),
        "get": _get_query(version_at_least(api_version, "2026-01")),
        "cancel": CANCEL_MUTATION,
        "recent": _recent_query(version_at_least(api_version, "2026-01")),
    }


def _to_int(value: Any) -> int | None:
    # UnsignedInt64 comes as a JSON string ("5033").
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class BulkOperation:
    """A snapshot of a Shopify ``BulkOperation``.

    The result URLs are pre-signed (whoever has them can read the data for 7 days),
    so they stay out of ``repr`` and therefore out of logs and Dagster metadata.
    """

    id: str
    status: str
    error_code: str | None = None
    created_at: str | None = None
    completed_at: str | None = None
    object_count: int = 0
    root_object_count: int = 0
    file_size: int | None = None
    url: str | None = field(default=None, repr=False)
    partial_data_url: str | None = field(default=None, repr=False)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_graphql(cls, node: dict[str, Any]) -> BulkOperation:
        return cls(
            id=str(node["id"]),
            status=str(node["status"]),
            error_code=node.get("errorCode"),
            created_at=node.get("createdAt"),
            completed_at=node.get("completedAt"),
            object_count=_to_int(node.get("objectCount")) or 0,
            root_object_count=_to_int(node.get("rootObjectCount")) or 0,
            file_size=_to_int(node.get("fileSize")),
            url=node.get("url"),
            partial_data_url=node.get("partialDataUrl"),
        )


@dataclass(frozen=True)
class BulkResult:
    """A finished bulk query: its final operation and the downloaded JSONL on disk.

    ``path`` exists even for an empty result (COMPLETED with ``url: null``): an empty file.
    """

    operation: BulkOperation
    path: Path
    bytes: int
    object_count: int


class ShopifyBulkClient:
    """One shop's Admin GraphQL endpoint, for bulk queries. Not thread-safe; one per run."""

    def __init__(
        self,
        base_url: str,
        token: str,
        api_version: str,
        poll_interval_seconds: float = 16,
        poll_max_attempts: int = 128,
        *,
        log: LogLike | None = None,
        sleep: Callable[[float], None] = time.sleep,
        http: httpx.Client | None = None,
        max_request_retries: int = 5,
        max_request_wait_seconds: float = 300.0,
        in_progress_max_wait: float = 1800.0,
        max_resubmits: int = 3,
        resubmit_backoff_seconds: float = 30.0,
        download_retries: int = 3,
        download_chunk_bytes: int = 1 << 20,
        timeout_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
        shop_code: str | None = None,
    ) -> None:
        parsed = urlparse(base_url or "")
        if parsed.scheme not in {"http", "https"} or not parsed.hostname:
            raise ValueError(f"base_url must be an http(s):// URL of the shop, got {base_url!r}")
        if not token or not isinstance(token, str):
            raise ValueError("token must be a non-empty Admin API access token")
        if api_version != "unstable" and not _VERSION.match(api_version or ""):
            raise ValueError(f"api_version must look like 2026-10 or be 'unstable', got {api_version!r}")
        if poll_interval_seconds < 0:
            raise ValueError(f"poll_interval_seconds must be >= 0, got {poll_interval_seconds}")
        if poll_max_attempts < 1:
            raise ValueError(f"poll_max_attempts must be >= 1, got {poll_max_attempts}")
        for name, value in (("max_request_retries", max_request_retries), ("max_resubmits", max_resubmits),
                            ("download_retries", download_retries)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if download_chunk_bytes < 1:
            raise ValueError("download_chunk_bytes must be >= 1")

        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        self.endpoint = f"{self.base_url}/admin/api/{api_version}/graphql.json"
        self.poll_interval_seconds = float(poll_interval_seconds)
        self.poll_max_attempts = int(poll_max_attempts)
        self.max_request_retries = max_request_retries
        self.max_request_wait_seconds = max_request_wait_seconds
        self.in_progress_max_wait = in_progress_max_wait
        self.max_resubmits = max_resubmits
        self.resubmit_backoff_seconds = resubmit_backoff_seconds
        self.download_retries = download_retries
        self.download_chunk_bytes = download_chunk_bytes
        self.served_version: str | None = None
        # Only for messages: errors then name the exact variable to fix (SHOPIFY_DE_TOKEN).
        self.shop_code = shop_code
        self._token = token
        self._log: LogLike = log if log is not None else logging.getLogger(__name__)
        self._sleep = sleep
        self._clock = clock
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=timeout_seconds)
        # A separate client for the pre-signed result URL: it never saw the token, so a
        # redirect or a shared default header cannot leak it to the storage host.
        self._download_http = httpx.Client(timeout=httpx.Timeout(timeout_seconds, read=120.0),
                                           follow_redirects=True)
        self._with_code = version_at_least(api_version, "2025-01")
        self._by_bulk_operation = version_at_least(api_version, "2026-01")

    def __repr__(self) -> str:
        return (f"ShopifyBulkClient(base_url={self.base_url!r}, api_version={self.api_version!r}, "
                f"poll_interval_seconds={self.poll_interval_seconds:g}, "
                f"poll_max_attempts={self.poll_max_attempts}, token=<redacted>)")

    def close(self) -> None:
        if self._owns_http:
            self._http.close()
        self._download_http.close()

    def __enter__(self) -> ShopifyBulkClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- request layer ----------------------------------------------------------------

    def _redact(self, text: str) -> str:
        # Server text (error bodies, messages) is echoed into exceptions; a misbehaving
        # proxy could reflect our header, so scrub the token from anything we quote.
        return text.replace(self._token, "<redacted>") if self._token else text

    def _backoff(self, attempt: int, base: float = 1.0, cap: float = 60.0) -> float:
        return min(cap, base * (2 ** attempt))

    def _note_version(self, response: httpx.Response) -> None:
        served = response.headers.get("X-Shopify-API-Version")
        if served and served != self.served_version:
            self.served_version = served
            if served != self.api_version:
                # Shopify "falls forward" from unsupported versions to the oldest supported one (§1.4).
                self._log.warning(f"Shopify served API version {served} for requested {self.api_version} "
                                  "(requested version unsupported, Shopify fell forward)")
            else:
                self._log.info(f"Shopify API version {served}")

    def _retry_after(self, response: httpx.Response) -> float | None:
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
        return max(0.0, when.timestamp() - self._clock())

    @staticmethod
    def _throttle_wait(body: dict[str, Any]) -> float:
        cost = (body.get("extensions") or {}).get("cost") or {}
        status = cost.get("throttleStatus") or {}
        try:
            requested = float(cost.get("requestedQueryCost") or 0)
            available = float(status.get("currentlyAvailable") or 0)
            restore = float(status.get("restoreRate") or 0)
        except (TypeError, ValueError):
            return 1.0
        if restore <= 0:
            return 1.0
        # Leaky bucket: the request runs once the bucket has refilled to its requested cost (§5.2).
        return float(max(1, math.ceil((requested - available) / restore)))

    def _graphql(self, document: str, variables: dict[str, Any], what: str, *,
                 before_retry: Callable[[], dict[str, Any] | None] | None = None,
                 retries: int | None = None) -> dict[str, Any]:
        """POST one GraphQL document; returns ``data``. Retries transient failures, bounded.

        ``before_retry`` runs before re-sending after a failure that may have been
        executed anyway (a lost response: read timeout, 5xx); if it returns data, that
        is the result and the request is not sent again.
        """
        max_retries = self.max_request_retries if retries is None else retries
        waited = 0.0
        attempt = 0
        while True:
            retry_in: float | None = None
            problem = ""
            status_code: int | None = None
            # Did Shopify possibly execute it? Not when the connection never opened or on 429.
            maybe_executed = True
            try:
                response = self._http.post(
                    self.endpoint,
                    json={"query": document, "variables": variables},
                    headers={"X-Shopify-Access-Token": self._token, "Content-Type": "application/json",
                             "Accept": "application/json"},
                )
            except httpx.TransportError as exc:
                problem = f"transport error ({type(exc).__name__}: {self._redact(str(exc))[:200]})"
                retry_in = self._backoff(attempt)
                maybe_executed = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
            else:
                status_code = response.status_code
                self._note_version(response)
                if status_code in AUTH_ERRORS:
                    detail = self._error_detail(response)
                    raise AUTH_ERRORS[status_code](self.base_url, detail, shop_code=self.shop_code)
                if status_code in _RETRYABLE_STATUS:
                    problem = f"HTTP {status_code}"
                    maybe_executed = status_code != 429
                    retry_in = self._retry_after(response) if status_code in (429, 503) else None
                    if retry_in is None:
                        retry_in = self._backoff(attempt)
                elif status_code != 200:
                    detail = self._error_detail(response)
                    code = self.shop_code or "<CODE>"
                    hint = f" (check SHOPIFY_{code}_STORE and SHOPIFY_API_VERSION)" if status_code == 404 else ""
                    raise ShopifyRequestError(
                        f"{what}: Shopify answered HTTP {status_code} from {self.endpoint}{hint}"
                        + (f": {detail}" if detail else ""), status_code=status_code)
                else:
                    try:
                        body = response.json()
                    except ValueError:
                        body = None
                    if not isinstance(body, dict):
                        problem = "response body is not a JSON object"
                        retry_in = self._backoff(attempt)
                    else:
                        errors = body.get("errors") or []
                        if isinstance(errors, str):
                            errors = [{"message": errors}]
                        if not errors:
                            data = body.get("data")
                            if not isinstance(data, dict):
                                raise ShopifyRequestError(f"{what}: response has neither data nor errors")
                            return data
                        codes = [((e.get("extensions") or {}).get("code") if isinstance(e, dict) else None)
                                 for e in errors]
                        messages = [self._redact(str(e.get("message") if isinstance(e, dict) else e))
                                    for e in errors]
                        if "THROTTLED" in codes or any(m.lower() == "throttled" for m in messages):
                            problem = "THROTTLED (query cost bucket empty)"
                            retry_in = self._throttle_wait(body)
                            maybe_executed = False
                        elif "ACCESS_DENIED" in codes:
                            raise AccessDenied(detail="; ".join(messages))
                        elif "INTERNAL_SERVER_ERROR" in codes:
                            problem = "GraphQL INTERNAL_SERVER_ERROR"
                            retry_in = self._backoff(attempt)
                        else:
                            raise ShopifyGraphQLError(messages, codes)
            if attempt >= max_retries or waited + retry_in > self.max_request_wait_seconds:
                raise ShopifyRequestError(
                    f"{what} failed after {attempt + 1} attempt(s) and {waited:.0f}s of waiting: {problem}",
                    status_code=status_code)
            self._log.warning(f"{what}: {problem}; retrying in {retry_in:.1f}s "
                              f"(attempt {attempt + 1} of {max_retries + 1})")
            self._sleep(retry_in)
            waited += retry_in
            attempt += 1
            if maybe_executed and before_retry is not None:
                recovered = before_retry()
                if recovered is not None:
                    return recovered

    def _error_detail(self, response: httpx.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return self._redact(response.text[:200]).strip()
        if isinstance(body, dict):
            errors = body.get("errors")
            if isinstance(errors, str):
                return self._redact(errors)[:300]
            if isinstance(errors, list):
                msgs = [str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors]
                return self._redact("; ".join(msgs))[:300]
        return self._redact(str(body))[:200]

    # --- bulk operations ----------------------------------------------------------------

    def submit(self, inner_query: str) -> BulkOperation:
        """Start ``bulkOperationRunQuery``; returns the new operation before any polling.

        Waits out OPERATION_IN_PROGRESS (another bulk query of this app on this shop)
        with bounded exponential backoff; raises ``OperationInProgressTimeout`` past
        ``in_progress_max_wait`` seconds, ``BulkQueryInvalid`` for an invalid query.
        """
        if not isinstance(inner_query, str) or not inner_query.strip():
            raise ValueError("inner_query must be a non-empty GraphQL query string")
        document = _run_query_mutation(self._with_code)
        waited = 0.0
        attempt = 0
        while True:
            data = self._graphql(document, {"query": inner_query}, "bulkOperationRunQuery",
                                 before_retry=lambda: self._adopt_as_payload(inner_query))
            payload = data.get("bulkOperationRunQuery")
            if not isinstance(payload, dict):
                raise ShopifyRequestError("bulkOperationRunQuery: response has no payload")
            user_errors = [e for e in payload.get("userErrors") or [] if isinstance(e, dict)]
            if not user_errors:
                node = payload.get("bulkOperation")
                if not isinstance(node, dict) or not node.get("id"):
                    raise ShopifyRequestError("bulkOperationRunQuery returned neither an operation nor userErrors")
                op = BulkOperation.from_graphql(node)
                self._log.info(f"submitted bulk operation {op.id} (status {op.status})")
                return op
            messages = [self._redact(str(e.get("message", ""))) for e in user_errors]
            codes = [e.get("code") for e in user_errors]
            in_progress = any(c == "OPERATION_IN_PROGRESS" or (not c and IN_PROGRESS_MESSAGE in m)
                              for m, c in zip(messages, codes, strict=True))
            if in_progress:
                # The blocker may be this very job (a lost response, or a crash before its id
                # was stored): then there is nothing to wait for.
                same = self._find_active_same_query(inner_query)
                if same is not None:
                    return same
                blocking = sorted({gid for m in messages for gid in _BULK_GID.findall(m)})
                delay = self._backoff(attempt, base=15.0, cap=120.0)
                if waited + delay > self.in_progress_max_wait:
                    raise OperationInProgressTimeout(blocking, waited, attempt + 1)
                self._log.warning(
                    "OPERATION_IN_PROGRESS: another bulk query is running on this shop "
                    f"({', '.join(blocking) or 'ids not reported'}); waiting {delay:.0f}s before resubmitting")
                self._sleep(delay)
                waited += delay
                attempt += 1
                continue
            if "LIMIT_REACHED" in codes:
                raise BulkSubmitRejected(messages, codes, hint="Shopify's bulk operation quota is used up; "
                                         "run again later")
            raise BulkQueryInvalid(messages, codes)

    def _adopt_as_payload(self, inner_query: str) -> dict[str, Any] | None:
        op = self._find_active_same_query(inner_query)
        if op is None:
            return None
        return {"bulkOperationRunQuery": {"bulkOperation": _op_to_node(op), "userErrors": []}}

    def _find_active_same_query(self, inner_query: str) -> BulkOperation | None:
        """An active (CREATED/RUNNING) operation running exactly ``inner_query``, if any.

        Used after a submit whose response was lost: without it, a read timeout on the
        mutation would leave an orphaned job running (and before 2026-01, with one bulk
        query per shop, make us wait out our own job as OPERATION_IN_PROGRESS). The
        stored ``query`` echoes the submitted text byte for byte, and a run owns its
        shop, so an active operation with the identical text is this job.
        """
        try:
            # One attempt: the caller is already inside a bounded retry loop.
            data = self._graphql(_recent_query(self._by_bulk_operation), {}, "recent bulk operations", retries=0)
        except ShopifyError as exc:
            self._log.warning(f"could not list recent bulk operations: {exc}")
            return None
        if self._by_bulk_operation:
            nodes = ((data.get("bulkOperations") or {}).get("nodes")) or []
        else:
            nodes = [data.get("currentBulkOperation")]
        for node in nodes:
            if (isinstance(node, dict) and node.get("query") == inner_query and node.get("type") in (None, "QUERY")
                    and node.get("status") in ("CREATED", "RUNNING")):
                self._log.warning(f"bulk operation {node['id']} is already running this exact query; adopting "
                                  "it instead of submitting a duplicate")
                return BulkOperation.from_graphql(node)
        return None

    def get(self, op_id: str) -> BulkOperation | None:
        """The operation's current state, or ``None`` if Shopify does not know the id."""
        _check_gid(op_id)
        data = self._graphql(_get_query(self._by_bulk_operation), {"id": op_id}, f"status of {op_id}")
        node = data.get("bulkOperation" if self._by_bulk_operation else "node")
        if not isinstance(node, dict) or not node.get("id") or not node.get("status"):
            return None
        return BulkOperation.from_graphql(node)

    def poll(self, op_id: str, on_status: Callable[[BulkOperation], None] | None = None) -> BulkOperation:
        """Poll every ``poll_interval_seconds`` until COMPLETED (returned) or a typed error.

        After ``poll_max_attempts`` polls without a terminal state the operation is
        cancelled (so it stops blocking the shop's bulk slots) and
        ``PollBudgetExhausted`` is raised.
        """
        _check_gid(op_id)
        last_status = "UNKNOWN"
        for attempt in range(1, self.poll_max_attempts + 1):
            op = self.get(op_id)
            if op is None:
                raise BulkOperationNotFound(op_id)
            if op.status != last_status:
                self._log.info(f"bulk operation {op.id}: {op.status} (objects so far: {op.object_count})")
            else:
                self._log.debug(f"bulk operation {op.id}: {op.status} (poll {attempt}/{self.poll_max_attempts})")
            last_status = op.status
            if on_status is not None:
                on_status(op)
            _raise_for_terminal(op)
            if op.status == "COMPLETED":
                return op
            if attempt < self.poll_max_attempts:
                self._sleep(self.poll_interval_seconds)
        cancel_sent = True
        try:
            self.cancel(op_id)
        except ShopifyError as exc:
            cancel_sent = False
            self._log.error(f"cancelling bulk operation {op_id} after the poll budget failed: {exc}")
        raise PollBudgetExhausted(op_id, self.poll_max_attempts, self.poll_interval_seconds, last_status,
                                  cancel_sent)

    def cancel(self, op_id: str) -> BulkOperation | None:
        """Ask Shopify to cancel; a terminal operation is returned unchanged, unknown → ``None``."""
        _check_gid(op_id)
        data = self._graphql(CANCEL_MUTATION, {"id": op_id}, f"bulkOperationCancel {op_id}")
        payload = data.get("bulkOperationCancel") or {}
        node = payload.get("bulkOperation")
        for err in payload.get("userErrors") or []:
            # "cannot be canceled when it is completed" is the expected race with completion.
            self._log.info(f"cancel {op_id}: {self._redact(str(err.get('message', err)))}")
        if isinstance(node, dict) and node.get("id"):
            op = BulkOperation.from_graphql(node)
            self._log.warning(f"cancel requested for bulk operation {op_id}: now {op.status}")
            return op
        return None

    # --- download -------------------------------------------------------------------------

    def download(self, url: str, dest: str | os.PathLike[str], expected_size: int | None,
                 *, operation_id: str | None = None) -> int:
        """Stream the pre-signed result ``url`` to ``dest``; returns the byte count.

        Memory stays bounded (fixed-size chunks straight to disk). The byte length must
        equal Shopify's ``fileSize``; a failed or short download is retried up to
        ``download_retries`` times, each retry asking only for the missing bytes (an HTTP
        ``Range`` request: a connection lost at 1.9 GB of 2 GB re-reads 0.1 GB) and starting
        over when the host does not serve the range. An expired URL raises
        ``ResultUrlExpired``. The Shopify token is never sent: the URL is its own credential.
        """
        parsed = urlparse(url or "")
        if parsed.scheme not in {"http", "https"} or not parsed.hostname:
            raise DownloadError("result URL is not an http(s) URL", operation_id=operation_id)
        self._check_expiry(parsed.query, operation_id)
        dest_path = Path(dest)
        dest_path.parent.mkdir(parents=True, exist_ok=True)
        part = dest_path.with_name(dest_path.name + ".part")
        # Never the real host/path in messages: the query string is the signature.
        where = f"{parsed.scheme}://{parsed.hostname}"
        problem = ""
        part.unlink(missing_ok=True)  # a leftover from another call may belong to another file
        for attempt in range(self.download_retries + 1):
            if attempt:
                delay = self._backoff(attempt - 1, base=2.0, cap=30.0)
                self._log.warning(f"download of the bulk result failed ({problem}); retrying in {delay:.0f}s "
                                  f"(attempt {attempt + 1} of {self.download_retries + 1})")
                self._sleep(delay)
            have = part.stat().st_size if part.exists() else 0
            if have:
                self._log.info(f"resuming the download of the bulk result at byte {have}")
            try:
                written = self._download_once(url, part, where, operation_id, have)
            except httpx.TransportError as exc:
                problem = f"transport error {type(exc).__name__}"
                continue
            except _RetryableDownload as exc:
                problem = str(exc)
                continue
            except BaseException:
                part.unlink(missing_ok=True)
                raise
            if expected_size is not None and written != expected_size:
                # The host sent a complete response of the wrong length: no prefix to build on.
                problem = f"got {written} bytes, Shopify's fileSize is {expected_size}"
                part.unlink(missing_ok=True)
                continue
            os.replace(part, dest_path)
            self._log.info(f"downloaded bulk result: {written} bytes")
            return written
        part.unlink(missing_ok=True)
        raise DownloadError(f"downloading the bulk result from {where} failed after "
                            f"{self.download_retries + 1} attempts: {problem}", operation_id=operation_id)

    def _check_expiry(self, query: str, operation_id: str | None) -> None:
        expires = _url_expiry(parse_qs(query))
        if expires is None:
            return
        now = self._clock()
        if expires < now:
            raise ResultUrlExpired(
                f"its Expires is {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(expires))}, "
                f"{(now - expires) / 3600:.1f} h ago", operation_id=operation_id)

    def _download_once(self, url: str, part: Path, where: str, operation_id: str | None, offset: int = 0) -> int:
        # identity: fileSize counts the file's bytes, not a compressed transfer.
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        with self._download_http.stream("GET", url, headers=headers) as response:
            status = response.status_code
            if status in (400, 403, 410):
                raise ResultUrlExpired(f"storage host {where} answered HTTP {status}", operation_id=operation_id)
            if status == 429 or status >= 500:
                raise _RetryableDownload(f"storage host answered HTTP {status}")
            if offset and status == 416:
                part.unlink(missing_ok=True)
                raise _RetryableDownload(f"storage host refused the range from byte {offset}; starting over")
            if offset and status == 206:
                served = re.fullmatch(r"bytes (\d+)-\d+/(?:\d+|\*)", response.headers.get("content-range", "").strip())
                if served is None or int(served.group(1)) != offset:
                    part.unlink(missing_ok=True)
                    raise _RetryableDownload("storage host served another range than asked; starting over")
            elif status == 200:
                offset = 0  # the host ignored the Range header: the whole file again
            else:
                raise DownloadError(f"storage host {where} answered HTTP {status} for the result URL",
                                    operation_id=operation_id)
            written = offset
            # Network-sized chunks into a download_chunk_bytes file buffer: bytes received
            # before a broken connection still reach the file (httpx's own chunker would
            # drop its partly filled buffer), so the retry's range starts right after them.
            with open(part, "ab" if offset else "wb", buffering=self.download_chunk_bytes) as fh:
                for chunk in response.iter_bytes():
                    fh.write(chunk)
                    written += len(chunk)
            return written

    # --- the whole job --------------------------------------------------------------------

    def run(
        self,
        inner_query: str,
        dest: str | os.PathLike[str],
        *,
        resume_operation_id: str | None = None,
        on_submitted: Callable[[BulkOperation], None] | None = None,
        on_status: Callable[[BulkOperation], None] | None = None,
    ) -> BulkResult:
        """Submit (or resume), poll, download: the JSONL ends up at ``dest``.

        ``on_submitted`` is called with every newly submitted operation before it is
        polled, so the caller can persist its id; pass that id back as
        ``resume_operation_id`` after a crash to re-poll it instead of starting over.
        A resumed id that Shopify no longer knows, or that ended CANCELED / EXPIRED /
        with an expired URL, is resubmitted. FAILED with INTERNAL_SERVER_ERROR or
        TIMEOUT is resubmitted with backoff up to ``max_resubmits`` times;
        ACCESS_DENIED fails at once.
        """
        dest_path = Path(dest)
        op_id: str | None = None
        resumed = False
        if resume_operation_id:
            op_id, resumed = self._resume(resume_operation_id), True
        resubmits = 0

        def resubmit_or_raise(exc: ShopifyError, reason: str) -> None:
            nonlocal resubmits, op_id
            if resubmits >= self.max_resubmits:
                if isinstance(exc, BulkOperationFailed):
                    raise BulkOperationFailed(exc.error_code, exc.operation_id, exc.partial_data_url,
                                              resubmits=resubmits) from exc
                raise exc
            delay = self._backoff(resubmits, base=self.resubmit_backoff_seconds, cap=600.0)
            resubmits += 1
            self._log.warning(f"{reason}; resubmitting in {delay:.0f}s "
                              f"(resubmission {resubmits} of {self.max_resubmits})")
            self._sleep(delay)
            op_id = None

        while True:
            if op_id is None:
                resumed = False
                op = self.submit(inner_query)
                op_id = op.id
                if on_submitted is not None:
                    try:
                        on_submitted(op)
                    except BaseException:
                        # The caller could not record the id, so nobody could resume this job:
                        # cancel it rather than leave it holding one of the shop's bulk slots.
                        self._cancel_quietly(op.id)
                        raise
            try:
                final = self.poll(op_id, on_status)
            except BulkOperationFailed as exc:
                if exc.error_code not in RESUBMITTABLE_ERROR_CODES:
                    raise
                resubmit_or_raise(exc, str(exc))
                continue
            except (BulkOperationCanceled, BulkOperationExpired, BulkOperationNotFound) as exc:
                if not resumed:
                    raise
                # A stale stored id: its job is gone, so the only way forward is a new one.
                resubmit_or_raise(exc, f"resumed {exc}")
                continue
            if final.url is None:
                dest_path.parent.mkdir(parents=True, exist_ok=True)
                dest_path.write_bytes(b"")
                self._log.info(f"bulk operation {final.id} COMPLETED with no results (url null)")
                return BulkResult(final, dest_path, 0, 0)
            try:
                size = self.download(final.url, dest_path, final.file_size, operation_id=final.id)
            except ResultUrlExpired as exc:
                resubmit_or_raise(exc, str(exc))
                continue
            return BulkResult(final, dest_path, size, final.object_count)

    def _cancel_quietly(self, op_id: str) -> None:
        try:
            self.cancel(op_id)
        except Exception as exc:  # noqa: BLE001 - best effort while another error propagates
            self._log.error(f"could not cancel orphaned bulk operation {op_id}: {exc}")

    def _resume(self, op_id: str) -> str | None:
        """The id to keep polling, or ``None`` when a new operation must be submitted."""
        op = self.get(op_id)
        if op is None:
            self._log.warning(f"stored bulk operation {op_id} is unknown to Shopify; submitting a new one")
            return None
        if op.status in ("CANCELED", "EXPIRED"):
            self._log.warning(f"stored bulk operation {op_id} ended {op.status}; submitting a new one")
            return None
        if op.status == "FAILED" and op.error_code in RESUBMITTABLE_ERROR_CODES:
            self._log.warning(f"stored bulk operation {op_id} FAILED with {op.error_code}; submitting a new one")
            return None
        self._log.info(f"resuming bulk operation {op_id} ({op.status}) instead of submitting a new one")
        return op.id


class _RetryableDownload(Exception):
    pass


_SIGNED_PARAMS = ("Signature", "X-Amz-Signature", "X-Goog-Signature", "sig")


class _SignedUrlLogFilter(logging.Filter):
    """Drops the query string of pre-signed URLs from httpx's INFO request lines.

    A signed result URL reads the shop's order data for 7 days; it must not end up in
    log files or in Dagster's captured logs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 2 and isinstance(args[1], httpx.URL):
            url = args[1]
            if url.query and any(p in url.params for p in _SIGNED_PARAMS):
                record.args = (args[0], url.copy_with(query=b"redacted-signature"), *args[2:])
        return True


if not any(isinstance(f, _SignedUrlLogFilter) for f in logging.getLogger("httpx").filters):
    logging.getLogger("httpx").addFilter(_SignedUrlLogFilter())


def _url_expiry(params: dict[str, list[str]]) -> float | None:
    """Unix expiry of a pre-signed URL: GCS V2 ``Expires`` or S3/GCS V4 ``X-Amz-Date`` + ``X-Amz-Expires``."""
    try:
        if "Expires" in params:
            return float(params["Expires"][0])
        if "X-Amz-Date" in params and "X-Amz-Expires" in params:
            signed = datetime.strptime(params["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            return signed.timestamp() + float(params["X-Amz-Expires"][0])
    except (ValueError, IndexError):
        return None
    return None


def _op_to_node(op: BulkOperation) -> dict[str, Any]:
    return {"id": op.id, "status": op.status, "errorCode": op.error_code, "createdAt": op.created_at,
            "completedAt": op.completed_at, "objectCount": str(op.object_count),
            "rootObjectCount": str(op.root_object_count),
            "fileSize": None if op.file_size is None else str(op.file_size), "url": op.url,
            "partialDataUrl": op.partial_data_url}


def _check_gid(op_id: str) -> None:
    if not isinstance(op_id, str) or not _BULK_GID.fullmatch(op_id):
        raise ValueError(f"not a bulk operation id (gid://shopify/BulkOperation/<n>): {op_id!r}")


def _raise_for_terminal(op: BulkOperation) -> None:
    if op.status == "FAILED":
        if op.error_code == "ACCESS_DENIED":
            raise AccessDenied(op.id, partial_data_url=op.partial_data_url)
        raise BulkOperationFailed(op.error_code, op.id, op.partial_data_url)
    if op.status == "CANCELED":
        raise BulkOperationCanceled(op.id)
    if op.status == "EXPIRED":
        raise BulkOperationExpired(op.id)
