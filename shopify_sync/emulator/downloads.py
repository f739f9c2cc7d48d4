"""The result-file host: the second listener, a different origin like Shopify's storage bucket.

Result URLs are pre-signed (an HMAC over file name and expiry, GCS V2 style query
parameters) and expire 7 days after completion. The host answers as the storage host
does: XML errors, single byte ``Range`` requests (206/416), and the download faults
(500, truncated body, expired).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import urllib.parse
from collections.abc import Iterator

from shopify_sync.emulator.bulk import URL_LIFETIME, BulkMachine, BulkOp, root_field
from shopify_sync.emulator.faults import Fault
from shopify_sync.emulator.response import Response
from shopify_sync.emulator.results import ResultFile, read_chunks
from shopify_sync.emulator.state import EmulatorState

_DOWNLOAD_FAULTS = {"download_500", "download_truncated", "download_expired"}


class ResultHost:
    """Signs result URLs and serves them (``handle_download``)."""

    def __init__(self, state: EmulatorState, bulk: BulkMachine) -> None:
        self.state = state
        self.bulk = bulk
        self.base_url = "http://127.0.0.1:0"  # set by the server
        self._secret = secrets.token_bytes(16)

    def _signature(self, name: str, expires: int) -> str:
        return hmac.new(self._secret, f"{name}\n{expires}".encode(), hashlib.sha256).hexdigest()[:64]

    def signed_url(self, op: BulkOp, which: str) -> str:
        """The pre-signed URL of ``op``'s ``result`` or ``partial`` file."""
        at = op.completed_at if which == "result" else op.complete_at.replace(microsecond=0)
        assert at is not None
        expires = int((at + URL_LIFETIME).timestamp())
        name = f"{'' if which == 'result' else 'partial-'}bulk-{op.num}.jsonl"
        query = urllib.parse.urlencode({
            "GoogleAccessId": "bulk-operations@shopify-emulator.iam.gserviceaccount.com",
            "Expires": str(expires), "Signature": self._signature(name, expires),
            "response-content-disposition": f'attachment; filename="{name}"; filename*=UTF-8\'\'{name}',
            "response-content-type": "application/jsonl"})
        return f"{self.base_url}/shopify-tiers-assets-prod-us-east1/bulk-operation-outputs/{name}?{query}"

    def handle_download(self, path: str, query: str, headers: dict[str, str]) -> Response:
        hdrs = {k.lower(): v for k, v in headers.items()}
        params = dict(urllib.parse.parse_qsl(query))
        name = path.rsplit("/", 1)[-1]
        op_num = None
        try:
            op_num = int(name.removeprefix("partial-").removeprefix("bulk-").removesuffix(".jsonl"))
        except ValueError:
            pass
        op = self.bulk.find(op_num) if op_num is not None else None
        request = _Request(self.state, op, f"gid://shopify/BulkOperation/{op_num}" if op_num is not None else None)
        if "x-shopify-access-token" in hdrs:
            # A pre-signed URL must be fetched without the shop's credentials (and never leak them).
            return request.error(403, "AccessDenied", "Access denied.",
                                 "Anonymous pre-signed request must not carry X-Shopify-Access-Token.")
        try:
            expires = int(params.get("Expires", ""))
        except ValueError:
            return request.error(400, "MissingSecurityHeader", "Your request was missing a required header.",
                                 "Expires")
        if op is None or not hmac.compare_digest(params.get("Signature", ""), self._signature(name, expires)):
            return request.error(403, "SignatureDoesNotMatch",
                                 "The request signature we calculated does not match the signature you provided.")
        fault = self.state.faults.take(_DOWNLOAD_FAULTS, "download", op.shop, root_field(op.query))
        if (fault is not None and fault.kind == "download_expired") or self.state.now().timestamp() > expires:
            return request.error(403, "ExpiredToken", "The provided token has expired.",
                                 f"Request has expired: {expires}")
        if fault is not None and fault.kind == "download_500":
            return request.error(500, "InternalError", "We encountered an internal error. Please try again.")
        result = op.partial if name.startswith("partial-") else op.result
        if result is None:
            return request.error(404, "NoSuchKey", "The specified key does not exist.")
        return request.serve(result, name, hdrs.get("range"), fault)


class _Request:
    """One download request: answers it and records it in the request log."""

    def __init__(self, state: EmulatorState, op: BulkOp | None, op_id: str | None) -> None:
        self.state, self.op, self.op_id = state, op, op_id

    def _log(self, status: int, detail: str) -> None:
        op = self.op
        self.state.log("download", op.shop if op else None, op.version if op else None, self.op_id, status, detail)

    def error(self, status: int, code: str, message: str, details: str = "") -> Response:
        body = ("<?xml version='1.0' encoding='UTF-8'?><Error><Code>" + code + "</Code><Message>" + message
                + "</Message>" + (f"<Details>{details}</Details>" if details else "") + "</Error>")
        self._log(status, code)
        return Response(status, body.encode(), {"Content-Type": "application/xml; charset=UTF-8"})

    def serve(self, result: ResultFile, name: str, rng: str | None, fault: Fault | None) -> Response:
        headers_out = {"Content-Type": "application/jsonl",
                       "Content-Disposition": f'attachment; filename="{name}"',
                       "Cache-Control": "private, max-age=0", "Accept-Ranges": "bytes"}
        start, end, status = 0, result.size, 200
        if rng:  # storage hosts honour single byte ranges: lets a client resume a broken download
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
            if m is None or int(m.group(1)) >= result.size:
                self._log(416, "bad range")
                return Response(416, b"", {"Content-Range": f"bytes */{result.size}"})
            start = int(m.group(1))
            end = min(result.size, int(m.group(2)) + 1) if m.group(2) else result.size
            status = 206
            headers_out["Content-Range"] = f"bytes {start}-{end - 1}/{result.size}"
        length = end - start
        send = length
        if fault is not None and fault.kind == "download_truncated":
            send = int(length * fault.number("fraction", 0.5))
        self._log(status, "truncated" if send < length else "")
        return Response(status, None, headers_out, stream=(length, _limit(read_chunks(result, start), send)))


def _limit(chunks: Iterator[bytes], n: int) -> Iterator[bytes]:
    sent = 0
    for c in chunks:
        if sent + len(c) >= n:
            yield c[: n - sent]
            return
        sent += len(c)
        yield c
