"""How patient the bulk client is (``ClientOptions``), and the logger it writes to.

Every wait the client makes is bounded by one of these numbers, and goes through
``sleep`` (tests pass one that advances a fake clock instead of sleeping).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import httpx


class LogLike(Protocol):
    """A ``logging.Logger`` or Dagster's ``context.log``."""

    def debug(self, msg: str) -> object: ...
    def info(self, msg: str) -> object: ...
    def warning(self, msg: str) -> object: ...
    def error(self, msg: str) -> object: ...


@dataclass(frozen=True)
class ClientOptions:
    """The bulk client's limits and its seams for tests; the defaults suit a live shop.

    Errors name the field first (``poll_interval_seconds must be >= 0``), so a caller can
    map them back to the setting that supplied the value.
    """

    poll_interval_seconds: float = 16.0
    poll_max_attempts: int = 128  # polls before the operation is cancelled
    max_request_retries: int = 5  # per GraphQL request (transport errors, 5xx, 429, THROTTLED)
    max_request_wait_seconds: float = 300.0  # total waiting across one request's retries
    in_progress_max_wait: float = 1800.0  # waiting out another bulk query on the shop
    max_resubmits: int = 3  # new operations after FAILED (retryable), a stale resume, an expired URL
    resubmit_backoff_seconds: float = 30.0
    download_retries: int = 3
    download_chunk_bytes: int = 1 << 20  # file buffer of the result download
    timeout_seconds: float = 60.0  # per HTTP request (the download reads up to 120 s)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time  # Unix seconds: Retry-After dates, result URL expiry
    http: httpx.Client | None = None  # for the GraphQL endpoint only; the caller closes it

    def __post_init__(self) -> None:
        if self.poll_interval_seconds < 0:
            raise ValueError(f"poll_interval_seconds must be >= 0, got {self.poll_interval_seconds}")
        if self.poll_max_attempts < 1:
            raise ValueError(f"poll_max_attempts must be >= 1, got {self.poll_max_attempts}")
        for name in ("max_request_retries", "max_resubmits", "download_retries"):
            value = getattr(self, name)
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if self.download_chunk_bytes < 1:
            raise ValueError("download_chunk_bytes must be >= 1")
        object.__setattr__(self, "poll_interval_seconds", float(self.poll_interval_seconds))
        object.__setattr__(self, "poll_max_attempts", int(self.poll_max_attempts))


def backoff(attempt: int, base: float = 1.0, cap: float = 60.0) -> float:
    """Exponential backoff: ``base``, ``2 * base``, ... up to ``cap`` seconds."""
    return min(cap, base * (2 ** attempt))
