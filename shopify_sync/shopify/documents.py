"""The GraphQL documents the bulk client sends, per Admin API version.

The inner bulk query travels as a variable (``$query``), so it is never escaped into a
document. Version differences: ``BulkOperationUserError.code`` from 2025-01, and
``bulkOperation(id:)`` / ``bulkOperations`` from 2026-01 (``node`` / ``currentBulkOperation``
before).
"""

from __future__ import annotations

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


def run_query_mutation(with_code: bool) -> str:
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


def get_query(by_bulk_operation: bool) -> str:
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


def recent_query(by_bulk_operations: bool) -> str:
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
        "run_query": run_query_mutation(version_at_least(api_version, "2025-01")),
        "get": get_query(version_at_least(api_version, "2026-01")),
        "cancel": CANCEL_MUTATION,
        "recent": recent_query(version_at_least(api_version, "2026-01")),
    }
