"""Error summaries, decided once: the ``{type, message}`` of telemetry, ``sync_job.last_error``,
the CLI's one failure line and the API's error bodies.

A summary names the *root cause*: Dagster wraps a step's exception in its own errors
(``DagsterExecutionStepExecutionError``, "Exceeded max_retries"), which say nothing an
operator can act on, so the chain is followed through those wrappers to the first
exception of ours or of a library. The message is its first non-empty line (a stack
trace or a server's multi-line reply never lands in a record), scrubbed of secrets and
bounded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shopify_sync.redact import scrub_secrets

MAX_MESSAGE_CHARS = 500
MAX_TYPE_CHARS = 200


@dataclass(frozen=True)
class ErrorSummary:
    """What went wrong, in one line, safe to store and show."""

    type: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message}

    def one_line(self) -> str:
        return f"{self.type}: {self.message}"


def _is_wrapper(exc: BaseException) -> bool:
    # Dagster's own error classes wrap the user code's exception as ``__cause__``;
    # checked by module so this leaf module does not import dagster.
    return type(exc).__module__.split(".", 1)[0] == "dagster"


def root_cause(exc: BaseException) -> BaseException:
    """The first exception below Dagster's wrappers (``exc`` itself when it is not one)."""
    seen: set[int] = set()
    while _is_wrapper(exc) and id(exc) not in seen:
        seen.add(id(exc))
        nxt = exc.__cause__ or exc.__context__
        if nxt is None:
            break
        exc = nxt
    return exc


def first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def summarize_error(exc: BaseException, *, secrets: Iterable[str] = ()) -> ErrorSummary:
    """``{type, message}`` of the root cause of ``exc``: one line, scrubbed, bounded."""
    cause = root_cause(exc)
    typ = type(cause).__name__
    return summarize_text(typ, str(cause), secrets=secrets)


def summarize_text(typ: str, message: str, *, secrets: Iterable[str] = ()) -> ErrorSummary:
    """The same bounding and scrubbing for an error known only as text (a stored record)."""
    secrets = list(secrets)
    line = scrub_secrets(first_line(message), secrets) or typ
    if len(line) > MAX_MESSAGE_CHARS:
        line = line[: MAX_MESSAGE_CHARS - 1] + "…"
    return ErrorSummary(type=scrub_secrets(typ, secrets)[:MAX_TYPE_CHARS] or "Error", message=line)
