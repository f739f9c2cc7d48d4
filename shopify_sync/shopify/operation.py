"""A bulk operation as the client sees it, and what its terminal states mean.

``BulkOperation`` is a snapshot of Shopify's object; ``raise_for_terminal`` turns a
FAILED / CANCELED / EXPIRED one into its typed error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from shopify_sync.shopify.errors import (
    AccessDenied,
    BulkOperationCanceled,
    BulkOperationExpired,
    BulkOperationFailed,
)

# A GraphQL object as decoded from JSON.
JsonObject = dict[str, object]

TERMINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "CANCELED", "EXPIRED"})
# Shopify's advice for these is "submit the query again" (§2.3); everything else needs a human.
RESUBMITTABLE_ERROR_CODES = frozenset({"INTERNAL_SERVER_ERROR", "TIMEOUT"})
BULK_GID = re.compile(r"gid://shopify/BulkOperation/\d+")


def _to_int(value: object) -> int | None:
    # UnsignedInt64 comes as a JSON string ("5033").
    if not isinstance(value, str | int | float):
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


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
    def from_graphql(cls, node: JsonObject) -> BulkOperation:
        return cls(
            id=str(node["id"]),
            status=str(node["status"]),
            error_code=_str_or_none(node.get("errorCode")),
            created_at=_str_or_none(node.get("createdAt")),
            completed_at=_str_or_none(node.get("completedAt")),
            object_count=_to_int(node.get("objectCount")) or 0,
            root_object_count=_to_int(node.get("rootObjectCount")) or 0,
            file_size=_to_int(node.get("fileSize")),
            url=_str_or_none(node.get("url")),
            partial_data_url=_str_or_none(node.get("partialDataUrl")),
        )

    def as_graphql(self) -> JsonObject:
        """The inverse of ``from_graphql`` (the object as Shopify would send it)."""
        return {"id": self.id, "status": self.status, "errorCode": self.error_code, "createdAt": self.created_at,
                "completedAt": self.completed_at, "objectCount": str(self.object_count),
                "rootObjectCount": str(self.root_object_count),
                "fileSize": None if self.file_size is None else str(self.file_size), "url": self.url,
                "partialDataUrl": self.partial_data_url}


@dataclass(frozen=True)
class BulkResult:
    """A finished bulk query: its final operation and the downloaded JSONL on disk.

    ``path`` exists even for an empty result (COMPLETED with ``url: null``): an empty file.
    """

    operation: BulkOperation
    path: Path
    bytes: int
    object_count: int


def check_gid(op_id: str) -> None:
    if not isinstance(op_id, str) or not BULK_GID.fullmatch(op_id):
        raise ValueError(f"not a bulk operation id (gid://shopify/BulkOperation/<n>): {op_id!r}")


def raise_for_terminal(op: BulkOperation) -> None:
    if op.status == "FAILED":
        if op.error_code == "ACCESS_DENIED":
            raise AccessDenied(op.id, partial_data_url=op.partial_data_url)
        raise BulkOperationFailed(op.error_code, op.id, op.partial_data_url)
    if op.status == "CANCELED":
        raise BulkOperationCanceled(op.id)
    if op.status == "EXPIRED":
        raise BulkOperationExpired(op.id)
