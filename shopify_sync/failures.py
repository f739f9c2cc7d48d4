"""Which failures a retry can help, and which setting an operator must fix, decided once.

Every asset body (through ``defs.run_context.asset_step``) and the CLI's ``status`` and
``db upgrade`` ask this module. A wrong password, an unknown database, an unreachable
warehouse, a read-only or non-directory ``SHOPIFY_SYNC_HOME``, an object store that is
down or points at a file, a missing replay archive: running the step again 30 s later
cannot fix any of them, so they fail at once with one line naming the setting. What a
retry can help is a transient Shopify answer (the client's ``retryable``) or a network
error; anything not known to be permanent keeps the step's retry policy.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

import sqlalchemy.exc as sa_exc

from shopify_sync.config import ConfigError
from shopify_sync.errors import root_cause, summarize_error
from shopify_sync.storage.object_store import ObjectStoreError
from shopify_sync.warehouse.engine import SchemaError

DATABASE_URL = "SHOPIFY_SYNC_DATABASE_URL"
STORAGE_URL = "SHOPIFY_SYNC_STORAGE_URL"
HOME = "SHOPIFY_SYNC_HOME"

# File-system answers that mean "this path is not usable as configured".
_SETUP_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST,
                           errno.EISDIR, errno.ENOSPC})


def _configured(name: str) -> str:
    # An unset URL defaults to a path under SHOPIFY_SYNC_HOME: that is what to fix then.
    return name if os.environ.get(name, "").strip() else HOME


def warehouse_setting() -> str:
    """The variable that decides the warehouse: its URL, or the home it defaults under."""
    return _configured(DATABASE_URL)


def storage_setting() -> str:
    """The variable that decides the object store: its URL, or the home it defaults under."""
    return _configured(STORAGE_URL)


@dataclass(frozen=True)
class Verdict:
    """``retry``: running the step again may succeed. ``setting``: what to fix, when known."""

    retry: bool
    setting: str | None = None


def classify(exc: BaseException) -> Verdict:
    """What a failure of a running step means (its root cause, below Dagster's wrappers)."""
    cause = root_cause(exc)
    retryable = getattr(cause, "retryable", None)
    if isinstance(retryable, bool):
        return Verdict(retry=retryable)
    if isinstance(cause, ObjectStoreError):  # a missing archive included
        return Verdict(retry=False, setting=storage_setting())
    if isinstance(cause, SchemaError | sa_exc.ArgumentError | sa_exc.NoSuchModuleError):
        return Verdict(retry=False, setting=warehouse_setting())
    if isinstance(cause, ConfigError | ValueError):
        return Verdict(retry=False)
    if isinstance(cause, OSError) and cause.errno in _SETUP_ERRNOS:
        return Verdict(retry=False, setting=HOME if _under_home(cause) else storage_setting())
    return Verdict(retry=True)


def _under_home(exc: OSError) -> bool:
    home = os.environ.get(HOME, "").strip()
    name = str(exc.filename or "")
    return bool(home and name.startswith(str(os.path.abspath(os.path.expanduser(home)))))


def failure_line(exc: BaseException, setting: str | None) -> str:
    """One line for the operator: the setting to fix (if known), then the root cause."""
    line = summarize_error(exc).one_line()
    return f"{setting}: {line}" if setting and not line.startswith(setting) else line
