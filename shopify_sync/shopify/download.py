"""Downloading a bulk result from its pre-signed URL: bounded memory, resumable, token-free.

The result file lives on another host (Shopify's storage bucket) behind a pre-signed
URL. It is fetched by an HTTP client that never had the shop's token, so a redirect or
a shared default header cannot leak it, and the URL's signature is kept out of logs.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx

from shopify_sync.shopify.errors import DownloadError, ResultUrlExpired
from shopify_sync.shopify.options import ClientOptions, LogLike, backoff


class _RetryableDownload(Exception):
    pass


class ResultDownloader:
    """Streams result files to disk, with ``options.download_retries`` resumed attempts."""

    def __init__(self, options: ClientOptions, log: LogLike) -> None:
        self.options = options
        self._log = log
        # Its own client: it never saw the token (see the module docstring).
        self._http = httpx.Client(timeout=httpx.Timeout(options.timeout_seconds, read=120.0),
                                  follow_redirects=True)

    def close(self) -> None:
        self._http.close()

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
        attempts = self.options.download_retries + 1
        for attempt in range(attempts):
            if attempt:
                delay = backoff(attempt - 1, base=2.0, cap=30.0)
                self._log.warning(f"download of the bulk result failed ({problem}); retrying in {delay:.0f}s "
                                  f"(attempt {attempt + 1} of {attempts})")
                self.options.sleep(delay)
            written, problem = self._attempt(url, part, where, operation_id, expected_size)
            if written is not None:
                os.replace(part, dest_path)
                self._log.info(f"downloaded bulk result: {written} bytes")
                return written
        part.unlink(missing_ok=True)
        raise DownloadError(f"downloading the bulk result from {where} failed after "
                            f"{attempts} attempts: {problem}", operation_id=operation_id)

    def _attempt(self, url: str, part: Path, where: str, operation_id: str | None,
                 expected_size: int | None) -> tuple[int | None, str]:
        """(bytes in ``part``, "") after a complete download, else (None, what went wrong)."""
        have = part.stat().st_size if part.exists() else 0
        if have:
            self._log.info(f"resuming the download of the bulk result at byte {have}")
        try:
            written = self._download_once(url, part, where, operation_id, have)
        except httpx.TransportError as exc:
            return None, f"transport error {type(exc).__name__}"
        except _RetryableDownload as exc:
            return None, str(exc)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        if expected_size is not None and written != expected_size:
            # The host sent a complete response of the wrong length: no prefix to build on.
            part.unlink(missing_ok=True)
            return None, f"got {written} bytes, Shopify's fileSize is {expected_size}"
        return written, ""

    def _check_expiry(self, query: str, operation_id: str | None) -> None:
        expires = _url_expiry(parse_qs(query))
        if expires is None:
            return
        now = self.options.clock()
        if expires < now:
            raise ResultUrlExpired(
                f"its Expires is {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(expires))}, "
                f"{(now - expires) / 3600:.1f} h ago", operation_id=operation_id)

    def _download_once(self, url: str, part: Path, where: str, operation_id: str | None, offset: int = 0) -> int:
        # identity: fileSize counts the file's bytes, not a compressed transfer.
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        with self._http.stream("GET", url, headers=headers) as response:
            offset = _start_of(response, part, where, operation_id, offset)
            written = offset
            # Network-sized chunks into a download_chunk_bytes file buffer: bytes received
            # before a broken connection still reach the file (httpx's own chunker would
            # drop its partly filled buffer), so the retry's range starts right after them.
            with open(part, "ab" if offset else "wb", buffering=self.options.download_chunk_bytes) as fh:
                for chunk in response.iter_bytes():
                    fh.write(chunk)
                    written += len(chunk)
            return written


def _start_of(response: httpx.Response, part: Path, where: str, operation_id: str | None, offset: int) -> int:
    """Where the response's body starts in the file: ``offset`` (a served range) or 0 (the whole file)."""
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
        return offset
    if status == 200:
        return 0  # the host ignored the Range header: the whole file again
    raise DownloadError(f"storage host {where} answered HTTP {status} for the result URL",
                        operation_id=operation_id)


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


def count_lines(path: str | os.PathLike[str], block_bytes: int = 1 << 20) -> int:
    """Non-empty lines of a JSONL file (the last one may lack its newline), read in blocks.

    Split into lines, not ``bytes.count``: CPython counts a byte one at a time, while
    ``split`` finds newlines with memchr. On a 2.1 GB result, 2.4 s against 3.3 s for
    ``count`` plus a ``b"\\n\\n" in block`` test for empty lines (docs/benchmarks.md).
    """
    count, pending = 0, False  # pending: the last block ended inside a non-empty line
    with open(path, "rb") as fh:
        while block := fh.read(block_bytes):
            parts = block.split(b"\n")
            for i, part in enumerate(parts[:-1]):
                count += bool(part) or (i == 0 and pending)
            pending = bool(parts[-1]) or (len(parts) == 1 and pending)
    return count + pending


def count_lines_durably(path: str | os.PathLike[str]) -> int:
    """``count_lines``, while another thread flushes the file's bytes to disk.

    The archive must be durable before its rename (``LocalObjectStore.move_file`` fsyncs
    it). On a 1.9 GB result the fsync is about 0.6 s of disk time and the count 1.2 s of
    CPU: side by side they take the count's time, and the archive's own fsync then finds
    nothing left to write (1.2-1.35 s against 1.7-1.9 s, docs/benchmarks.md, session 11).
    """
    failure: list[OSError] = []

    def flush() -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)  # releases the GIL: the count goes on meanwhile
            finally:
                os.close(fd)
        except OSError as exc:
            failure.append(exc)

    flusher = threading.Thread(target=flush, name="result-fsync", daemon=True)
    flusher.start()
    try:
        lines = count_lines(path)
    finally:
        flusher.join()
    if failure:
        raise failure[0]
    return lines
