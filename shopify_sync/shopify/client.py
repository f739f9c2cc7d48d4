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
- Every wait goes through the injected ``sleep`` and every wait loop is bounded
  (``ClientOptions``), so a run can never hang forever and tests can run the slow
  paths instantly.
- The access token is sent only to the GraphQL endpoint, as a per-request header. The
  result file lives on another host behind a pre-signed URL and is fetched by a
  separate HTTP client that never had the token (``download``).
- What an answer means (data, typed error, or retry) is decided in ``responses``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import httpx

from shopify_sync.shopify.documents import (
    CANCEL_MUTATION,
    get_query,
    recent_query,
    run_query_mutation,
    version_at_least,
)
from shopify_sync.shopify.download import ResultDownloader, count_lines_durably
from shopify_sync.shopify.errors import (
    BulkOperationCanceled,
    BulkOperationExpired,
    BulkOperationFailed,
    BulkOperationNotFound,
    BulkQueryInvalid,
    BulkSubmitRejected,
    ObjectCountMismatch,
    OperationInProgressTimeout,
    PollBudgetExhausted,
    ResultUrlExpired,
    ShopifyError,
    ShopifyRequestError,
)
from shopify_sync.shopify.operation import (
    BULK_GID,
    RESUBMITTABLE_ERROR_CODES,
    TERMINAL_STATUSES,
    BulkOperation,
    BulkResult,
    JsonObject,
    check_gid,
    raise_for_terminal,
)
from shopify_sync.shopify.options import ClientOptions, LogLike, backoff
from shopify_sync.shopify.responses import Request, Retry, classify_response, classify_transport_error

__all__ = ["BulkOperation", "BulkResult", "ClientOptions", "LogLike", "ShopifyBulkClient"]

# Before 2025-01 userErrors have no `code`; connectors detect the conflict by this text (§1.2).
IN_PROGRESS_MESSAGE = "already in progress"
_VERSION = re.compile(r"^\d{4}-\d{2}$")


def _check_target(base_url: str, token: str, api_version: str) -> None:
    parsed = urlparse(base_url or "")
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise ValueError(f"base_url must be an http(s):// URL of the shop, got {base_url!r}")
    if not token or not isinstance(token, str):
        raise ValueError("token must be a non-empty Admin API access token")
    if api_version != "unstable" and not _VERSION.match(api_version or ""):
        raise ValueError(f"api_version must look like 2026-10 or be 'unstable', got {api_version!r}")


class ShopifyBulkClient:
    """One shop's Admin GraphQL endpoint, for bulk queries. Not thread-safe; one per run.

    ``shop_code`` is only for messages: errors then name the exact variable to fix
    (``SHOPIFY_DE_TOKEN``).
    """

    def __init__(self, base_url: str, token: str, api_version: str, options: ClientOptions | None = None, *,
                 log: LogLike | None = None, shop_code: str | None = None) -> None:
        _check_target(base_url, token, api_version)
        self.options = options = options or ClientOptions()
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        self.endpoint = f"{self.base_url}/admin/api/{api_version}/graphql.json"
        self.served_version: str | None = None
        self.shop_code = shop_code
        self._token = token
        self._log: LogLike = log if log is not None else logging.getLogger(__name__)
        self._sleep = options.sleep
        self._owns_http = options.http is None
        self._http = options.http if options.http is not None else httpx.Client(timeout=options.timeout_seconds)
        self._downloader = ResultDownloader(options, self._log)
        self._with_code = version_at_least(api_version, "2025-01")
        self._by_bulk_operation = version_at_least(api_version, "2026-01")

    def __repr__(self) -> str:
        return (f"ShopifyBulkClient(base_url={self.base_url!r}, api_version={self.api_version!r}, "
                f"poll_interval_seconds={self.options.poll_interval_seconds:g}, "
                f"poll_max_attempts={self.options.poll_max_attempts}, token=<redacted>)")

    def close(self) -> None:
        if self._owns_http:
            self._http.close()
        self._downloader.close()

    def __enter__(self) -> ShopifyBulkClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- request layer ----------------------------------------------------------------

    def _redact(self, text: str) -> str:
        # Server text (error bodies, messages) is echoed into exceptions; a misbehaving
        # proxy could reflect our header, so scrub the token from anything we quote.
        return text.replace(self._token, "<redacted>") if self._token else text

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

    def _send(self, document: str, variables: JsonObject, request: Request) -> JsonObject | Retry:
        try:
            response = self._http.post(
                self.endpoint,
                json={"query": document, "variables": variables},
                headers={"X-Shopify-Access-Token": self._token, "Content-Type": "application/json",
                         "Accept": "application/json"},
            )
        except httpx.TransportError as exc:
            return classify_transport_error(exc, self._redact)
        self._note_version(response)
        return classify_response(response, request, self._redact, self.options.clock())

    def _graphql(self, document: str, variables: JsonObject, what: str, *,
                 before_retry: Callable[[], JsonObject | None] | None = None,
                 retries: int | None = None) -> JsonObject:
        """POST one GraphQL document; returns ``data``. Retries transient failures, bounded.

        ``before_retry`` runs before re-sending after a failure that may have been
        executed anyway (a lost response: read timeout, 5xx); if it returns data, that
        is the result and the request is not sent again.
        """
        max_retries = self.options.max_request_retries if retries is None else retries
        request = Request(what, self.base_url, self.endpoint, self.shop_code)
        waited = 0.0
        attempt = 0
        while True:
            outcome = self._send(document, variables, request)
            if not isinstance(outcome, Retry):
                return outcome
            wait = backoff(attempt) if outcome.wait is None else outcome.wait
            if attempt >= max_retries or waited + wait > self.options.max_request_wait_seconds:
                raise ShopifyRequestError(
                    f"{what} failed after {attempt + 1} attempt(s) and {waited:.0f}s of waiting: {outcome.problem}",
                    status_code=outcome.status_code)
            self._log.warning(f"{what}: {outcome.problem}; retrying in {wait:.1f}s "
                              f"(attempt {attempt + 1} of {max_retries + 1})")
            self._sleep(wait)
            waited += wait
            attempt += 1
            if outcome.maybe_executed and before_retry is not None:
                recovered = before_retry()
                if recovered is not None:
                    return recovered

    # --- bulk operations ----------------------------------------------------------------

    def submit(self, inner_query: str) -> BulkOperation:
        """Start ``bulkOperationRunQuery``; returns the new operation before any polling.

        Waits out OPERATION_IN_PROGRESS (another bulk query of this app on this shop)
        with bounded exponential backoff; raises ``OperationInProgressTimeout`` past
        ``in_progress_max_wait`` seconds, ``BulkQueryInvalid`` for an invalid query.
        """
        if not isinstance(inner_query, str) or not inner_query.strip():
            raise ValueError("inner_query must be a non-empty GraphQL query string")
        document = run_query_mutation(self._with_code)
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
                return self._submitted(payload)
            messages = [self._redact(str(e.get("message", ""))) for e in user_errors]
            codes = [e.get("code") for e in user_errors]
            if not any(c == "OPERATION_IN_PROGRESS" or (not c and IN_PROGRESS_MESSAGE in m)
                       for m, c in zip(messages, codes, strict=True)):
                if "LIMIT_REACHED" in codes:
                    raise BulkSubmitRejected(messages, codes, hint="Shopify's bulk operation quota is used up; "
                                             "run again later")
                raise BulkQueryInvalid(messages, codes)
            # The blocker may be this very job (a lost response, or a crash before its id
            # was stored): then there is nothing to wait for.
            same = self._find_active_same_query(inner_query)
            if same is not None:
                return same
            blocking = sorted({gid for m in messages for gid in BULK_GID.findall(m)})
            delay = backoff(attempt, base=15.0, cap=120.0)
            if waited + delay > self.options.in_progress_max_wait:
                raise OperationInProgressTimeout(blocking, waited, attempt + 1)
            self._log.warning(
                "OPERATION_IN_PROGRESS: another bulk query is running on this shop "
                f"({', '.join(blocking) or 'ids not reported'}); waiting {delay:.0f}s before resubmitting")
            self._sleep(delay)
            waited += delay
            attempt += 1

    def _submitted(self, payload: JsonObject) -> BulkOperation:
        node = payload.get("bulkOperation")
        if not isinstance(node, dict) or not node.get("id"):
            raise ShopifyRequestError("bulkOperationRunQuery returned neither an operation nor userErrors")
        op = BulkOperation.from_graphql(node)
        self._log.info(f"submitted bulk operation {op.id} (status {op.status})")
        return op

    def _adopt_as_payload(self, inner_query: str) -> JsonObject | None:
        op = self._find_active_same_query(inner_query)
        if op is None:
            return None
        return {"bulkOperationRunQuery": {"bulkOperation": op.as_graphql(), "userErrors": []}}

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
            data = self._graphql(recent_query(self._by_bulk_operation), {}, "recent bulk operations", retries=0)
        except ShopifyError as exc:
            self._log.warning(f"could not list recent bulk operations: {exc}")
            return None
        if self._by_bulk_operation:
            listing = data.get("bulkOperations")
            nodes = (listing.get("nodes") if isinstance(listing, dict) else None) or []
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
        check_gid(op_id)
        data = self._graphql(get_query(self._by_bulk_operation), {"id": op_id}, f"status of {op_id}")
        node = data.get("bulkOperation" if self._by_bulk_operation else "node")
        if not isinstance(node, dict) or not node.get("id") or not node.get("status"):
            return None
        return BulkOperation.from_graphql(node)

    def poll(self, op_id: str, on_status: Callable[[BulkOperation], None] | None = None) -> BulkOperation:
        """Poll every ``poll_interval_seconds`` until COMPLETED (returned) or a typed error.

        After ``poll_max_attempts`` polls without a terminal state the operation is
        cancelled (so it stops blocking the shop's bulk slots) and
        ``PollBudgetExhausted`` is raised - unless it completed in the meantime: then
        the cancel answer (or a final re-read) is COMPLETED and is returned as usual.
        """
        check_gid(op_id)
        interval, attempts = self.options.poll_interval_seconds, self.options.poll_max_attempts
        last_status = "UNKNOWN"
        for attempt in range(1, attempts + 1):
            op = self.get(op_id)
            if op is None:
                raise BulkOperationNotFound(op_id)
            if op.status != last_status:
                self._log.info(f"bulk operation {op.id}: {op.status} (objects so far: {op.object_count})")
            else:
                self._log.debug(f"bulk operation {op.id}: {op.status} (poll {attempt}/{attempts})")
            last_status = op.status
            if on_status is not None:
                on_status(op)
            raise_for_terminal(op)
            if op.status == "COMPLETED":
                return op
            if attempt < attempts:
                self._sleep(interval)
        return self._cancel_after_budget(op_id, last_status, on_status)

    def _cancel_after_budget(self, op_id: str, last_status: str,
                             on_status: Callable[[BulkOperation], None] | None) -> BulkOperation:
        """Cancel an operation that outlived the poll budget; its result if it completed meanwhile.

        The job may complete between the last poll and the cancel: Shopify then answers
        the cancel with the COMPLETED operation (URL included) and a userError (§2.6).
        Throwing that finished result away would only make the caller resubmit the job.
        """
        interval, attempts = self.options.poll_interval_seconds, self.options.poll_max_attempts
        cancel_sent = True
        op: BulkOperation | None = None
        try:
            op = self.cancel(op_id)
        except ShopifyError as exc:
            cancel_sent = False
            self._log.error(f"cancelling bulk operation {op_id} after the poll budget failed: {exc}")
        if op is None or op.status not in TERMINAL_STATUSES | {"CANCELING"}:
            op = self._reread_quietly(op_id) or op
        if op is not None and op.status == "COMPLETED":
            self._log.info(f"bulk operation {op_id} completed just after the poll budget of {attempts} polls ran "
                           "out (the cancel came too late); using its result")
            if on_status is not None:
                on_status(op)
            return op
        if op is not None and op.status == "FAILED":
            raise_for_terminal(op)  # failed meanwhile: its error code decides about resubmitting
        raise PollBudgetExhausted(op_id, attempts, interval, last_status, cancel_sent)

    def _reread_quietly(self, op_id: str) -> BulkOperation | None:
        try:
            return self.get(op_id)
        except ShopifyError as exc:
            self._log.warning(f"could not re-read bulk operation {op_id} after cancelling it: {exc}")
            return None

    def cancel(self, op_id: str) -> BulkOperation | None:
        """Ask Shopify to cancel; a terminal operation is returned unchanged, unknown → ``None``."""
        check_gid(op_id)
        data = self._graphql(CANCEL_MUTATION, {"id": op_id}, f"bulkOperationCancel {op_id}")
        payload = data.get("bulkOperationCancel") or {}
        if not isinstance(payload, dict):
            payload = {}
        messages = [self._redact(str(e.get("message", e) if isinstance(e, dict) else e))
                    for e in payload.get("userErrors") or []]
        node = payload.get("bulkOperation")
        op = BulkOperation.from_graphql(node) if isinstance(node, dict) and node.get("id") else None
        if op is None:
            self._log.warning(f"cancel {op_id}: {'; '.join(messages) or 'no operation in the answer'}")
        elif messages:
            # "cannot be canceled when it is completed": the expected race with completion,
            # or a repeated cancel; the operation comes back unchanged (§2.6).
            self._log.info(f"bulk operation {op_id} was not cancelled, it is already {op.status}: "
                           f"{'; '.join(messages)}")
        else:
            self._log.warning(f"cancel requested for bulk operation {op_id}: now {op.status}")
        return op

    def download(self, url: str, dest: str | os.PathLike[str], expected_size: int | None,
                 *, operation_id: str | None = None) -> int:
        """Stream the pre-signed result ``url`` to ``dest`` (see ``ResultDownloader.download``)."""
        return self._downloader.download(url, dest, expected_size, operation_id=operation_id)

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
        op_id = self._resume(resume_operation_id) if resume_operation_id else None
        resumed = op_id is not None
        resubmits = _Resubmissions(self.options, self._log)
        while True:
            if op_id is None:
                resumed = False
                op_id = self._submit_for_run(inner_query, on_submitted)
            try:
                return self._finish(self.poll(op_id, on_status), Path(dest))
            except BulkOperationFailed as exc:
                if exc.error_code not in RESUBMITTABLE_ERROR_CODES:
                    raise
                resubmits.wait_or_raise(exc, str(exc))
            except (BulkOperationCanceled, BulkOperationExpired, BulkOperationNotFound) as exc:
                if not resumed:
                    raise
                # A stale stored id: its job is gone, so the only way forward is a new one.
                resubmits.wait_or_raise(exc, f"resumed {exc}")
            except ResultUrlExpired as exc:
                resubmits.wait_or_raise(exc, str(exc))
            op_id = None

    def _submit_for_run(self, inner_query: str, on_submitted: Callable[[BulkOperation], None] | None) -> str:
        op = self.submit(inner_query)
        if on_submitted is not None:
            try:
                on_submitted(op)
            except BaseException:
                # The caller could not record the id, so nobody could resume this job:
                # cancel it rather than leave it holding one of the shop's bulk slots.
                self._cancel_quietly(op.id)
                raise
        return op.id

    def _finish(self, final: BulkOperation, dest: Path) -> BulkResult:
        """Download a COMPLETED operation's result to ``dest`` (an empty file when it has none)."""
        if final.url is None:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(b"")
            self._log.info(f"bulk operation {final.id} COMPLETED with no results (url null)")
            return BulkResult(final, dest, 0, 0)
        size = self.download(final.url, dest, final.file_size, operation_id=final.id)
        lines = count_lines_durably(dest)
        if lines != final.object_count:  # one line per object: a file Shopify did not finish writing
            raise ObjectCountMismatch(final.id, final.object_count, lines)
        return BulkResult(final, dest, size, final.object_count)

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


class _Resubmissions:
    """Counts the new operations one ``run`` submits after a failure, up to ``max_resubmits``."""

    def __init__(self, options: ClientOptions, log: LogLike) -> None:
        self.options, self._log = options, log
        self.count = 0

    def wait_or_raise(self, exc: ShopifyError, reason: str) -> None:
        """Wait before the next resubmission; re-raise ``exc`` when none is left."""
        limit = self.options.max_resubmits
        if self.count >= limit:
            if isinstance(exc, BulkOperationFailed):
                raise BulkOperationFailed(exc.error_code, exc.operation_id, exc.partial_data_url,
                                          resubmits=self.count) from exc
            raise exc
        delay = backoff(self.count, base=self.options.resubmit_backoff_seconds, cap=600.0)
        self.count += 1
        self._log.warning(f"{reason}; resubmitting in {delay:.0f}s (resubmission {self.count} of {limit})")
        self.options.sleep(delay)
