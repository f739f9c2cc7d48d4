"""Bulk query documents for the orders sync (SPEC §3/§4).

Two connections (orders, lineItems), nesting depth 1: well inside Shopify's bulk
limits (≤5 connections, depth ≤2). Refunds are the ``Order.refunds`` *list*, so
they come inline on the order line; ``refundLineItems`` is a connection inside that
list, which bulk queries reject, so it is deliberately not selected.

The filter is on time only (no ``test:``/``status:``): test and cancelled orders are
stored and flagged, and the metrics exclude them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

WindowField = Literal["updated_at", "created_at"]

_MONEY = "{ shopMoney { amount currencyCode } }"

ORDER_FIELDS = f"""id
        name
        createdAt
        updatedAt
        processedAt
        cancelledAt
        test
        currencyCode
        displayFinancialStatus
        displayFulfillmentStatus
        currentTotalPriceSet {_MONEY}
        currentSubtotalPriceSet {_MONEY}
        currentTotalDiscountsSet {_MONEY}
        currentTotalTaxSet {_MONEY}
        currentShippingPriceSet {_MONEY}
        totalRefundedSet {_MONEY}
        refunds {{ id createdAt totalRefundedSet {_MONEY} }}"""

LINE_ITEM_FIELDS = f"""id
              sku
              title
              quantity
              currentQuantity
              originalUnitPriceSet {_MONEY}
              discountedUnitPriceAfterAllDiscountsSet {_MONEY}
              discountedTotalSet {_MONEY}
              variant {{ id }}
              product {{ id }}"""

_SORT_KEY = {"updated_at": "UPDATED_AT", "created_at": "CREATED_AT"}


def format_timestamp(ts: datetime) -> str:
    """Shopify search syntax wants quoted UTC timestamps, second precision."""
    if ts.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware (UTC)")
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def orders_search(field: WindowField, start: datetime, end: datetime | None = None) -> str:
    """``field:>='start'`` [``AND field:<'end'``]: the window is half-open."""
    parts = [f"{field}:>='{format_timestamp(start)}'"]
    if end is not None:
        parts.append(f"{field}:<'{format_timestamp(end)}'")
    return " AND ".join(parts)


def orders_query(field: WindowField, start: datetime, end: datetime | None = None) -> str:
    """The inner bulk query: every order whose ``field`` lies in ``[start, end)``.

    Sorted by the same key as the filter, since Shopify warns that a range search on
    a field other than the sort key may time out on large shops.
    """
    if field not in _SORT_KEY:
        raise ValueError(f"unsupported window field {field!r}")
    search = orders_search(field, start, end).replace('"', '\\"')
    return f"""{{
  orders(query: "{search}", sortKey: {_SORT_KEY[field]}) {{
    edges {{
      node {{
        {ORDER_FIELDS}
        lineItems {{
          edges {{
            node {{
              {LINE_ITEM_FIELDS}
            }}
          }}
        }}
      }}
    }}
  }}
}}
"""


# -- the product catalog (issue 16) ---------------------------------------------------------

CATALOG_VARIANT_FIELDS = """id
        sku
        title
        price
        compareAtPrice
        inventoryQuantity
        updatedAt
        product { id title vendor productType status updatedAt }"""


def catalog_query(since: datetime | None = None) -> str:
    """The inner bulk query of the catalog: every variant, or those updated since ``since``.

    One connection (``productVariants``) and no nested one: each JSONL line is a whole
    variant with its product inline (an object, not a connection), so the file has no
    ``__parentId`` children whatever ``groupObjects`` is. ``ProductVariantSortKeys`` has
    no ``UPDATED_AT`` (the schema check rejects it), so the variants come by ``ID``; the
    ingest takes the max ``updatedAt`` over all lines, never the last one.
    """
    args = "sortKey: ID"
    if since is not None:
        args = f'query: "updated_at:>=\'{format_timestamp(since)}\'", {args}'
    return f"""{{
  productVariants({args}) {{
    edges {{
      node {{
        {CATALOG_VARIANT_FIELDS}
      }}
    }}
  }}
}}
"""
